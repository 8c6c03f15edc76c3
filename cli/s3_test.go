package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
		if code != 0 || !strings.Contains(out, `"digest_checked": true`) || !strings.Contains(out, `"streamed": true`) {
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
	t.Run("a directory-format archive, one object per file", func(t *testing.T) {
		dir := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://backups/team/pg", "--jobs", "2")
		if dir.Status != catalog.StatusVerified || dir.Archive.Format != verify.FormatDirectory || !strings.HasSuffix(dir.Archive.Store.Key, ".dir/") {
			t.Fatalf("status %s, format %s, key %s", dir.Status, dir.Archive.Format, dir.Archive.Store.Key)
		}
		var files []verify.FileDigest
		for _, k := range s3Keys(t, s, "backups") {
			if rel, ok := strings.CutPrefix(k, "team/pg/"+dir.Archive.Store.Key); ok {
				h := verify.NewHasher()
				h.Write(s3Object(t, s, "backups", k))
				files = append(files, verify.FileDigest{Path: rel, Digest: verify.Digest{BLAKE3: h.Sum(), Size: h.Size()}})
			}
		}
		if d := verify.DirDigest(files); d.BLAKE3 != dir.Archive.BLAKE3 || d.Files != dir.Archive.Files || !slices.ContainsFunc(files, func(f verify.FileDigest) bool { return f.Path == "toc.dat" }) {
			t.Errorf("the objects (%d, digest %s) are not the recorded folder (%d files, %s)", d.Files, d.BLAKE3, dir.Archive.Files, dir.Archive.BLAKE3)
		}
		if code, out, errOut := run(t, "--catalog", w.catalog, "verify", dir.ID); code != 0 {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
		exec1(t, src, "postgres", `CREATE DATABASE from_s3_dir`)
		if code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", dir.ID, "--jobs", "2", "--target", src.URL("from_s3_dir", "", "")); code != 0 {
			t.Fatalf("restore: exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "from_s3_dir", stateSQL); got != after {
			t.Errorf("restored %s, want %s", got, after)
		}
	})
	t.Run("an object changed in the bucket is refused", func(t *testing.T) {
		key := "team/pg/" + first.Archive.Store.Key
		// A byte changed in the middle (pg_restore may choke on it first)
		// and one in the archive's last bytes (pg_restore would finish on
		// it, were the end not held back until the digest matched).
		for i, at := range []int{len(body) / 2, len(body) - 10} {
			bad := bytes.Clone(body)
			bad[at] ^= 1
			if _, err := s.Client(t).PutObject(context.Background(), "backups", key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			db := fmt.Sprintf("tampered%d", i)
			exec1(t, src, "postgres", `CREATE DATABASE `+db)
			code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", first.ID, "--target", src.URL(db, "", ""))
			if code != exitProofFailed || !strings.Contains(errOut, "archive digest does not match") || !strings.Contains(errOut, "the target is unchanged") {
				t.Errorf("restore with byte %d of %d changed: exit %d, want 3 and a digest mismatch:\n%s", at, len(body), code, errOut)
			}
			if n := query1(t, src, db, `SELECT count(*) FROM pg_class WHERE relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema','pg_toast'))`); n != "0" {
				t.Errorf("the refused restore wrote %s relations into the target", n)
			}
		}
		code, out, errOut := run(t, "--catalog", w.catalog, "--json", "verify", first.ID)
		if code != exitProofFailed || !strings.Contains(out, "archive digest does not match") {
			t.Errorf("verify (a streamed restore proof): exit %d, want 3 and a digest mismatch\n%s%s", code, out, errOut)
		}
		code, _, errOut = run(t, "--catalog", w.catalog, "verify", "--hash-only", first.ID)
		if code != exitProofFailed {
			t.Errorf("verify --hash-only: exit %d, want 3\n%s", code, errOut)
		}
		s.Client(t).RemoveObject(context.Background(), "backups", key, minio.RemoveObjectOptions{})
		code, out, errOut = run(t, "--catalog", w.catalog, "verify", "--hash-only", first.ID)
		if code != exitProofFailed || !strings.Contains(out, "archive is missing") {
			t.Errorf("verify of a deleted object: exit %d, want 3 and missing\n%s%s", code, out, errOut)
		}
	})
}

// procWatch samples every other process's command line and environment
// while a test runs, for a secret; it also says which programs it saw, so
// a test can tell that it looked while they ran.
type procWatch struct {
	stop  chan struct{}
	done  chan struct{}
	seen  map[string]bool
	leaks []string
}

func watchProcs(secret string) *procWatch {
	w := &procWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	self := strconv.Itoa(os.Getpid())
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			pids, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range pids {
				if filepath.Base(p) == self {
					continue
				}
				cmdline, err := os.ReadFile(p + "/cmdline")
				if err != nil {
					continue
				}
				name := filepath.Base(string(bytes.SplitN(cmdline, []byte{0}, 2)[0]))
				if name == "versitygw" { // the store itself
					continue
				}
				w.seen[name] = true
				if bytes.Contains(cmdline, []byte(secret)) {
					w.leaks = append(w.leaks, name+"'s command line: "+strings.ReplaceAll(string(cmdline), "\x00", " "))
				}
				environ, _ := os.ReadFile(p + "/environ")
				for _, kv := range bytes.Split(environ, []byte{0}) {
					if bytes.Contains(kv, []byte(secret)) {
						k, _, _ := bytes.Cut(kv, []byte("="))
						w.leaks = append(w.leaks, fmt.Sprintf("%s's environment (%s, pid %s)", name, k, filepath.Base(p)))
					}
				}
			}
		}
	}()
	return w
}

