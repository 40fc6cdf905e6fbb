package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/cartosim"
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
	before := emu.Stats()
	first.kill() // SIGKILL: no shutdown code runs

	second := startProcess(t, env)
	again, err := second.issue(session)
	if err != nil {
		t.Fatal(err)
	}
	after := emu.Stats()
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
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := emu.WaitFor(ctx, func(cartosim.Stats) bool {
		info, ok := emu.Token(old.GetToken())
		return ok && info.Deleted
	}); err != nil {
		t.Fatalf("the old policy's token was not deleted at CARTO: %v", err)
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
func boltSetup(t *testing.T) (emu *brokertest.Emulator, configPath string, env []string) {
	t.Helper()
	emu = brokertest.StartEmulator(t)
	dir := t.TempDir()
	configPath = filepath.Join(dir, "tokenbroker.yaml")
	writeFile(t, configPath, usersYAML("maps"))
	return emu, configPath, brokerEnv(t, emu, configPath, "TOKENBROKER_DB="+filepath.Join(dir, "tokenbroker.db"))
}
