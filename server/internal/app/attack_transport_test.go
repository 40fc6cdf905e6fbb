package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/tokenbroker/tokenbroker/server/brokertest"
	"github.com/tokenbroker/tokenbroker/server/internal/app"
	"github.com/tokenbroker/tokenbroker/server/internal/grpctest"
)

// rawH2 is an HTTP/2 client that speaks gRPC's framing by hand and ignores
// the server's SETTINGS (its stream limit included), as an attacker's does.
type rawH2 struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	wmu  sync.Mutex // the Framer's writes
	next uint32     // next client stream id
	// outcomes receives one outcome per stream: "open" (a response
	// message came: the call runs), "refused-stream" (RST_STREAM REFUSED_STREAM), or
	// "grpc-status N" (the call ended, e.g. 8 = RESOURCE_EXHAUSTED).
	outcomes chan outcome
	done     chan struct{}
}

type outcome struct {
	stream uint32
	what   string
}

func dialRawH2(t *testing.T, addr string, buffer int) *rawH2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &rawH2{t: t, conn: conn, fr: http2.NewFramer(conn, conn), next: 1, outcomes: make(chan outcome, buffer), done: make(chan struct{})}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h.write(func() error { return h.fr.WriteSettings() })
	// A window large enough that the server never waits for the reader.
	h.write(func() error { return h.fr.WriteWindowUpdate(0, 1<<30) })
	go h.read()
	t.Cleanup(h.close)
	return h
}

func (h *rawH2) write(f func() error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if err := f(); err != nil {
		h.t.Errorf("writing to the gRPC server: %v", err)
	}
}

// call starts a call of method with an empty request message, and returns
// the stream id.
func (h *rawH2) call(method string) uint32 {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "broker"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	h.wmu.Lock()
	id := h.next
	h.next += 2
	h.wmu.Unlock()
	h.write(func() error {
		return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
	})
	// One length-prefixed empty message (an empty HealthCheckRequest).
	h.write(func() error { return h.fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}) })
	return id
}

