package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// BenchmarkBackupSample backs up the sample shop database (about 186,000
// rows) with each proof mode, alternating, so the modes share the machine's
// noise: the difference is what the proof costs in wall time.
func BenchmarkBackupSample(b *testing.B) {
	src := pgtest.New(b)
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

// BenchmarkBackupVsBaseline times `pgattest backup` of the sample database
// as this tree builds it against another pgattest binary, given by
// PGATTEST_BENCH_BASELINE (an earlier commit's build, say), in alternating
// runs against one source so both share the machine's noise; it reports
// the medians and the median of the paired ratios. PGATTEST_BENCH_ROUNDS
// sets the pairs (default 30). Without a baseline it skips.
//
//	git worktree add /tmp/old HEAD~3 && (cd /tmp/old && go build -o /tmp/pgattest-old .)
//	PGATTEST_BENCH_BASELINE=/tmp/pgattest-old go test -run '^$' -bench BackupVsBaseline -benchtime 1x ./pipeline
func BenchmarkBackupVsBaseline(b *testing.B) {
	baseline := os.Getenv("PGATTEST_BENCH_BASELINE")
	if baseline == "" {
		b.Skip("set PGATTEST_BENCH_BASELINE to a pgattest binary to compare with")
	}
	rounds := 30
	if n, err := strconv.Atoi(os.Getenv("PGATTEST_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	current := filepath.Join(b.TempDir(), "pgattest")
	if out, err := exec.Command("go", "build", "-o", current, "..").CombinedOutput(); err != nil {
		b.Fatalf("build pgattest: %v\n%s", err, out)
	}
	// The sample database, or with PGATTEST_BENCH_SIZE the generated one
	// bench:recipe uses (1GB: PGATTEST_BENCH_SIZE=1GB).
	var src *testenv.Cluster
	db := "shop"
	if size := os.Getenv("PGATTEST_BENCH_SIZE"); size != "" {
		src, _ = benchSource(b, parseSize(size, 1<<30))
		db = "bench"
	} else {
		src = pgtest.New(b)
		if err := testenv.LoadSample(context.Background(), src, "shop"); err != nil {
			b.Fatal(err)
		}
	}
	// PGATTEST_BENCH_CURRENT_ARGS are given to this tree's build only:
	// "--sign-key FILE" against the same build without it times a receipt.
	extra := strings.Fields(os.Getenv("PGATTEST_BENCH_CURRENT_ARGS"))
	// PGATTEST_BENCH_ARGS are given to both ("--jobs 2": the directory
	// format).
	both := strings.Fields(os.Getenv("PGATTEST_BENCH_ARGS"))
	times := map[string][]float64{}
	for i := 0; i < b.N*rounds; i++ {
		for _, v := range []struct {
			name, bin string
			extra     []string
		}{{"baseline", baseline, nil}, {"current", current, extra}} {
			dir := b.TempDir()
			t0 := time.Now()
			out, err := exec.Command(v.bin, append([]string{"--catalog", filepath.Join(dir, "c.db"), "backup", "--dir", dir,
				"--db", src.ConnString(db), "--name", db}, append(slices.Clone(both), v.extra...)...)...).CombinedOutput()
			if err != nil {
				b.Fatalf("%s: %v\n%s", v.name, err, out)
			}
			times[v.name] = append(times[v.name], time.Since(t0).Seconds())
		}
	}
	median := func(s []float64) float64 {
		s = slices.Clone(s)
		slices.Sort(s)
		return s[len(s)/2]
	}
	var ratios []float64
	for i := range times["current"] {
		ratios = append(ratios, times["current"][i]/times["baseline"][i])
	}
	b.ReportMetric(median(times["baseline"]), "baseline-s")
	b.ReportMetric(median(times["current"]), "current-s")
	b.ReportMetric(median(ratios), "current/baseline")
}
