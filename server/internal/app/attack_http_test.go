package app_test

// Attacks through the HTTP and gRPC envelope rather than the token: how many
// credentials a request carries and under which names, which headers claim to
// say who the client is, and requests too big or too slow to be served.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// Attack: a request carrying two credentials, hoping one is checked and the
// other used: two Authorization headers over REST (the victim's session and
// the attacker's, in either order), both in one header, and two
// `authorization` metadata values over gRPC. The broker refuses them all
// rather than picking one.
func TestAttackDuplicateAuthorization(t *testing.T) {
	b := startBroker(t)
	boston, ny := b.login("user.boston@acme.com", "boston"), b.login("user.ny@acme.com", "ny")
	for name, values := range map[string][]string{
		"two headers":              {"Bearer " + boston, "Bearer " + ny},
		"two headers, other order": {"Bearer " + ny, "Bearer " + boston},
		"the same token twice":     {"Bearer " + boston, "Bearer " + boston},
		"a valid and a bad one":    {"Bearer " + boston, "Bearer forged"},
		"two tokens in one header": {"Bearer " + boston + ", Bearer " + ny},
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.do(http.MethodPost, "/carto-token", "", "", http.Header{"Authorization": values})
			if body := decode(t, resp); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("REST: %d %v, want 401", resp.StatusCode, body)
			}
			var kv []string
			for _, v := range values {
				kv = append(kv, "authorization", v)
			}
			ctx := metadata.AppendToOutgoingContext(context.Background(), kv...)
			if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("gRPC: %v, want UNAUTHENTICATED", err)
			}
		})
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("%d CARTO tokens created for requests with two credentials", s.TokensCreated)
	}
}

// Attack: a bearer smuggled in `Grpc-Metadata-Authorization`, the header
// grpc-gateway once turned into gRPC `authorization` metadata: alone (past a
// proxy that only inspects or strips Authorization), or beside a genuine
// Authorization to have the smuggled one used. The gateway forwards no
// Grpc-Metadata-* header (grpc-gateway's DefaultHeaderMatcher since v2.33),
// so the smuggled value is ignored: alone it is no credential (401), beside
// Authorization the request is the Authorization holder's, never the other.
func TestAttackGrpcMetadataAuthorizationHeader(t *testing.T) {
	b := startBroker(t)
	boston, ny := b.login("user.boston@acme.com", "boston"), b.login("user.ny@acme.com", "ny")
	for name, hdr := range map[string]http.Header{
		"alone":               {"Grpc-Metadata-Authorization": {"Bearer " + boston}},
		"lower case, alone":   {"grpc-metadata-authorization": {"Bearer " + boston}},
		"grpcgateway- prefix": {"Grpcgateway-Authorization": {"Bearer " + boston}},
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.do(http.MethodPost, "/carto-token", "", "", hdr)
			if body := decode(t, resp); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%d %v, want 401", resp.StatusCode, body)
			}
		})
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("%d CARTO tokens created for smuggled credentials", s.TokensCreated)
	}
	for _, order := range [][2]string{{boston, ny}, {ny, boston}} {
		resp := b.do(http.MethodPost, "/carto-token", order[0], "", http.Header{"Grpc-Metadata-Authorization": {"Bearer " + order[1]}})
		body := decode(t, resp)
		if want := map[string]string{boston: "BOSTON", ny: "NEW YORK"}[order[0]]; resp.StatusCode != http.StatusOK || body["group"] != want {
			t.Fatalf("Authorization of %s beside a smuggled bearer: %d %v", want, resp.StatusCode, body)
		}
	}
}

// Attack: dodging the per-address login lockout by claiming another client
// address in X-Forwarded-For, X-Real-IP or Forwarded (a new one on every
// guess), over REST and gRPC. The broker counts the address the connection
// comes from, so the lockout still applies after LOGIN_MAX_ADDR_FAILURES
// failures, even to a right password.
func TestAttackForwardedHeadersDodgeAddressLockout(t *testing.T) {
	const limit = 3
	// Failures are counted in fixed windows, here of a day from UTC
	// midnight: if the day turns during the test, it runs again.
	const window = 24 * time.Hour
	for try := 1; ; try++ {
		start := time.Now()
		err := dodgeAddressLockout(t, startBroker(t, brokertest.Env(map[string]string{"LOGIN_MAX_ADDR_FAILURES": strconv.Itoa(limit), "LOGIN_LOCKOUT_WINDOW": window.String()})), limit)
		if err == nil {
			return
		}
		if try == 1 && windowTurned(start, window) {
			continue
		}
		t.Fatal(err)
	}
}

// dodgeAddressLockout makes limit failed logins, then more, and a right
// one, each claiming a new client address; all past the limit must be 429.
func dodgeAddressLockout(t *testing.T, b *broker, limit int) error {
	spoof := func(i int) http.Header {
		ip := "203.0.113." + strconv.Itoa(i+1)
		return http.Header{
			"X-Forwarded-For": {ip},
			"X-Real-Ip":       {ip},
			"Forwarded":       {"for=" + ip},
			// What grpc-gateway once forwarded as metadata of the same name.
			"Grpc-Metadata-X-Forwarded-For": {ip},
			"Grpc-Metadata-X-Real-Ip":       {ip},
		}
	}
	// Each guess names another user, so only the address lockout can apply.
	guess := func(i int) string {
		return `{"username":"guess` + strconv.Itoa(i) + `@acme.com","password":"wrong"}`
	}
	for i := range limit {
		resp := b.do(http.MethodPost, "/login", "", guess(i), spoof(i))
		if body := decode(t, resp); resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("guess %d: %d %v, want 401", i+1, resp.StatusCode, body)
		}
	}
	for i := limit; i < limit+3; i++ {
		resp := b.do(http.MethodPost, "/login", "", guess(i), spoof(i))
		if body := decode(t, resp); resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("guess %d from a spoofed address: %d %v, want 429", i+1, resp.StatusCode, body)
		}
	}
	resp := b.do(http.MethodPost, "/login", "", `{"username":"user.boston@acme.com","password":"boston"}`, spoof(9))
	if body := decode(t, resp); resp.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("right password from a spoofed address: %d %v, want 429", resp.StatusCode, body)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-forwarded-for", "198.51.100.7", "x-real-ip", "198.51.100.7", "forwarded", "for=198.51.100.7")
	if _, err := b.grpc.Login(ctx, &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"}); status.Code(err) != codes.ResourceExhausted {
		return fmt.Errorf("gRPC login with spoofed addresses: %v, want RESOURCE_EXHAUSTED", err)
	}
	return nil
}

