package telemetry

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenbroker/tokenbroker/server/internal/logtest"
)

// The flushing is timer-driven: in a synctest bubble, the test moves time
// past the interval and waits until the flusher is idle again.
func TestBufferedWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out logtest.Buffer
		w := NewBufferedWriter(&out, 10*time.Millisecond)
		_, _ = w.Write([]byte("line 1\n"))
		if out.String() != "" {
			t.Fatal("written through at once")
		}
		time.Sleep(10 * time.Millisecond) // fake time: the ticker fires
		synctest.Wait()
		if out.String() != "line 1\n" {
			t.Fatalf("not flushed by the ticker: %q", out.String())
		}
		_, _ = w.Write([]byte("line 2\n"))
		if err := w.Close(); err != nil || out.String() != "line 1\nline 2\n" {
			t.Fatalf("after Close: %q %v", out.String(), err)
		}
		_ = w.Close() // twice is harmless
	})
}

func TestCleanRequestID(t *testing.T) {
	for in, want := range map[string]string{"abc-1.2_3": "abc-1.2_3", "": "", "a b": "", "x\n": "", string(make([]byte, 65)): ""} {
		if got := CleanRequestID(in); got != want {
			t.Errorf("CleanRequestID(%q) = %q", in, got)
		}
	}
	if a, b := NewRequestID(), NewRequestID(); a == b || len(a) != 16 {
		t.Fatalf("request ids %q %q", a, b)
	}
}
