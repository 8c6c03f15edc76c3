package testenv

import (
	"context"
	"os"
	"testing"
)

// BenchmarkClusterStart compares a cold start (initdb into an empty cache,
// then copy) with a start from the cached template. Each op is a start to
// "ready"; stopping is not timed.
func BenchmarkClusterStart(b *testing.B) {
	Require(b, Want{})
	ctx := context.Background()
	b.Run("initdb", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			cache, err := os.MkdirTemp("", "pgattest-bench-cache-")
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			c, err := Start(ctx, Options{CacheDir: cache})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			c.Stop(ctx)
			os.RemoveAll(cache)
			b.StartTimer()
		}
	})
	// The proof's cluster (a random superuser name, no network) against a
	// plain copy of the template: what the isolation costs at start.
	for _, v := range []struct {
		name string
		o    Options
	}{
		{"template", Options{NoNetwork: true}},
		{"template-plain", Options{Superuser: templateSuperuser}},
	} {
		b.Run(v.name, func(b *testing.B) { benchStart(b, v.o) })
	}
}

func benchStart(b *testing.B, o Options) {
	ctx := context.Background()
	o.CacheDir = b.TempDir()
	{
		c, err := Start(ctx, o) // make the template
		if err != nil {
			b.Fatal(err)
		}
		c.Stop(ctx)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := Start(ctx, o)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			c.Stop(ctx)
			b.StartTimer()
		}
	}
}