// endless is a request body that never ends until stop is closed: what an
// attacker streams to exhaust the broker's memory.
type endless struct{ stop chan struct{} }

func (e endless) Read(p []byte) (int, error) {
	select {
	case <-e.stop:
		return 0, io.EOF
	default:
	}
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// Attack: a REST body over the 64 KiB limit, declared (Content-Length) or
// streamed (chunked, including a stream that never ends), and an oversized
// gRPC message. Each is refused, 413 / RESOURCE_EXHAUSTED, without the broker
// reading it all.
func TestAttackOversizedBody(t *testing.T) {
	b := startBroker(t)
	big := `{"username":"` + strings.Repeat("a", 70<<10) + `","password":"x"}`
	stream := endless{stop: make(chan struct{})}
	defer close(stream.stop)
	for name, body := range map[string]io.Reader{
		"Content-Length":   strings.NewReader(big),
		"chunked":          io.MultiReader(strings.NewReader(big)), // hides the length
		"chunked, endless": io.MultiReader(strings.NewReader(`{"username":"`), stream),
	} {
		t.Run(name, func(t *testing.T) {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodPost, b.rest+"/login", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := decode(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || got["code"] != float64(codes.InvalidArgument) {
				t.Fatalf("%d %v, want 413", resp.StatusCode, got)
			}
		})
	}
	// gRPC refuses an oversized message before decoding it.
	_, err := b.grpc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: strings.Repeat("a", 100<<10), Password: "x"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("100 KiB gRPC message: %v, want RESOURCE_EXHAUSTED", err)
	}
	b.accepts(t, b.login("user.boston@acme.com", "boston"))
}

// Attack: request headers over the 64 KiB limit, as one huge bearer or as
// many headers, over REST (431) and gRPC (refused); nothing reads them.
func TestAttackOversizedHeaders(t *testing.T) {
	b := startBroker(t)
	huge := strings.Repeat("a", 1<<20)
	many := http.Header{}
	for i := range 100 {
		many.Set("X-Pad-"+strings.Repeat("p", i%10)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 1<<10))
	}
	for name, tc := range map[string]struct {
		bearer string
		hdr    http.Header
	}{
		"1 MiB bearer":         {bearer: huge},
		"100 headers of 1 KiB": {hdr: many},
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.do(http.MethodPost, "/carto-token", tc.bearer, "", tc.hdr)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("REST: %d, want 431", resp.StatusCode)
			}
		})
	}
	if _, err := b.grpc.IssueCartoToken(withBearer(huge), &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) == codes.OK {
		t.Fatal("1 MiB bearer over gRPC accepted")
	}
	var kv []string
	for i := range 100 {
		kv = append(kv, "x-pad-"+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 1<<10))
	}
	ctx := metadata.AppendToOutgoingContext(withBearer(b.login("user.boston@acme.com", "boston")), kv...)
	if _, err := b.grpc.IssueCartoToken(ctx, &tokenbrokerv1.IssueCartoTokenRequest{}); status.Code(err) == codes.OK {
		t.Fatal("100 KiB of gRPC metadata accepted")
	}
	if s := b.sim.Stats(); s.TokensCreated != 0 {
		t.Fatalf("%d CARTO tokens created for oversized requests", s.TokensCreated)
	}
}

// slowlorisBound is the broker's ReadHeaderTimeout (app.newHTTPServer), the
// longest a client may take to send its request headers.
const slowlorisBound = 10 * time.Second

// Attack: slowloris. A client that sends its request headers one byte at a
// time, never finishing, to hold a connection (and its goroutine) for ever.
// The broker closes the connection once ReadHeaderTimeout has passed.
func TestAttackSlowloris(t *testing.T) {
	b := startBroker(t)
	conn, err := net.Dial("tcp", b.app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w := bufio.NewWriter(conn)
		prefix := "POST /login HTTP/1.1\r\nHost: broker\r\n"
		for i := 0; ; i++ {
			c := byte('x')
			if i < len(prefix) {
				c = prefix[i]
			} else if (i-len(prefix))%40 == 39 {
				c = ':' // a long header name, then another, never the blank line
			}
			w.WriteByte(c)
			if w.Flush() != nil {
				return // closed by the broker
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// Wait for the broker to close the connection, a little longer than its
	// bound; a read that times out means it kept the connection open.
	conn.SetReadDeadline(start.Add(slowlorisBound + 3*time.Second))
	n, err := io.Copy(io.Discard, conn)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (bound %v)", elapsed.Round(time.Millisecond), slowlorisBound)
	}
	if elapsed < slowlorisBound-time.Second {
		t.Fatalf("connection closed after only %v (%d bytes, %v): not by the header timeout", elapsed, n, err)
	}
	t.Logf("slowloris connection closed by the broker after %v (%d bytes back, %v)", elapsed.Round(time.Millisecond), n, err)
}
