// Package logtest holds a log sink for tests: what a broker writes from
// many goroutines, read back by the test, which can wait for a line.
package logtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// Buffer is an io.Writer safe for concurrent writers, whose contents a test
// reads with String or waits on with Await. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// written is closed by the next Write; nil until Await waits on it.
	written chan struct{}
}

// Write implements io.Writer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Await waits until what has been written contains s, or ctx ends. Each
// write wakes it, and only what is new is searched.
func (l *Buffer) Await(ctx context.Context, s string) error {
	from := 0 // what is before from was searched already
	for {
		l.mu.Lock()
		data := l.b.Bytes()
		found := bytes.Contains(data[max(0, from-len(s)+1):], []byte(s))
		from = len(data)
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-written:
		case <-ctx.Done():
			return fmt.Errorf("logtest: no %q in the log: %w", s, context.Cause(ctx))
		}
	}
}
