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
	b.Run("template", func(b *testing.B) {
		cache := b.TempDir()
		c, err := Start(ctx, Options{CacheDir: cache}) // make the template
		if err != nil {
			b.Fatal(err)
		}
		c.Stop(ctx)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := Start(ctx, Options{CacheDir: cache})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			c.Stop(ctx)
			b.StartTimer()
		}
	})
}
