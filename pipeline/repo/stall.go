package repo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// A store that stops answering must not hold a backup forever: every
// request that moves a body (a part up, an object down) is cancelled once
// no byte has moved for the configured timeout, and the requests without
// one wait at most that long for an answer (the transport's response
// header timeout). Retries of minio-go (503 SlowDown, a reset connection)
// happen within that: each try moves bytes again.

// StalledError: the store took or sent nothing for After.
type StalledError struct {
	Op    string
	After time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("S3: %s: the store moved no data for %s (stalled); gave up", e.Op, e.After)
}

// stallGuard cancels its context when touch has not been called for d.
type stallGuard struct {
	d      time.Duration
	mu     sync.Mutex
	t      *time.Timer
	cancel context.CancelCauseFunc
	op     string
}

func newStallGuard(ctx context.Context, d time.Duration, op string) (context.Context, *stallGuard) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &stallGuard{d: d, cancel: cancel, op: op}
	g.t = time.AfterFunc(d, func() { cancel(&StalledError{Op: op, After: d}) })
	return ctx, g
}

func (g *stallGuard) touch() {
	g.mu.Lock()
	g.t.Reset(g.d)
	g.mu.Unlock()
}

func (g *stallGuard) stop() {
	g.t.Stop()
	g.cancel(nil)
}

// stalled is the guard's error for ctx when it fired, else err.
func stalled(ctx context.Context, err error) error {
	if se, ok := context.Cause(ctx).(*StalledError); ok && err != nil {
		return se
	}
	return err
}

// guardedSection is a part's bytes, touching the guard as they are read.
// It only reads (no Seek): minio-go then sends it once, and pgattest
// retries with a reader of its own (s3Upload.putPart).
type guardedSection struct {
	r io.Reader
	g *stallGuard
}

func (r guardedSection) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.g.touch()
	}
	return n, err
}

// guardedBody is a download, touching the guard as it arrives; Close ends
// the guard.
type guardedBody struct {
	io.ReadCloser
	ctx context.Context
	g   *stallGuard
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.g.touch()
	}
	return n, stalled(b.ctx, err)
}

func (b *guardedBody) Close() error {
	b.g.stop()
	return b.ReadCloser.Close()
}
