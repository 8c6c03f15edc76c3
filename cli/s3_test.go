package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// s3Object reads an object of the test's S3 server without pgattest.
func s3Object(t *testing.T, s *pgtest.S3Server, bucket, key string) []byte {
	t.Helper()
	o, err := s.Client(t).GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	return b
}

func s3Keys(t *testing.T, s *pgtest.S3Server, bucket string) []string {
	t.Helper()
	var keys []string
	for o := range s.Client(t).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// TestS3BackupProvenAndRestorable: a backup to an S3 repository is proven
// from the stream, its object's bytes hash to the record, its manifest is
// beside it, nothing of it stays on this machine, and restore (as-of),
// verify, toc --live and audit --rehash work from the record; an object
// changed in the bucket is refused (exit 3).
func TestS3BackupProvenAndRestorable(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "backups", false)
	s.SetEnv(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	w := newWorkdir(t)
	before := query1(t, src, "shop", stateSQL)
	first := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://backups/team/pg")
	if first.Status != catalog.StatusVerified || first.Archive.Store == nil {
		t.Fatalf("status %s, store %+v: want a verified backup kept in the bucket", first.Status, first.Archive.Store)
	}
	st := first.Archive.Store
	if st.Repo != "s3://backups/team/pg" || st.Bucket != "backups" || st.Endpoint != s.Endpoint || !strings.HasPrefix(st.Key, "shop/shop-") ||
		first.Archive.Path != "s3://backups/team/pg/"+st.Key {
		t.Errorf("location %+v, path %s", st, first.Archive.Path)
	}
	body := s3Object(t, s, "backups", "team/pg/"+st.Key)
	h := verify.NewHasher()
	h.Write(body)
	if h.Sum() != first.Archive.BLAKE3 || int64(len(body)) != first.Archive.Size || !bytes.HasPrefix(body, []byte("PGDMP")) {
		t.Errorf("the object (%d bytes, BLAKE3 %s) is not the recorded archive (%d bytes, %s)", len(body), h.Sum(), first.Archive.Size, first.Archive.BLAKE3)
	}
	var m struct {
		Record catalog.Record `json:"record"`
	}
	if err := json.Unmarshal(s3Object(t, s, "backups", "team/pg/"+st.ManifestKey), &m); err != nil || m.Record.ID != first.ID || m.Record.Archive.BLAKE3 != first.Archive.BLAKE3 {
		t.Errorf("manifest: %v, record %s", err, m.Record.ID)
	}
	if p := first.LastProof(); p == nil || !p.Streamed || p.Rows == 0 {
		t.Errorf("proof %+v: want a streamed restore that counted rows", p)
	}
	if _, err := os.Stat(w.dir); err == nil {
		t.Errorf("the backup made %s on this machine", w.dir)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "*", "*"))
	if len(left) > 0 {
		t.Errorf("left behind in the temp folder: %v", left)
	}

	time.Sleep(1100 * time.Millisecond) // start times are kept to the second
	exec1(t, src, "shop", `DELETE FROM shop.order_items WHERE order_id % 10 = 0`, `DELETE FROM shop.orders WHERE id % 10 = 0`,
		`UPDATE shop.products SET price = price + 1`)
	after := query1(t, src, "shop", stateSQL)
	second := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://backups/team/pg")

	t.Run("restore as of the first, exact", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE from_s3`)
		code, out, errOut := run(t, "--catalog", w.catalog, "restore", "--name", "shop", "--as-of", first.StartedAt.Format(time.RFC3339), "--target", src.URL("from_s3", "", ""))
		if code != 0 || !strings.Contains(out, first.ID) {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if got := query1(t, src, "from_s3", stateSQL); got != before {
			t.Errorf("restored %s, want %s", got, before)
		}
		exec1(t, src, "postgres", `CREATE DATABASE from_s3_jobs`)
		if code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", second.ID, "--jobs", "2", "--target", src.URL("from_s3_jobs", "", "")); code != 0 {
			t.Fatalf("restore --jobs 2: exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "from_s3_jobs", stateSQL); got != after {
			t.Errorf("restored %s, want %s", got, after)
		}
	})
	t.Run("verify, toc --live and audit --rehash read the bucket", func(t *testing.T) {
		code, out, errOut := run(t, "--catalog", w.catalog, "--json", "verify", first.ID)
		if code != 0 || !strings.Contains(out, `"digest_checked": true`) {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := run(t, "--catalog", w.catalog, "verify", "--hash-only", second.ID); code != 0 {
			t.Fatalf("verify --hash-only: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := run(t, "--catalog", w.catalog, "toc", "--live", first.ID); code != 0 || !strings.Contains(out, "order_items") {
			t.Fatalf("toc --live: exit %d\n%s%s", code, out, errOut)
		}
		day := first.StartedAt.Format(time.DateOnly)
		if code, out, errOut := run(t, "--catalog", w.catalog, "audit", "--from", day, "--to", day, "--rehash"); code != 0 {
			t.Fatalf("audit --rehash: exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("an object changed in the bucket is refused", func(t *testing.T) {
		key := "team/pg/" + first.Archive.Store.Key
		bad := bytes.Clone(body)
		bad[len(bad)/2] ^= 1
		if _, err := s.Client(t).PutObject(context.Background(), "backups", key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		exec1(t, src, "postgres", `CREATE DATABASE tampered`)
		code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", first.ID, "--target", src.URL("tampered", "", ""))
		if code != exitProofFailed || !strings.Contains(errOut, "archive digest does not match") {
			t.Errorf("restore: exit %d, want 3 and a digest mismatch:\n%s", code, errOut)
		}
		if n := query1(t, src, "tampered", `SELECT count(*) FROM pg_class WHERE relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema','pg_toast'))`); n != "0" {
			t.Errorf("the refused restore wrote %s relations into the target", n)
		}
		code, _, errOut = run(t, "--catalog", w.catalog, "verify", "--hash-only", first.ID)
		if code != exitProofFailed {
			t.Errorf("verify --hash-only: exit %d, want 3\n%s", code, errOut)
		}
		s.Client(t).RemoveObject(context.Background(), "backups", key, minio.RemoveObjectOptions{})
		code, out, errOut := run(t, "--catalog", w.catalog, "verify", "--hash-only", first.ID)
		if code != exitProofFailed || !strings.Contains(out, "archive is missing") {
			t.Errorf("verify of a deleted object: exit %d, want 3 and missing\n%s%s", code, out, errOut)
		}
	})
}
