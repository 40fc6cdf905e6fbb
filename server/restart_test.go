package main

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Issue, kill -9, start again: the same token, no new creation and no new
// OAuth request at CARTO, and a revoked session stays revoked.
func TestRestartKeepsTokensAndRevocations(t *testing.T) {
	emu, _, env := boltSetup(t)

	first := startProcess(t, env)
	session, loggedOut := first.login(t), first.login(t)
	tok, err := first.issue(session)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.revoke(loggedOut, logout()); err != nil {
		t.Fatal(err)
	}
	before := emu.sim.Stats()
	first.kill() // SIGKILL: no shutdown code runs

	second := startProcess(t, env)
	again, err := second.issue(session)
	if err != nil {
		t.Fatal(err)
	}
	after := emu.sim.Stats()
	t.Logf("after kill -9 and restart: same token %v, %d new creations, %d new OAuth requests",
		again.GetToken() == tok.GetToken(), after.TokensCreated-before.TokensCreated, after.OAuthRequests-before.OAuthRequests)
	if again.GetToken() != tok.GetToken() || after.TokensCreated != before.TokensCreated || after.OAuthRequests != before.OAuthRequests {
		t.Fatalf("restart re-minted: stats before %+v after %+v", before, after)
	}
	if _, err := second.issue(loggedOut); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked session after restart: %v, want UNAUTHENTICATED", err)
	}
}

// A group's grants change across a restart: the token of the old grants is
// deleted at CARTO, and the next issue mints one with the new grants.
func TestPolicyChangeDeletesTheOldToken(t *testing.T) {
	emu, cfg, env := boltSetup(t)

	first := startProcess(t, env)
	session := first.login(t)
	old, err := first.issue(session)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()

	writeFile(t, cfg, usersYAML("maps, sql"))
	second := startProcess(t, env)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if info, ok := emu.sim.Token(old.GetToken()); ok && info.Deleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old policy's token was not deleted at CARTO")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fresh, err := second.issue(session)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.GetToken() == old.GetToken() || !slices.Equal(fresh.GetAllowedApis(), []string{"maps", "sql"}) {
		t.Fatalf("after the policy change: %v", fresh)
	}
	t.Logf("policy change: old token deleted at the emulator, new token allows %v", fresh.GetAllowedApis())
}

// boltSetup prepares brokers on one bbolt file: the emulator, the config
// file (Boston on the Maps API) and their environment.
func boltSetup(t *testing.T) (emu *emulator, configPath string, env []string) {
	t.Helper()
	emu = startEmulator(t)
	dir := t.TempDir()
	configPath = filepath.Join(dir, "tokenbroker.yaml")
	writeFile(t, configPath, usersYAML("maps"))
	return emu, configPath, brokerEnv(t, emu, configPath, "TOKENBROKER_DB="+filepath.Join(dir, "tokenbroker.db"))
}