// read reports each stream's first outcome, answering SETTINGS and PINGs.
func (h *rawH2) read() {
	defer close(h.done)
	seen := map[uint32]bool{}
	report := func(id uint32, what string) {
		if !seen[id] {
			seen[id] = true
			h.outcomes <- outcome{id, what}
		}
	}
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.write(func() error { return h.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.write(func() error { return h.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() { // trailers (only): the call is over
				code := "none"
				for _, hf := range f.RegularFields() {
					if hf.Name == "grpc-status" {
						code = hf.Value
					}
				}
				report(f.StreamID, "grpc-status "+code)
			}
		case *http2.DataFrame: // a response message: the call runs
			report(f.StreamID, "open")
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				report(f.StreamID, "refused-stream")
			} else {
				report(f.StreamID, "reset "+f.ErrCode.String())
			}
		}
	}
}

// await collects the outcomes of n streams.
func (h *rawH2) await(n int, timeout time.Duration) map[string]int {
	h.t.Helper()
	got := map[string]int{}
	deadline := time.After(timeout)
	for range n {
		select {
		case o := <-h.outcomes:
			got[o.what]++
		case <-deadline:
			h.t.Fatalf("after %s, only %d of %d streams had an outcome: %v", timeout, sum(got), n, got)
		case <-h.done:
			h.t.Fatalf("the server closed the connection after %d of %d outcomes: %v", sum(got), n, got)
		}
	}
	return got
}

func (h *rawH2) close() {
	h.conn.Close()
	<-h.done
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

const healthWatch = "/grpc.health.v1.Health/Watch"

// Finding 5: one unauthenticated connection opens far more health Watch
// streams than the server's per-connection limit (ignoring the SETTINGS that
// announce it); with the default limit of 100, the extra streams are
// refused with REFUSED_STREAM.
func TestAttackHealthWatchStreamsBeyondConnectionLimit(t *testing.T) {
	b := startBroker(t)
	h := dialRawH2(t, b.app.GRPCAddr(), 150)
	for range 150 {
		h.call(healthWatch)
	}
	got := h.await(150, 20*time.Second)
	t.Logf("150 Watch streams on one connection, default limit: %v", got)
	if got["open"] != 100 || got["refused-stream"] != 50 {
		t.Fatalf("outcomes %v: want 100 open and 50 refused with REFUSED_STREAM", got)
	}
}

// Finding 5: a well-behaved gRPC client (grpc-go) honours the limit: its
// stream beyond it waits for a free one, and is never opened at the server
// while the limit is reached.
func TestAttackStreamsBeyondConnectionLimitWait(t *testing.T) {
	b := startBroker(t, brokertest.Env(map[string]string{"GRPC_MAX_CONCURRENT_STREAMS": "5"}))
	conn, err := grpc.NewClient(b.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := openWatches(t, ctx, h, 5)
	waiting, cancelWaiting := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelWaiting()
	if w, err := h.Watch(waiting, &healthpb.HealthCheckRequest{}); err == nil {
		_, err = w.Recv()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("a 6th stream on a connection limited to 5: %v, want it to wait (DeadlineExceeded)", err)
		}
	}
	// Once a stream ends, the next one opens.
	first[0]()
	openWatches(t, ctx, h, 1)
}

// openWatches opens n Watch streams that each received SERVING, and returns
// their cancel functions.
func openWatches(t *testing.T, ctx context.Context, h healthpb.HealthClient, n int) []context.CancelFunc {
	t.Helper()
	var cancels []context.CancelFunc
	for i := range n {
		wctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		w, err := h.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("watch %d: %v, %v", i, r, err)
		}
		cancels = append(cancels, cancel)
	}
	return cancels
}

// Finding 5: Watch streams spread over many connections are bounded for the
// whole server: the one beyond GRPC_MAX_HEALTH_WATCHES is refused with
// RESOURCE_EXHAUSTED, and a slot is free again once a watch ends. The same
// holds for reflection streams (GRPC_MAX_REFLECTION_STREAMS).
func TestAttackHealthWatchesBeyondServerLimit(t *testing.T) {
	var ends grpctest.Ends
	b := startBroker(t, brokertest.Env(map[string]string{"GRPC_MAX_HEALTH_WATCHES": "6", "GRPC_MAX_REFLECTION_STREAMS": "2", "GRPC_MAX_CONCURRENT_STREAMS": "4"}),
		brokertest.AppOptions(app.WithGRPCServerOptions(ends.ServerOption())))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients []healthpb.HealthClient
	for range 3 { // 3 connections of at most 4 streams: 12 > 6
		conn, err := grpc.NewClient(b.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		clients = append(clients, healthpb.NewHealthClient(conn))
	}
	var cancels []context.CancelFunc
	for i := range 6 {
		cancels = append(cancels, openWatches(t, ctx, clients[i%3], 1)...)
	}
	refused := func() error {
		w, err := clients[2].Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		return err
	}
	if err := refused(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 7th Watch with a server limit of 6: %v, want RESOURCE_EXHAUSTED", err)
	}
	// Check is unary: it still answers.
	if r, err := clients[2].Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check while the watches are full: %v, %v", r, err)
	}
	// A watch ends; its slot is free once the server has finished it (the
	// 7th, refused, has ended already).
	cancels[0]()
	wctx, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	if err := ends.Wait(wctx, healthWatch, 2); err != nil {
		t.Fatal(err)
	}
	w, err := clients[2].Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if err != nil {
		t.Fatalf("a Watch after one ended: %v", err)
	}

	// Reflection streams (what grpcurl opens) have their own bound.
	rc := reflectionpb.NewServerReflectionClient(b.conn)
	listServices := func() error {
		s, err := rc.ServerReflectionInfo(ctx)
		if err == nil {
			err = s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		}
		if err == nil {
			_, err = s.Recv()
		}
		return err
	}
	for i := range 2 {
		if err := listServices(); err != nil {
			t.Fatalf("reflection stream %d: %v", i, err)
		}
	}
	if err := listServices(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 3rd reflection stream with a limit of 2: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// Finding 5: 5,000 unauthenticated Watch attempts on 5 connections (the
// review's flood, scaled down) leave at most GRPC_MAX_HEALTH_WATCHES open,
// and the broker's memory grows by a bounded amount.
func TestAttackHealthWatchFloodMemoryIsBounded(t *testing.T) {
	const conns, perConn, maxWatches = 5, 1000, 100
	b := startBroker(t, brokertest.Env(map[string]string{"GRPC_MAX_HEALTH_WATCHES": strconv.Itoa(maxWatches)}))
	before := liveMemory()
	goroutinesBefore := runtime.NumGoroutine()
	start := time.Now()
	var hs []*rawH2
	for range conns {
		h := dialRawH2(t, b.app.GRPCAddr(), perConn)
		for range perConn {
			h.call(healthWatch)
		}
		hs = append(hs, h)
	}
	total := map[string]int{}
	for _, h := range hs {
		for k, v := range h.await(perConn, 60*time.Second) {
			total[k] += v
		}
	}
	took := time.Since(start)
	after := liveMemory()
	goroutinesAfter := runtime.NumGoroutine()
	growth := int64(after) - int64(before)
	t.Logf("%d Watch attempts on %d connections in %v: %v; heap+stacks %s MB -> %s MB (growth %.1f MB), goroutines %d -> %d",
		conns*perConn, conns, took.Round(time.Millisecond), total, mb(before), mb(after), float64(growth)/(1<<20), goroutinesBefore, goroutinesAfter)
	if total["open"] > maxWatches {
		t.Errorf("%d Watch streams open, over the limit of %d", total["open"], maxWatches)
	}
	if n := total["open"] + total["grpc-status 8"] + total["refused-stream"]; n != conns*perConn {
		t.Errorf("outcomes %v: want each attempt open, RESOURCE_EXHAUSTED (8) or REFUSED_STREAM", total)
	}
	// 5,000 open watches take about 60 MB here; 100 take about 1.
	if limit := int64(20 << 20); growth > limit {
		t.Errorf("memory grew by %.1f MB, more than %d MB", float64(growth)/(1<<20), limit>>20)
	}
}

// liveMemory is the live heap and goroutine stacks after a collection.
func liveMemory() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

func mb(n uint64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }
