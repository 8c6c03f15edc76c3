package pipeline_test

// BenchmarkVsByHand (go tool task bench:recipe) measures pgattest against
// the recipe users follow by hand: pg_dump -Fc to a file, then createdb and
// pg_restore into an ordinary, default-configured local Postgres. On a
// generated database of PGATTEST_BENCH_SIZE (default 1GB), in rounds
// (PGATTEST_BENCH_ROUNDS, default 3) that run every variant once, in a
// rotating order so that the machine's drift is shared:
//
//	a  by hand: pg_dump -Fc (default compression), createdb, pg_restore
//	b  pgattest backup (proof by restore, one job)
//	c  pgattest backup --jobs 2
//	d  bare pg_dump with pgattest's settings (-Fc -Z 1) to a file
//	e  pgattest backup --verify none
//	d0 bare pg_dump -Fc -Z 0: what pgattest itself runs (it compresses
//	   pg_dump's output on every core: see pipeline/deflate.go)
//	s  pgattest backup --repo s3://… to versitygw on loopback (restore
//	   proof, 1 job): the archive streamed to the store
//	ba pgattest backup --encrypt-to age1… (restore proof, 1 job)
//	ea pgattest backup --verify none --encrypt-to age1…
//	ra plain pg_restore --single-transaction of a pgattest archive
//	rp the same, the archive on a pipe (as pgattest hands it over)
//	rf pgattest restore of it from the folder (checked segment by segment)
//	rs pgattest restore of the same backup kept in a bucket
//
// It prints the medians, the ratios b/a, c/a, e/d, s/b, ba/b, ea/d, rf/ra,
// rs/ra, rp/ra and rf/rp, archive sizes,
// pgattest's peak RSS and, for s and rs, the peak of its local staging (the
// part buffers or private copies it holds open), and writes them as JSON to PGATTEST_BENCH_JSON
// (default: the temp folder). The generated database is kept in the cache
// folder and copied in for later runs. PGATTEST_BENCH_VARIANTS ("a,b,e")
// runs only the variants named.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// stockSettings undo the throwaway cluster's speed settings: the by-hand
// recipe restores into Postgres as installed.
var stockSettings = map[string]string{
	"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "wal_level": "replica",
	"max_wal_senders": "10", "autovacuum": "on", "maintenance_work_mem": "64MB", "max_wal_size": "1GB",
	"checkpoint_timeout": "5min",
}

type benchRun struct {
	Variant string  `json:"variant"`
	Round   int     `json:"round"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"archive_bytes"`
	PeakRSS int64   `json:"peak_rss_bytes,omitempty"` // pgattest's own, without its children
	// PeakStaging: the most bytes pgattest held in files of its S3
	// staging folder at once (part buffers, unlinked while open).
	PeakStaging int64 `json:"peak_staging_bytes,omitempty"`
	// CPU: the command's CPU time with its children (pg_dump, pg_restore,
	// the proof's server); StoreCPU: the S3 server's during the run.
	CPU      float64 `json:"cpu_seconds"`
	StoreCPU float64 `json:"store_cpu_seconds,omitempty"`
}

type benchReport struct {
	When       time.Time          `json:"when"`
	Machine    string             `json:"machine"`
	SourceSize int64              `json:"source_bytes"`
	Rounds     int                `json:"rounds"`
	Runs       []benchRun         `json:"runs"`
	Median     map[string]float64 `json:"median_seconds"`
	Ratios     map[string]float64 `json:"ratios"`
	Bytes      map[string]int64   `json:"archive_bytes"`
	PeakRSS    map[string]int64   `json:"peak_rss_bytes"`
	PeakStage  map[string]int64   `json:"peak_staging_bytes,omitempty"`
	CPU        map[string]float64 `json:"median_cpu_seconds,omitempty"`
	StoreCPU   map[string]float64 `json:"median_store_cpu_seconds,omitempty"`
}

func parseSize(s string, def int64) int64 {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return def
	}
	mult := int64(1)
	for suf, m := range map[string]int64{"GB": 1 << 30, "G": 1 << 30, "MB": 1 << 20, "M": 1 << 20} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return def
	}
	return int64(f * float64(mult))
}

