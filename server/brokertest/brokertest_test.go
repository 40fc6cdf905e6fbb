package brokertest

import (
	"net/http"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	b := Start(t, nil, nil)
	resp, err := http.Post(b.RESTURL+"/login", "application/json", strings.NewReader(`{"username":"`+BostonUser+`","password":"`+BostonPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || b.Emulator == nil {
		t.Fatalf("login: %d", resp.StatusCode)
	}
}
