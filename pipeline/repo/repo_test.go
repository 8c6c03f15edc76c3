package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// The same suite runs on a folder and on a real S3 server (versitygw on
// loopback), as restic runs one backend suite on every backend.

type backend struct {
	name string
	r    repo.Repo
	// forget drops an upload the way a killed process does: the lock
	// goes, nothing is aborted.
	forget func(u repo.Upload)
}

func backends(t *testing.T) []backend {
	t.Helper()
	local, err := repo.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := pgtest.NewS3(t)
	makeBucket(t, s, "plain", false)
	r3, err := repo.NewS3(repo.Location{Scheme: "s3", Bucket: "plain", Prefix: "team/a"}, s3Config(s, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return []backend{
		{"folder", local, repo.Forget},
		{"s3", r3, repo.Forget},
	}
}

func s3Config(s *pgtest.S3Server, staging string) repo.S3Config {
	return repo.S3Config{Endpoint: s.Addr, PathStyle: true, Region: "us-east-1", PartSize: 5 << 20, Staging: staging,
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")}
}

func makeBucket(t *testing.T, s *pgtest.S3Server, name string, lock bool) {
	s.MakeBucket(t, name, lock)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// write streams data into key in pieces of odd sizes, as a dump does.
func write(t *testing.T, r repo.Repo, key string, data []byte) repo.Upload {
	t.Helper()
	u, err := r.Create(context.Background(), key, repo.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 777_777)
		if _, err := u.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	return u
}

func TestRepoSuite(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			r := b.r
			data := randomBytes(12<<20 + 12345) // three parts of 5 MiB on S3
			u := write(t, r, "shop/shop-1.dump", data)
			if _, err := r.Stat(ctx, "shop/shop-1.dump", ""); !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("visible before Commit: %v", err)
			}
			if objs, _ := r.List(ctx, "shop/"); len(objs) != 0 {
				t.Errorf("listed before Commit: %v", objs)
			}
			obj, err := u.Commit(ctx)
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if obj.Size != int64(len(data)) {
				t.Errorf("committed %d bytes, wrote %d", obj.Size, len(data))
			}
			rc, err := r.Open(ctx, "shop/shop-1.dump", "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("read back %d bytes (%v), not what was written", len(got), err)
			}

			// A second writer of a key that is taken gets ErrExists; the
			// first object stays.
			u2 := write(t, r, "shop/shop-1.dump", []byte("PGDMP another"))
			if _, err := u2.Commit(ctx); !errors.Is(err, repo.ErrExists) {
				t.Errorf("commit over an existing key: %v, want ErrExists", err)
			}
			if st, _ := r.Stat(ctx, "shop/shop-1.dump", ""); st.Size != int64(len(data)) {
				t.Errorf("the first object changed: %d bytes", st.Size)
			}

			// Empty objects, Abort, List, Delete.
			e := write(t, r, "shop/empty.json", nil)
			if _, err := e.Commit(ctx); err != nil {
				t.Errorf("commit an empty object: %v", err)
			}
			a := write(t, r, "shop/aborted.dump", randomBytes(1<<20))
			if err := a.Abort(ctx); err != nil {
				t.Errorf("abort: %v", err)
			}
			objs, err := r.List(ctx, "shop/")
			if err != nil || len(objs) != 2 || objs[0].Key != "shop/empty.json" || objs[1].Key != "shop/shop-1.dump" {
				t.Errorf("list: %v %v", objs, err)
			}
			if err := r.Delete(ctx, "shop/empty.json", ""); err != nil {
				t.Error(err)
			}
			if err := r.Delete(ctx, "shop/empty.json", ""); err != nil {
				t.Errorf("deleting what is gone: %v", err)
			}

			// A run killed mid-write leaves a partial that the next run's
			// AbortStale removes; a live one it leaves alone.
			live := write(t, r, "shop/live.dump", randomBytes(6<<20))
			dead := write(t, r, "shop/dead.dump", randomBytes(6<<20))
			b.forget(dead)
			n, err := r.AbortStale(ctx, "shop/")
			if err != nil || n != 1 {
				t.Errorf("AbortStale: %d, %v; want the dead one", n, err)
			}
			if _, err := live.Commit(ctx); err != nil {
				t.Errorf("the live upload did not survive AbortStale: %v", err)
			}
			if n, _ := r.AbortStale(ctx, "shop/"); n != 0 {
				t.Errorf("AbortStale found %d more", n)
			}
			for _, k := range []string{"../x", "/abs", "a/../b", ""} {
				if _, err := r.Create(ctx, k, repo.CreateOptions{}); err == nil {
					t.Errorf("key %q was taken", k)
				}
			}
		})
	}
}