func (w *procWatch) end() *procWatch { close(w.stop); <-w.done; return w }

// TestS3Refusals: what an S3 repository refuses, it refuses before any
// dump, in one line with a hint, recording nothing, and the secret key
// appears in no output, catalog, stored object, or child process's command
// line or environment.
func TestS3Refusals(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "plain", false)
	s.SetEnv(t)
	w := newWorkdir(t)
	db := src.ConnString("shop")
	var outputs []string
	backup := func(args ...string) (int, string) {
		code, out, errOut := w.backup(t, append([]string{"--db", db, "--name", "shop"}, args...)...)
		outputs = append(outputs, out, errOut)
		return code, errOut
	}
	for _, c := range []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		error string
		hint  string
	}{
		{"wrong secret key", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret-5f0e1d2c3b4a"}, []string{"--repo", "s3://plain/pg"}, exitFailure,
			"S3: reach bucket plain", "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"unknown access key", map[string]string{"AWS_ACCESS_KEY_ID": "NOSUCHKEY"}, []string{"--repo", "s3://plain/pg"}, exitFailure,
			"S3: reach bucket plain", "refused the credentials"},
		{"missing bucket", nil, []string{"--repo", "s3://no-such-bucket/pg"}, exitFailure, "does not exist", "make the bucket first"},
		{"store not answering", map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, []string{"--repo", "s3://plain/pg"}, exitFailure,
			"S3: reach bucket plain", "AWS_ENDPOINT_URL_S3"},
		{"retention on a bucket without Object Lock", nil, []string{"--repo", "s3://plain/pg", "--lock-days", "7"}, exitFailure,
			"has no Object Lock", "--object-lock-enabled-for-bucket"},
		{"retention in a folder", nil, []string{"--lock-days", "7"}, exitUsage, "retention needs an S3 repository", "Object Lock"},
		{"a lock mode that is none", nil, []string{"--repo", "s3://plain/pg", "--lock-days", "7", "--lock-mode", "strict"}, exitUsage,
			`lock mode "strict"`, "compliance"},
		{"credentials in the URL", nil, []string{"--repo", "s3://" + s.AccessKey + ":" + s.SecretKey + "@plain/pg"}, exitUsage,
			"is not an S3 repository", "never the URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, errOut := backup(c.args...)
			if code != c.code || !strings.Contains(errOut, "error: "+c.error) && !strings.Contains(errOut, c.error) || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, c.hint) {
				t.Errorf("exit %d, want %d, %q and a hint with %q:\n%s", code, c.code, c.error, c.hint, errOut)
			}
			if strings.Contains(errOut, "dump ") {
				t.Errorf("pg_dump ran:\n%s", errOut)
			}
			if n := strings.Count(errOut, "pgattest: error:"); n != 1 {
				t.Errorf("%d error lines", n)
			}
		})
	}
	if code, out, _ := run(t, "--catalog", w.catalog, "--json", "list"); code == 0 && strings.Contains(out, `"id"`) {
		t.Errorf("something was recorded:\n%s", out)
	}
	if keys := s3Keys(t, s, "plain"); len(keys) != 0 {
		t.Errorf("objects stored: %v", keys)
	}

	// One that succeeds, watched: no child holds the secret.
	pw := watchProcs(s.SecretKey)
	code, errOut := backup("--repo", "s3://plain/pg", "--verbose")
	pw.end()
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, errOut)
	}
	if !pw.seen["pg_dump"] {
		t.Fatalf("the watch saw no pg_dump run (saw %d programs): it proves nothing", len(pw.seen))
	}
	if len(pw.leaks) > 0 {
		t.Errorf("the secret key is in %s", strings.Join(slices.Compact(pw.leaks), "\n"))
	}
	files := []string{w.catalog}
	for _, k := range s3Keys(t, s, "plain") {
		if strings.HasSuffix(k, ".manifest.json") {
			outputs = append(outputs, string(s3Object(t, s, "plain", k)))
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	for i, o := range outputs {
		for _, secret := range []string{s.SecretKey, "wrong-secret-5f0e1d2c3b4a"} {
			if strings.Contains(o, secret) {
				t.Errorf("output %d holds a secret key:\n%s", i, o)
			}
		}
	}
}

// TestS3ObjectLockKeptByPrune: --lock-days puts retention on the archive
// and its manifest (the record keeps the date); prune removes what is not
// locked and keeps what is, reporting "locked until DATE", not failing.
func TestS3ObjectLockKeptByPrune(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "vault", true)
	s.SetEnv(t)
	w := newWorkdir(t)
	back := func(args ...string) *catalog.Record {
		t.Helper()
		rec := w.mustBackup(t, append([]string{"--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://vault"}, args...)...)
		time.Sleep(1100 * time.Millisecond)
		return rec
	}
	plain := back()
	locked := back("--lock-days", "2", "--lock-mode", "compliance")
	newest := back()
	st := locked.Archive.Store
	if st.RetainUntil == nil || st.LockMode != "COMPLIANCE" {
		t.Fatalf("the record keeps no retention: %+v", st)
	}
	if d := time.Until(*st.RetainUntil); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("retained until %s, want two days from now", st.RetainUntil)
	}
	for _, key := range []string{st.Key, st.ManifestKey} {
		// As the store says it in its answer's headers (versitygw's
		// GetObjectRetention answer is not what minio-go reads).
		info, err := s.Client(t).StatObject(context.Background(), "vault", key, minio.StatObjectOptions{})
		mode, until := info.Metadata.Get("X-Amz-Object-Lock-Mode"), info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
		if u, perr := time.Parse(time.RFC3339, until); err != nil || mode != "COMPLIANCE" || perr != nil || !u.Equal(*st.RetainUntil) {
			t.Errorf("%s: retention %q until %q (%v), want compliance until %s", key, mode, until, err, st.RetainUntil)
		}
	}
	if code, out, _ := run(t, "--catalog", w.catalog, "show", locked.ID); code != 0 || !strings.Contains(out, "in bucket vault at "+s.Endpoint) ||
		!strings.Contains(out, "until "+st.RetainUntil.Format(time.DateOnly)) || !strings.Contains(out, "(compliance retention)") {
		t.Errorf("show does not say where and until when:\n%s", out)
	}
	if plain.Archive.Store.RetainUntil != nil {
		t.Errorf("a backup without --lock-days was locked")
	}

	code, out, errOut := run(t, "--catalog", w.catalog, "prune", "--keep-last", "1")
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s%s", code, out, errOut)
	}
	want := "kept    " + locked.ID + ": locked until " + st.RetainUntil.Format(time.DateOnly)
	if !strings.Contains(out, want) || !strings.Contains(out, "removed") {
		t.Errorf("prune output lacks %q:\n%s", want, out)
	}
	keys := strings.Join(s3Keys(t, s, "vault"), "\n")
	for _, k := range []string{plain.Archive.Store.Key, plain.Archive.Store.ManifestKey} {
		if strings.Contains(keys, k) {
			t.Errorf("%s was not removed", k)
		}
	}
	for _, k := range []string{st.Key, st.ManifestKey, newest.Archive.Store.Key} {
		if !strings.Contains(keys, k) {
			t.Errorf("%s is gone", k)
		}
	}
	code, out, _ = run(t, "--catalog", w.catalog, "--json", "list")
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	var recs []catalog.Record
	json.Unmarshal([]byte(out), &recs)
	status := map[string]string{}
	for _, r := range recs {
		status[r.ID] = r.Status
	}
	if status[plain.ID] != catalog.StatusPruned || status[locked.ID] != catalog.StatusVerified || status[newest.ID] != catalog.StatusVerified {
		t.Errorf("statuses after prune: %v", status)
	}
	// The store refuses too, whatever the catalog says.
	if err := s.Client(t).RemoveObject(context.Background(), "vault", st.Key, minio.RemoveObjectOptions{VersionID: st.VersionID}); err == nil {
		t.Errorf("the store deleted a version under compliance retention")
	}
}

