package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// BenchmarkBackupSample backs up the sample shop database (about 186,000
// rows) with each proof mode, alternating, so the modes share the machine's
// noise: the difference is what the proof costs in wall time.
func BenchmarkBackupSample(b *testing.B) {
	src := testenv.New(b)
	if err := testenv.LoadSample(context.Background(), src, "shop"); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	modes := []verify.Mode{verify.ModeRestore, verify.ModeRead, verify.ModeNone}
	for _, m := range modes {
		b.Run("verify="+string(m), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := pipeline.Backup(context.Background(), pipeline.Options{
					DB: src.ConnString("shop"), Name: "shop", Dir: filepath.Join(dir, "backups"),
					CatalogPath: filepath.Join(dir, "catalog.db"), Compress: 1, Verify: m,
				})
				if err != nil {
					b.Fatal(err)
				}
				want := catalog.StatusVerified
				if m == verify.ModeNone {
					want = catalog.StatusUnverified
				}
				if res.Record.Status != want {
					b.Fatalf("status %s", res.Record.Status)
				}
			}
		})
	}
}