// TestS3ObjectLockAndErrors: retention put at upload is kept and refuses a
// delete, a bucket without Object Lock says so, wrong credentials and a
// missing bucket are errors that say which, in the store's words.
func TestS3ObjectLockAndErrors(t *testing.T) {
	ctx := context.Background()
	s := pgtest.NewS3(t)
	makeBucket(t, s, "locked", true)
	makeBucket(t, s, "plain", false)
	open := func(bucket string, cfg repo.S3Config) *repo.S3 {
		r, err := repo.NewS3(repo.Location{Scheme: "s3", Bucket: bucket}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cfg := s3Config(s, t.TempDir())
	locked := open("locked", cfg)
	if err := locked.Check(ctx, true); err != nil {
		t.Fatalf("check a bucket with Object Lock: %v", err)
	}
	var noLock *repo.NoObjectLockError
	if err := open("plain", cfg).Check(ctx, true); !errors.As(err, &noLock) {
		t.Errorf("a bucket without Object Lock: %v", err)
	}
	until := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	u, err := locked.Create(ctx, "a.dump", repo.CreateOptions{RetainUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("PGDMP kept"))
	if _, err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := locked.Stat(ctx, "a.dump", "")
	if err != nil || !st.RetainUntil.Equal(until.UTC()) || st.LockMode != "GOVERNANCE" {
		t.Errorf("retention %s %s (%v), want governance until %s", st.LockMode, st.RetainUntil, err, until.UTC())
	}
	var le *repo.LockedError
	if err := locked.Delete(ctx, "a.dump", ""); !errors.As(err, &le) || !le.Until.Equal(until.UTC()) {
		t.Errorf("delete of a locked object: %v", err)
	}
	if _, err := locked.Stat(ctx, "a.dump", ""); err != nil {
		t.Errorf("the locked object is gone: %v", err)
	}

	bad := cfg
	bad.Creds = credentials.NewStaticV4(s.AccessKey, "not-the-secret-7731", "")
	var se *repo.S3Error
	err = open("plain", bad).Check(ctx, false)
	if !errors.As(err, &se) || !se.Credentials() {
		t.Errorf("wrong secret: %v", err)
	}
	if err != nil && bytes.Contains([]byte(err.Error()), []byte("not-the-secret-7731")) {
		t.Errorf("the secret is in the error: %v", err)
	}
	if err := open("nosuchbucket", cfg).Check(ctx, false); !errors.As(err, &se) || !se.NoBucket() {
		t.Errorf("missing bucket: %v", err)
	}
}

// TestParseLocation reads repository URLs and refuses what is not one.
func TestParseLocation(t *testing.T) {
	for in, want := range map[string]string{
		"s3://bucket":               "s3://bucket",
		"s3://bucket/team/a/":       "s3://bucket/team/a",
		"file:///srv/backups":       "file:///srv/backups",
		"/srv/backups/../backups2":  "file:///srv/backups2",
		"s3://bucket//x/../y":       "s3://bucket/y",
		"file://localhost/srv/back": "file:///srv/back",
	} {
		l, err := repo.Parse(in)
		if err != nil || l.URL() != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, l.URL(), err, want)
		}
	}
	for _, in := range []string{"s3://key:secret@bucket/x", "s3://", "gs://bucket", "file://relative/path", "s3://b/x?versionId=1"} {
		_, err := repo.Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) took it", in)
		} else if bytes.Contains([]byte(err.Error()), []byte("secret")) {
			t.Errorf("Parse(%q): the secret is in the error: %v", in, err)
		}
	}
}

