package testenv

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// This package's own tests cannot use pgtest (it imports this package):
// the two helpers they need, as pgtest has them.

func Require(tb testing.TB, w Want) Toolchain {
	tb.Helper()
	tc, err := Find(w)
	if err == nil {
		return tc
	}
	if errors.Is(err, ErrNotFound) && os.Getenv("PGATTEST_REQUIRE_PG") != "1" {
		tb.Skipf("skipping: %v", err)
	}
	tb.Fatalf("find postgres binaries: %v", err)
	return Toolchain{}
}

func New(tb testing.TB, opts ...Options) *Cluster {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Toolchain.Dir == "" {
		o.Toolchain = Require(tb, Want{Tools: ServerTools})
	}
	if o.Superuser == "" && o.Data == "" {
		o.Superuser = Superuser
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		tb.Fatalf("start throwaway cluster: %v", err)
	}
	tb.Cleanup(func() { c.Stop(context.Background()) })
	return c
}
