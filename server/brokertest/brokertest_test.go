package brokertest

import (
	"net/http"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	for name, opts := range map[string][]Option{
		"demo":       nil,
		"configured": {DemoUsers()},
	} {
		t.Run(name, func(t *testing.T) {
			b := Start(t, opts...)
			resp, err := b.HTTP.Post(b.RESTURL+"/login", "application/json", strings.NewReader(`{"username":"`+BostonUser+`","password":"`+BostonPassword+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || b.Emulator == nil || b.EmulatorURL == "" || b.Logs.String() == "" {
				t.Fatalf("login: %d", resp.StatusCode)
			}
		})
	}
}

func TestServingAddrs(t *testing.T) {
	grpcAddr, rest, err := servingAddrs(`{"level":"INFO","msg":"starting"}` + "\n" +
		`{"level":"INFO","msg":"tokenbroker serving","grpc":"127.0.0.1:1","rest":"127.0.0.1:2"}` + "\n")
	if err != nil || grpcAddr != "127.0.0.1:1" || rest != "127.0.0.1:2" {
		t.Fatalf("%q %q %v", grpcAddr, rest, err)
	}
	if _, _, err := servingAddrs(`tokenbroker serving grpc=127.0.0.1:1` + "\n"); err == nil {
		t.Fatal("a text log line was read")
	}
}
