package cli

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// bigShop is the shop with a table of random rows, so its archive takes
// several 5 MiB parts (PGATTEST_S3_PART_SIZE=5); the tests back it up
// uncompressed (--compress 0), so the race detector's slowdown of
// pgattest's compressor does not weigh on them.
func bigShop(t *testing.T) *testenv.Cluster {
	t.Helper()
	src := shop(t)
	exec1(t, src, "shop", `CREATE TABLE shop.blob AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) AS junk FROM generate_series(1, 200000) g`)
	return src
}

func incompleteUploads(t *testing.T, s *pgtest.S3Server, bucket string) int {
	t.Helper()
	n := 0
	for u := range s.Client(t).ListIncompleteUploads(context.Background(), bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

// TestS3Faults: a store that throttles (503 SlowDown) is retried with
// backoff and the backup is whole; one that stalls is given up after
// PGATTEST_S3_TIMEOUT with a clear error; one that dies mid-upload fails
// the backup (exit 1, no record, no object) and the next run aborts the
// upload it left; a staging folder far smaller than the archive is enough.
func TestS3Faults(t *testing.T) {
	src := bigShop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "flaky", false)
	s.SetEnv(t)
	t.Setenv("PGATTEST_S3_PART_SIZE", "5")
	db := src.ConnString("shop")
	w := newWorkdir(t)
	through := func(t *testing.T, decide func(r *http.Request, kind string, n int) pgtest.Fault) *pgtest.FaultProxy {
		p := pgtest.NewFaultProxy(t, s, decide)
		t.Setenv("AWS_ENDPOINT_URL_S3", p.Endpoint)
		return p
	}
	records := func() int {
		code, out, _ := run(t, "--catalog", w.catalog, "--json", "list")
		if code != 0 {
			return 0
		}
		return strings.Count(out, `"id":`)
	}

	t.Run("throttled: retried, whole", func(t *testing.T) {
		p := through(t, func(r *http.Request, kind string, n int) pgtest.Fault {
			if (kind == "UploadPart" && n%2 == 0) || (kind == "CompleteMultipartUpload" && n == 1) || (kind == "CreateMultipartUpload" && n == 1) {
				return pgtest.SlowDown
			}
			return pgtest.Pass
		})
		rec := w.mustBackup(t, "--db", db, "--name", "big", "--repo", "s3://flaky/pg", "--compress", "0")
		if rec.Status != catalog.StatusVerified || p.Count("UploadPart") < 4 || p.Injected(pgtest.SlowDown) < 3 {
			t.Fatalf("status %s after %d part uploads, %d throttled", rec.Status, p.Count("UploadPart"), p.Injected(pgtest.SlowDown))
		}
		if rec.Archive.Size < 12<<20 {
			t.Fatalf("the archive is %d bytes: too small to test parts", rec.Archive.Size)
		}
		h := verify.NewHasher()
		h.Write(s3Object(t, s, "flaky", "pg/"+rec.Archive.Store.Key))
		if h.Sum() != rec.Archive.BLAKE3 {
			t.Errorf("the stored object does not hash to the record")
		}
	})

	t.Run("stalled: given up with a clear error", func(t *testing.T) {
		t.Setenv("PGATTEST_S3_TIMEOUT", "2s")
		through(t, func(r *http.Request, kind string, n int) pgtest.Fault {
			if kind == "UploadPart" && n >= 2 {
				return pgtest.Stall
			}
			return pgtest.Pass
		})
		before := records()
		time.Sleep(1100 * time.Millisecond)
		code, _, errOut := w.backup(t, "--db", db, "--name", "big", "--repo", "s3://flaky/pg", "--compress", "0")
		if code != exitFailure || !strings.Contains(errOut, "stalled") || !strings.Contains(errOut, "moved no data for 2s") {
			t.Errorf("exit %d, want 1 and a stall:\n%s", code, errOut)
		}
		if records() != before {
			t.Errorf("the stalled backup was recorded")
		}
	})
	t.Setenv("AWS_ENDPOINT_URL_S3", s.Endpoint)
	if n := incompleteUploads(t, s, "flaky"); n != 0 {
		t.Errorf("%d uploads left unfinished after a stall: the abort should have ended them", n)
	}

	t.Run("the store dies mid-upload", func(t *testing.T) {
		through(t, func(r *http.Request, kind string, n int) pgtest.Fault {
			if kind == "UploadPart" && n == 2 {
				s.Kill()
			}
			return pgtest.Pass
		})
		before := records()
		time.Sleep(1100 * time.Millisecond)
		code, _, errOut := w.backup(t, "--db", db, "--name", "big", "--repo", "s3://flaky/pg", "--compress", "0")
		if code != exitFailure || !strings.Contains(errOut, "S3: ") {
			t.Errorf("exit %d, want 1 and the store's failure:\n%s", code, errOut)
		}
		if records() != before {
			t.Errorf("the failed backup was recorded")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if n := incompleteUploads(t, s, "flaky"); n != 1 {
			t.Fatalf("%d unfinished uploads after the store died, want the one", n)
		}
		for _, k := range s3Keys(t, s, "flaky") {
			if !strings.Contains(k, "big-") {
				t.Errorf("unexpected object %s", k)
			}
		}
		t.Setenv("AWS_ENDPOINT_URL_S3", s.Endpoint)
		time.Sleep(1100 * time.Millisecond)
		code, _, errOut = w.backup(t, "--db", db, "--name", "big", "--repo", "s3://flaky/pg", "--compress", "0", "--verbose")
		if code != 0 || !strings.Contains(errOut, "aborted 1 unfinished upload(s) of killed runs") {
			t.Errorf("the next run: exit %d, want 0 and the stale upload aborted:\n%s", code, lastLines(errOut, 20))
		}
		if n := incompleteUploads(t, s, "flaky"); n != 0 {
			t.Errorf("%d unfinished uploads after the next run", n)
		}
	})

	t.Run("staging on a tmpfs far smaller than the archive", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("mounting a tmpfs needs root")
		}
		dir := filepath.Join(t.TempDir(), "small")
		os.Mkdir(dir, 0o700)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		t.Setenv("PGATTEST_STAGING_DIR", dir)
		time.Sleep(1100 * time.Millisecond)
		rec := w.mustBackup(t, "--db", db, "--name", "big", "--repo", "s3://flaky/pg", "--compress", "0")
		if rec.Status != catalog.StatusVerified || rec.Archive.Size < 24<<20 {
			t.Errorf("status %s, archive %d bytes: want a verified archive twice the staging folder's size", rec.Status, rec.Archive.Size)
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