// TestS3CatalogRebuild: two machines (two catalogs) back up into one
// bucket without overwriting each other; a rebuild from the bucket into a
// new catalog holds them all, and list, audit and restore --as-of work on
// it; a rebuild refuses a catalog that holds records, and --rehash finds
// an archive changed in the bucket (exit 3) while recording the others.
func TestS3CatalogRebuild(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "shared", false)
	s.SetEnv(t)
	one, two := newWorkdir(t), newWorkdir(t)
	repoURL := "s3://shared/pg"
	before := query1(t, src, "shop", stateSQL)
	a := one.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", repoURL)
	b := two.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop-replica", "--repo", repoURL)
	time.Sleep(1100 * time.Millisecond)
	exec1(t, src, "shop", `UPDATE shop.products SET price = price + 1`)
	c := one.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", repoURL)
	if len(s3Keys(t, s, "shared")) != 6 {
		t.Fatalf("want 3 archives and 3 manifests, have %v", s3Keys(t, s, "shared"))
	}

	fresh := filepath.Join(t.TempDir(), "rebuilt.db")
	code, out, errOut := run(t, "--catalog", fresh, "catalog", "rebuild", "--repo", repoURL)
	if code != 0 || !strings.Contains(out, "3 manifests: 3 recorded") {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = run(t, "--catalog", fresh, "--json", "list"); code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	for _, id := range []string{a.ID, b.ID, c.ID} {
		if !strings.Contains(out, id) {
			t.Errorf("the rebuilt catalog lacks %s:\n%s", id, out)
		}
	}
	day := a.StartedAt.Format(time.DateOnly)
	if code, out, errOut := run(t, "--catalog", fresh, "audit", "--from", day, "--to", day); code != 0 || !strings.Contains(out, "shop-replica") {
		t.Errorf("audit of the rebuilt catalog: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "--catalog", fresh, "catalog", "verify"); code != 0 {
		t.Errorf("catalog verify: exit %d\n%s%s", code, out, errOut)
	}
	exec1(t, src, "postgres", `CREATE DATABASE rebuilt_then`)
	code, out, errOut = run(t, "--catalog", fresh, "restore", "--name", "shop", "--as-of", a.StartedAt.Format(time.RFC3339), "--target", src.URL("rebuilt_then", "", ""))
	if code != 0 || !strings.Contains(out, a.ID) {
		t.Fatalf("restore --as-of from the rebuilt catalog: exit %d\n%s%s", code, out, errOut)
	}
	if got := query1(t, src, "rebuilt_then", stateSQL); got != before {
		t.Errorf("restored %s, want %s", got, before)
	}

	code, _, errOut = run(t, "--catalog", fresh, "catalog", "rebuild", "--repo", repoURL)
	if code != exitUsage || !strings.Contains(errOut, "holds records already") {
		t.Errorf("a rebuild into a catalog with records: exit %d, want 2\n%s", code, errOut)
	}

	bad := s3Object(t, s, "shared", "pg/"+b.Archive.Store.Key)
	bad[len(bad)-100] ^= 1
	if _, err := s.Client(t).PutObject(context.Background(), "shared", "pg/"+b.Archive.Store.Key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "rehashed.db")
	code, out, errOut = run(t, "--catalog", other, "catalog", "rebuild", "--repo", repoURL, "--rehash")
	if code != exitProofFailed || !strings.Contains(out, "2 recorded") || !strings.Contains(out, "archive digest does not match") {
		t.Errorf("rebuild --rehash over a changed archive: exit %d, want 3\n%s%s", code, out, errOut)
	}
}

// TestCatalogRebuildFromAFolder: the same from a --dir folder.
func TestCatalogRebuildFromAFolder(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	a := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	fresh := filepath.Join(t.TempDir(), "rebuilt.db")
	code, out, errOut := run(t, "--catalog", fresh, "catalog", "rebuild", "--repo", w.dir, "--rehash")
	if code != 0 || !strings.Contains(out, "1 manifests: 1 recorded") {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "--catalog", fresh, "verify", a.ID); code != 0 {
		t.Errorf("verify from the rebuilt catalog: exit %d\n%s%s", code, out, errOut)
	}
}

// TestS3VersionsHideNothing: in a bucket that keeps versions (Object Lock
// on), a writer of the bucket puts a delete marker over a backup's archive,
// later a hostile newer version. Both hide nothing: verify --hash-only
// passes and says what is over the recorded version (show lists it too),
// restore restores the recorded bytes, and a catalog rebuilt from the bucket
// keeps the version the manifest names (the old code read the key's current
// version: "archive is missing" and a record marked failed, then the
// newer bytes).
func TestS3VersionsHideNothing(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "versioned", true)
	s.SetEnv(t)
	w := newWorkdir(t)
	before := query1(t, src, "shop", stateSQL)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://versioned/pg")
	st := rec.Archive.Store
	if st.VersionID == "" {
		t.Fatalf("the record names no version in a versioned bucket: %+v", st)
	}
	ctx := context.Background()
	obj := "pg/" + st.Key

	// A delete marker over it.
	if err := s.Client(t).RemoveObject(ctx, "versioned", obj, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(t).StatObject(ctx, "versioned", obj, minio.StatObjectOptions{}); err == nil {
		t.Fatal("the key still answers after a delete marker")
	}
	code, out, errOut := run(t, "--catalog", w.catalog, "verify", "--hash-only", rec.ID)
	if code != 0 || !strings.Contains(out, "delete marker") {
		t.Errorf("verify --hash-only under a delete marker: exit %d, want 0 and the marker named\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "--catalog", w.catalog, "show", rec.ID)
	if code != 0 || !strings.Contains(out, "VERIFIED") || !strings.Contains(out, "store: a delete marker") {
		t.Errorf("show after verify under a delete marker: exit %d\n%s", code, out)
	}
	exec1(t, src, "postgres", `CREATE DATABASE under_marker`)
	if code, out, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.URL("under_marker", "", "")); code != 0 {
		t.Fatalf("restore under a delete marker: exit %d\n%s%s", code, out, errOut)
	}
	if got := query1(t, src, "under_marker", stateSQL); got != before {
		t.Errorf("restored %s, want %s", got, before)
	}
	// The manifest hidden too: a rebuild still finds both (the old code
	// listed current objects only: nothing to rebuild from).
	if err := s.Client(t).RemoveObject(ctx, "versioned", "pg/"+st.ManifestKey, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Whose marker it is cannot be told (the owner's deletion, or a
	// writer's): listed, recorded when asked.
	listed := filepath.Join(t.TempDir(), "listed.db")
	if code, out, errOut := run(t, "--catalog", listed, "catalog", "rebuild", "--repo", "s3://versioned/pg"); code != 0 || !strings.Contains(out, "0 recorded") || !strings.Contains(out, "1 hidden behind delete markers") {
		t.Errorf("rebuild with delete markers over the archive and its manifest: exit %d, want it listed as hidden, not recorded\n%s%s", code, out, errOut)
	}
	marked := filepath.Join(t.TempDir(), "marked.db")
	if code, out, errOut := run(t, "--catalog", marked, "catalog", "rebuild", "--repo", "s3://versioned/pg", "--include-hidden"); code != 0 || !strings.Contains(out, "1 recorded") || !strings.Contains(out, "hidden behind a delete marker") {
		t.Errorf("rebuild --include-hidden: exit %d, want its version recorded and the marker said\n%s%s", code, out, errOut)
	}

	// A hostile newer version: another database's archive.
	exec1(t, src, "shop", `UPDATE shop.products SET price = price + 1000`)
	other := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "other", "--repo", "s3://versioned/pg")
	bad := s3Object(t, s, "versioned", "pg/"+other.Archive.Store.Key)
	if _, err := s.Client(t).PutObject(ctx, "versioned", obj, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "--catalog", w.catalog, "verify", "--hash-only", rec.ID)
	if code != 0 || !strings.Contains(out, "newer version") {
		t.Errorf("verify --hash-only under a newer version: exit %d, want 0 and the version named\n%s%s", code, out, errOut)
	}
	fresh := filepath.Join(t.TempDir(), "rebuilt.db")
	if code, out, errOut := run(t, "--catalog", fresh, "catalog", "rebuild", "--repo", "s3://versioned/pg", "--include-hidden"); code != 0 {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	exec1(t, src, "postgres", `CREATE DATABASE under_newer`)
	code, out, errOut = run(t, "--catalog", fresh, "restore", "--id", rec.ID, "--target", src.URL("under_newer", "", ""))
	if code != 0 {
		t.Fatalf("restore from the rebuilt catalog under a newer version: exit %d\n%s%s", code, out, errOut)
	}
	if got := query1(t, src, "under_newer", stateSQL); got != before {
		t.Errorf("the rebuilt catalog restored %s, want the backup's %s", got, before)
	}
}