// benchSource starts a cluster holding database "bench" of about size bytes,
// generating it the first time.
func benchSource(b *testing.B, size int64) (*testenv.Cluster, int64) {
	b.Helper()
	ctx := context.Background()
	saved := filepath.Join(testenv.CacheDir(), fmt.Sprintf("bench-data-v2-%dMB", size>>20))
	if _, err := os.Stat(saved); err != nil {
		t0 := time.Now()
		c, err := testenv.Start(ctx, testenv.Options{Superuser: testenv.Superuser}) // owner of everything: a role every cluster has
		if err != nil {
			b.Fatal(err)
		}
		got, err := pgtest.Generate(ctx, c, "bench", pgtest.GenerateOptions{Bytes: size})
		if err != nil {
			c.Stop(ctx)
			b.Fatal(err)
		}
		if err := c.SaveData(ctx, saved); err != nil {
			c.Stop(ctx)
			b.Fatal(err)
		}
		c.Stop(ctx)
		fmt.Printf("generated %s (%d MB) in %s, saved in %s\n", "bench", got>>20, time.Since(t0).Round(time.Second), saved)
	}
	src := pgtest.New(b, testenv.Options{Data: saved, Superuser: testenv.Superuser})
	conn, err := pgx.Connect(ctx, src.ConnString("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var got int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&got); err != nil {
		b.Fatal(err)
	}
	return src, got
}

// peakOf calls sample every period until done, and sends the largest
// value it returned.
func peakOf(done <-chan struct{}, period time.Duration, sample func() int64) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			peak = max(peak, sample())
			select {
			case <-done:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// stagedBytes is what a process holds in open files of its S3 staging
// folder (pgattest-s3-UID: part buffers, unlinked while open).
func stagedBytes(pid int) int64 {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	var n int64
	for _, fd := range fds {
		// The S3 staging folder's part buffers, and a restore's private
		// copies (checked, unlinked).
		if target, err := os.Readlink(fd); err == nil && (strings.Contains(target, "/pgattest-s3-") || strings.Contains(target, "/.pgattest-checked-")) {
			if fi, err := os.Stat(fd); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

// residentPeak is a process's own peak resident set (VmHWM).
func residentPeak(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchEnv is added to the environment of every timed command.
var benchEnv []string

// lastCPU is the CPU time (user and system, with reaped children) of the
// last command runWatched ran.
var lastCPU time.Duration

func runTimed(b *testing.B, watchRSS bool, name string, args ...string) (time.Duration, int64) {
	took, rss, _ := runWatched(b, watchRSS, name, args...)
	return took, rss
}

// runWatched runs a command, timed, with its peak RSS and S3 staging
// when watch is set.
func runWatched(b *testing.B, watch bool, name string, args ...string) (time.Duration, int64, int64) {
	b.Helper()
	watchRSS := watch
	cmd := exec.Command(name, args...)
	cmd.Env = append(append(os.Environ(), "PGATTEST_CACHE_DIR="+testenv.CacheDir()), benchEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	var rss, staged <-chan int64
	if watchRSS {
		pid := cmd.Process.Pid
		rss = peakOf(done, 20*time.Millisecond, func() int64 { return residentPeak(pid) })
		staged = peakOf(done, 10*time.Millisecond, func() int64 { return stagedBytes(pid) })
	}
	err := cmd.Wait()
	took := time.Since(t0)
	close(done)
	if ps := cmd.ProcessState; ps != nil {
		lastCPU = ps.UserTime() + ps.SystemTime()
	}
	var peak, stage int64
	if rss != nil {
		peak, stage = <-rss, <-staged
	}
	if err != nil {
		b.Fatalf("%s %q: %v\n%s", name, args, err, stderr.String())
	}
	return took, peak, stage
}

// settle lets the previous variant's deferred work finish before the next
// is timed: both clusters write their dirty buffers, the kernel its dirty
// pages (the by-hand restore leaves a gigabyte of both behind).
func settle(b *testing.B, clusters ...*testenv.Cluster) {
	ctx := context.Background()
	for _, c := range clusters {
		conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		conn.Close(ctx)
	}
	syscall.Sync()
	time.Sleep(time.Second)
}

func pathSize(p string) int64 {
	var n int64
	filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func BenchmarkVsByHand(b *testing.B) {
	size := parseSize(os.Getenv("PGATTEST_BENCH_SIZE"), 1<<30)
	rounds, _ := strconv.Atoi(os.Getenv("PGATTEST_BENCH_ROUNDS"))
	if rounds < 1 {
		rounds = 3
	}
	src, srcSize := benchSource(b, size)
	byHand := pgtest.New(b, testenv.Options{Settings: stockSettings})
	tc := pgtest.Require(b, testenv.Want{Tools: append(testenv.ClientTools, "createdb", "dropdb")})
	work := b.TempDir()
	bin := filepath.Join(work, "pgattest")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pgattest/pgattest").CombinedOutput(); err != nil {
		b.Fatalf("build pgattest: %v\n%s", err, out)
	}
	catalogPath := filepath.Join(work, "catalog.db")
	srcURL := src.ConnString("bench")
	type variant struct {
		key  string
		desc string
		run  func(round int) benchRun
	}
	pgattest := func(key string, extra ...string) func(int) benchRun {
		return func(round int) benchRun {
			dir := filepath.Join(work, "backups-"+key)
			args := append([]string{"--catalog", catalogPath, "-q", "backup", "--db", srcURL, "--name", "bench", "--dir", dir}, extra...)
			took, rss := runTimed(b, true, bin, args...)
			n := pathSize(dir)
			os.RemoveAll(dir)
			return benchRun{Seconds: took.Seconds(), Bytes: n, PeakRSS: rss, CPU: lastCPU.Seconds()}
		}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	recipient := id.Recipient().String()
	// The S3 variant writes to a real versitygw on loopback: its own
	// process, on the same disk, as a store next door would be.
	s3 := pgtest.NewS3(b)
	s3.MakeBucket(b, "bench", false)
	benchEnv = s3.Env()
	defer func() { benchEnv = nil }()
	toS3 := func(int) benchRun {
		args := []string{"--catalog", catalogPath, "-q", "backup", "--db", srcURL, "--name", "bench", "--repo", "s3://bench/pg"}
		cpu0 := s3.CPUTime()
		took, rss, staged := runWatched(b, true, bin, args...)
		store := s3.CPUTime() - cpu0
		var n int64
		c := s3.Client(b)
		for o := range c.ListObjects(context.Background(), "bench", minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				n += o.Size
				c.RemoveObject(context.Background(), "bench", o.Key, minio.RemoveObjectOptions{})
			}
		}
		return benchRun{Seconds: took.Seconds(), Bytes: n, PeakRSS: rss, PeakStaging: staged, CPU: lastCPU.Seconds(), StoreCPU: store.Seconds()}
	}
	bareDump := func(level string) func(int) benchRun {
		return func(int) benchRun {
			file := filepath.Join(work, "bare.dump")
			took, _ := runTimed(b, false, tc.Path("pg_dump"), "-Fc", "-Z", level, "-f", file, srcURL)
			n := pathSize(file)
			os.Remove(file)
			return benchRun{Seconds: took.Seconds(), Bytes: n}
		}
	}
	// Restores of one proven backup, kept for them in a folder and in a
	// bucket of their own: pgattest restore (checked segment by segment on
	// the way) against plain pg_restore of the same archive file.
	restoreSrc := filepath.Join(work, "restore-source")
	runTimed(b, false, bin, "--catalog", catalogPath, "-q", "backup", "--db", srcURL, "--name", "rsrc", "--dir", restoreSrc)
	s3.MakeBucket(b, "benchrestore", false)
	runTimed(b, false, bin, "--catalog", catalogPath, "-q", "backup", "--db", srcURL, "--name", "rsrcs", "--repo", "s3://benchrestore/pg")
	restoreArchive, _ := filepath.Glob(filepath.Join(restoreSrc, "rsrc", "rsrc-*.dump"))
	if len(restoreArchive) != 1 {
		b.Fatalf("the restore source's archive: %v", restoreArchive)
	}
	restoreInto := func(round int, key string, timed func(db string) benchRun) benchRun {
		db := fmt.Sprintf("r%s_%d", key, round)
		runTimed(b, false, tc.Path("createdb"), "-h", byHand.SocketDir, "-p", strconv.Itoa(byHand.Port), "-U", testenv.Superuser, db)
		r := timed(db)
		runTimed(b, false, tc.Path("dropdb"), "-h", byHand.SocketDir, "-p", strconv.Itoa(byHand.Port), "-U", testenv.Superuser, db)
		return r
	}
	pgattestRestore := func(key, name string) func(int) benchRun {
		return func(round int) benchRun {
			return restoreInto(round, key, func(db string) benchRun {
				took, rss, disk := runWatched(b, true, bin, "--catalog", catalogPath, "-q", "restore", "--name", name, "--target", byHand.ConnString(db))
				return benchRun{Seconds: took.Seconds(), PeakRSS: rss, PeakStaging: disk, CPU: lastCPU.Seconds()}
			})
		}
	}
	variants := []variant{
		{"ra", "plain pg_restore --single-transaction of the archive", func(round int) benchRun {
			return restoreInto(round, "ra", func(db string) benchRun {
				took, _ := runTimed(b, false, tc.Path("pg_restore"), "--single-transaction", "-d", byHand.ConnString(db), restoreArchive[0])
				return benchRun{Seconds: took.Seconds(), Bytes: pathSize(restoreArchive[0])}
			})
		}},
		{"rp", "plain pg_restore --single-transaction, the archive on a pipe", func(round int) benchRun {
			return restoreInto(round, "rp", func(db string) benchRun {
				// As pgattest hands it over: on stdin, through a pipe
				// (cat), not a file pg_restore may seek in.
				took, _ := runTimed(b, false, "sh", "-c", `cat "$1" | "$2" --single-transaction -d "$3"`, "sh", restoreArchive[0], tc.Path("pg_restore"), byHand.ConnString(db))
				return benchRun{Seconds: took.Seconds(), Bytes: pathSize(restoreArchive[0])}
			})
		}},
		{"rf", "pgattest restore from a folder", pgattestRestore("rf", "rsrc")},
		{"rs", "pgattest restore from a bucket", pgattestRestore("rs", "rsrcs")},
		{"a", "by hand: pg_dump -Fc, createdb, pg_restore", func(round int) benchRun {
			file := filepath.Join(work, "byhand.dump")
			db := fmt.Sprintf("restored_%d", round)
			t0 := time.Now()
			runTimed(b, false, tc.Path("pg_dump"), "-Fc", "-f", file, srcURL)
			runTimed(b, false, tc.Path("createdb"), "-h", byHand.SocketDir, "-p", strconv.Itoa(byHand.Port), "-U", testenv.Superuser, db)
			runTimed(b, false, tc.Path("pg_restore"), "-d", byHand.ConnString(db), file)
			took := time.Since(t0)
			n := pathSize(file)
			os.Remove(file)
			runTimed(b, false, tc.Path("dropdb"), "-h", byHand.SocketDir, "-p", strconv.Itoa(byHand.Port), "-U", testenv.Superuser, db)
			return benchRun{Seconds: took.Seconds(), Bytes: n}
		}},
		{"b", "pgattest backup (restore proof, 1 job)", pgattest("b")},
		{"c", "pgattest backup --jobs 2", pgattest("c", "--jobs", "2")},
		{"d", "bare pg_dump -Fc -Z 1 to a file", bareDump("1")},
		{"e", "pgattest backup --verify none", pgattest("e", "--verify", "none")},
		{"d0", "bare pg_dump -Fc -Z 0 (pgattest's own call)", bareDump("0")},
		{"s", "pgattest backup --repo s3:// (versitygw)", toS3},
		{"ba", "pgattest backup --encrypt-to age1…", pgattest("ba", "--encrypt-to", recipient)},
		{"ea", "pgattest backup --verify none --encrypt-to age1…", pgattest("ea", "--verify", "none", "--encrypt-to", recipient)},
	}
	// PGATTEST_BENCH_VARIANTS ("a,b") runs only those, for a quicker look.
	if only := os.Getenv("PGATTEST_BENCH_VARIANTS"); only != "" {
		keep := strings.Split(only, ",")
		variants = slices.DeleteFunc(variants, func(v variant) bool { return !slices.Contains(keep, v.key) })
	}
	rep := benchReport{When: time.Now().UTC(), Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		SourceSize: srcSize, Rounds: rounds, Median: map[string]float64{}, Ratios: map[string]float64{}, Bytes: map[string]int64{}, PeakRSS: map[string]int64{}, PeakStage: map[string]int64{},
		CPU: map[string]float64{}, StoreCPU: map[string]float64{}}
	b.ResetTimer()
	for round := 1; round <= rounds; round++ {
		for i := range variants {
			v := variants[(i+round-1)%len(variants)] // rotate the order each round
			settle(b, src, byHand)
			r := v.run(round)
			r.Variant, r.Round = v.key, round
			rep.Runs = append(rep.Runs, r)
			fmt.Printf("round %d  %s  %-45s %8.1fs  %7d MB  rss %d MB  cpu %.1fs  store cpu %.1fs\n", round, v.key, v.desc, r.Seconds, r.Bytes>>20, r.PeakRSS>>20, r.CPU, r.StoreCPU)
		}
	}
	b.StopTimer()
	for _, v := range variants {
		var secs, cpu, store []float64
		for _, r := range rep.Runs {
			if r.Variant == v.key {
				secs = append(secs, r.Seconds)
				cpu, store = append(cpu, r.CPU), append(store, r.StoreCPU)
				rep.Bytes[v.key] = r.Bytes
				rep.PeakRSS[v.key] = max(rep.PeakRSS[v.key], r.PeakRSS)
				if r.PeakStaging > 0 {
					rep.PeakStage[v.key] = max(rep.PeakStage[v.key], r.PeakStaging)
				}
			}
		}
		rep.Median[v.key] = median(secs)
		if c := median(cpu); c > 0 {
			rep.CPU[v.key] = c
		}
		if c := median(store); c > 0 {
			rep.StoreCPU[v.key] = c
		}
	}
	rep.Ratios["b/a"] = rep.Median["b"] / rep.Median["a"]
	rep.Ratios["c/a"] = rep.Median["c"] / rep.Median["a"]
	rep.Ratios["e/d"] = rep.Median["e"] / rep.Median["d"]
	rep.Ratios["e/d0"] = rep.Median["e"] / rep.Median["d0"]
	rep.Ratios["s/b"] = rep.Median["s"] / rep.Median["b"]
	rep.Ratios["ba/b"] = rep.Median["ba"] / rep.Median["b"]
	rep.Ratios["ea/d"] = rep.Median["ea"] / rep.Median["d"]
	rep.Ratios["rf/ra"] = rep.Median["rf"] / rep.Median["ra"]
	rep.Ratios["rp/ra"] = rep.Median["rp"] / rep.Median["ra"]
	rep.Ratios["rf/rp"] = rep.Median["rf"] / rep.Median["rp"]
	rep.Ratios["rs/ra"] = rep.Median["rs"] / rep.Median["ra"]
	fmt.Printf("\nsource database %d MB, %d rounds, medians:\n", srcSize>>20, rounds)
	for _, v := range variants {
		fmt.Printf("  %s  %-45s %8.1fs  archive %5d MB", v.key, v.desc, rep.Median[v.key], rep.Bytes[v.key]>>20)
		if rss := rep.PeakRSS[v.key]; rss > 0 {
			fmt.Printf("  peak RSS %d MB", rss>>20)
		}
		if st := rep.PeakStage[v.key]; st > 0 {
			fmt.Printf("  peak staging %d MB", st>>20)
		}
		if c := rep.CPU[v.key]; c > 0 {
			fmt.Printf("  CPU %.1fs", c)
		}
		if c := rep.StoreCPU[v.key]; c > 0 {
			fmt.Printf(" + the store's %.1fs", c)
		}
		fmt.Println()
	}
	fmt.Printf("  b/a %.2f (goal ≤ 0.50)   c/a %.2f   e/d %.3f (goal ≤ 1.05)   e/d0 %.3f   s/b %.3f (goal ≤ 1.10; peak RSS goal < 96 MB)\n",
		rep.Ratios["b/a"], rep.Ratios["c/a"], rep.Ratios["e/d"], rep.Ratios["e/d0"], rep.Ratios["s/b"])
	fmt.Printf("  ba/b %.3f (goal ≤ 1.05)   ea/d %.3f (goal < 1)\n", rep.Ratios["ba/b"], rep.Ratios["ea/d"])
	fmt.Printf("  rf/ra %.3f   rs/ra %.3f (restores: goal within 5%% of plain pg_restore; peak RSS < 64 MB; local disk from a bucket < 2 segments)\n",
		rep.Ratios["rf/ra"], rep.Ratios["rs/ra"])
	fmt.Printf("  rp/ra %.3f (the pipe's part)   rf/rp %.3f (pgattest's own, against pg_restore reading the same pipe)\n",
		rep.Ratios["rp/ra"], rep.Ratios["rf/rp"])
	out := os.Getenv("PGATTEST_BENCH_JSON")
	if out == "" {
		out = filepath.Join(os.TempDir(), "pgattest-bench-vs-by-hand.json")
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(out, js, 0o644); err != nil {
		b.Error(err)
	}
	fmt.Println("  JSON:", out)
	b.ReportMetric(rep.Ratios["b/a"], "b/a")
	b.ReportMetric(rep.Ratios["e/d"], "e/d")
	b.ReportMetric(rep.Ratios["s/b"], "s/b")
	b.ReportMetric(rep.Ratios["ba/b"], "ba/b")
	b.ReportMetric(rep.Ratios["rf/ra"], "rf/ra")
	b.ReportMetric(rep.Ratios["rs/ra"], "rs/ra")
}