// TestExclusiveClaim: of writers racing for one key, the first to start
// keeps it and a later one is told at Create (ErrExists, nothing left
// behind), before it writes a byte; once the first is stored, a new claim
// is refused too. On both backends (a folder's claim is a partial file of
// one name per key, flock-ed by its writer; its Commit never replaces).
func TestExclusiveClaim(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			excl := repo.CreateOptions{Exclusive: true}
			first, err := b.r.Create(ctx, "shop/shop-20261101T000000Z.dump", excl)
			if err != nil {
				t.Fatal(err)
			}
			// An upload under way holds the key.
			if _, err := b.r.Create(ctx, "shop/shop-20261101T000000Z.dump", excl); !errors.Is(err, repo.ErrExists) {
				t.Fatalf("second claim while the first is written: %v, want ErrExists", err)
			}
			if n, err := b.r.AbortStale(ctx, "shop/"); err != nil || n != 0 {
				t.Errorf("the refused claim left %d uploads (%v), or the live one was taken", n, err)
			}
			first.Write([]byte("first"))
			if _, err := first.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := b.r.Create(ctx, "shop/shop-20261101T000000Z.dump", excl); !errors.Is(err, repo.ErrExists) {
				t.Errorf("claim of a stored key: %v, want ErrExists", err)
			}
			// Another key is free.
			u, err := b.r.Create(ctx, "shop/shop-20261101T000000Z-2.dump", excl)
			if err != nil {
				t.Fatal(err)
			}
			u.Write([]byte("second"))
			if _, err := u.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			objs, _ := b.r.List(ctx, "shop/")
			if len(objs) != 2 {
				t.Errorf("stored %v, want both", objs)
			}
		})
	}
}

// TestMoveAndMarks: Move never replaces an object and leaves nothing at
// its source; a mark held by a process that is gone is "dead" to the next
// one, and a live one is not: on both backends.
func TestMoveAndMarks(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, k := range []string{"shop/a.dump", "shop/b.dump"} {
				if _, err := write(t, b.r, k, []byte(k)).Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.r.Move(ctx, "shop/a.dump", "shop/b.dump"); !errors.Is(err, repo.ErrExists) {
				t.Errorf("move over an object: %v, want ErrExists", err)
			}
			if err := b.r.Move(ctx, "shop/a.dump", "shop/.aside/a.dump"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.r.Stat(ctx, "shop/a.dump", ""); !errors.Is(err, repo.ErrNotFound) {
				t.Errorf("the moved object is still at its source: %v", err)
			}
			rc, err := b.r.Open(ctx, "shop/.aside/a.dump", "")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != "shop/a.dump" {
				t.Errorf("moved object holds %q", got)
			}

			release, err := b.r.HoldKey("shop/c.dump")
			if err != nil {
				t.Fatal(err)
			}
			if live, dead, done := b.r.KeyState("shop/c.dump"); !live || dead {
				done(false)
				t.Errorf("a held key: live %v dead %v", live, dead)
			}
			if _, err := b.r.HoldKey("shop/c.dump"); err == nil {
				t.Errorf("a held key was held twice")
			}
			release(true)
			if live, dead, done := b.r.KeyState("shop/c.dump"); live || dead {
				done(false)
				t.Errorf("a released key: live %v dead %v", live, dead)
			}
			// Let go undone, as a killed process does: dead to the next.
			release, err = b.r.HoldKey("shop/d.dump")
			if err != nil {
				t.Fatal(err)
			}
			release(false)
			live, dead, done := b.r.KeyState("shop/d.dump")
			if live || !dead {
				t.Errorf("a mark let go undone: live %v dead %v, want dead", live, dead)
			}
			done(true)
			if _, dead, done := b.r.KeyState("shop/d.dump"); dead {
				done(false)
				t.Errorf("a dead mark dealt with is still there")
			}
		})
	}
}

