package logtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAwait(t *testing.T) {
	var l Buffer
	l.Write([]byte("first line\nsecond "))
	if err := l.Await(context.Background(), "first"); err != nil {
		t.Fatalf("Await for what is there: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.Await(context.Background(), "second line") }()
	// The match spans two writes, and the second comes after Await began
	// or before: either way it is found.
	l.Write([]byte("line\n"))
	if err := <-got; err != nil {
		t.Fatalf("Await across writes: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := l.Await(ctx, "third"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await for what never comes: %v", err)
	}
}