// TestPartialNamesAreExact: a name that holds ".partial-" (a host such as
// db.partial-eu.internal is in default names) and a folder whose name
// starts as another's are not partial files: AbortStale of the next run
// removes only the dead upload, and List shows every committed object. On
// both backends.
func TestPartialNamesAreExact(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			committed := []string{"app.partial-1/app.partial-1-20261101T000000Z.dump", "app.partial-1/app.partial-1-20261101T000000Z.manifest.json", "shopping/shopping-1.dump"}
			for _, k := range committed {
				if _, err := write(t, b.r, k, []byte(k)).Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			dead, err := b.r.Create(ctx, "app.partial-1/app.partial-1-20261102T000000Z.dump", repo.CreateOptions{Exclusive: true})
			if err != nil {
				t.Fatal(err)
			}
			dead.Write([]byte("PGDMP"))
			b.forget(dead)
			for _, prefix := range []string{"app.partial-1/", "shop/"} {
				if _, err := b.r.AbortStale(ctx, prefix); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, prefix := range []string{"app.partial-1/", "shopping/"} {
				objs, _ := b.r.List(ctx, prefix)
				for _, o := range objs {
					got = append(got, o.Key)
				}
			}
			if len(got) != len(committed) {
				t.Errorf("after AbortStale: %q, want every committed object %q", got, committed)
			}
			// The dead one is gone: its key can be claimed again.
			u, err := b.r.Create(ctx, "app.partial-1/app.partial-1-20261102T000000Z.dump", repo.CreateOptions{Exclusive: true})
			if err != nil {
				t.Errorf("the dead upload still holds its key: %v", err)
			} else {
				u.Abort(ctx)
			}
		})
	}
}

// TestLocalCommitsTheBytesWritten: a writer of the folder swaps the
// partial file for its own before Commit; the object committed holds the
// bytes written, not theirs (the old rename by name committed theirs).
func TestLocalCommitsTheBytesWritten(t *testing.T) {
	ctx := context.Background()
	l, err := repo.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(1 << 20)
	u := write(t, l, "shop/shop-1.dump", data)
	partial := u.(repo.OnDisk).Path()
	if err := os.Rename(partial, partial+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(partial, []byte("PGDMP hostile"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := l.Open(ctx, "shop/shop-1.dump", "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("committed %d bytes (%q…), not the %d written", len(got), got[:min(len(got), 13)], len(data))
	}
	if b, _ := os.ReadFile(partial); string(b) != "PGDMP hostile" {
		t.Errorf("the planted file was touched")
	}
}

// TestLocalFollowsNoLinkedFolder: a writer of the folder makes NAME/ a
// link to a folder elsewhere; nothing is written, listed, moved or deleted
// through it.
func TestLocalFollowsNoLinkedFolder(t *testing.T) {
	ctx := context.Background()
	l, err := repo.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "shop-1.dump"), []byte("precious"), 0o600)
	if err := os.Symlink(elsewhere, filepath.Join(l.Root, "shop")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Create(ctx, "shop/shop-2.dump", repo.CreateOptions{}); err == nil {
		t.Errorf("Create wrote through a linked folder")
	}
	if err := l.Delete(ctx, "shop/shop-1.dump", ""); err == nil {
		t.Errorf("Delete went through a linked folder")
	}
	if err := l.Move(ctx, "shop/shop-1.dump", "other/shop-1.dump"); err == nil {
		t.Errorf("Move went through a linked folder")
	}
	if objs, _ := l.List(ctx, "shop/"); len(objs) != 0 {
		t.Errorf("List read through a linked folder: %v", objs)
	}
	if b, err := os.ReadFile(filepath.Join(elsewhere, "shop-1.dump")); err != nil || string(b) != "precious" {
		t.Errorf("the file elsewhere was touched: %q %v", b, err)
	}
	entries, _ := os.ReadDir(elsewhere)
	if len(entries) != 1 {
		t.Errorf("something was written elsewhere: %v", entries)
	}
}
