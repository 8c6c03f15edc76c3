package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// rawArchive dumps db uncompressed through a pipe, as the pipeline does.
func rawArchive(t *testing.T, tc testenv.Toolchain, c *testenv.Cluster, db string) []byte {
	t.Helper()
	cmd := exec.Command(tc.Path("pg_dump"), "--format=custom", "--compress=0", "--dbname="+c.ConnString(db))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr // a pipe, not a file: no data offsets
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	return out.Bytes()
}

// restoreScript is what pg_restore makes of an archive: every statement
// and every row, as SQL (less the random key of psql's \restrict lines).
func restoreScript(t *testing.T, tc testenv.Toolchain, archive string) []byte {
	t.Helper()
	out, err := exec.Command(tc.Path("pg_restore"), "--file=-", archive).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pg_restore %s: %v\n%s", archive, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var keep [][]byte
	for _, l := range bytes.SplitAfter(out, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(`\restrict `)) && !bytes.HasPrefix(l, []byte(`\unrestrict `)) {
			keep = append(keep, l)
		}
	}
	return bytes.Join(keep, nil)
}

// TestDeflateArchive: the archive pgattest compresses reads back, through
// plain pg_restore, as exactly the SQL of pg_dump's uncompressed archive —
// tables of many segments, an empty table, large objects small and big.
func TestDeflateArchive(t *testing.T) {
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	c := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.LoadSample(ctx, c, "shop"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE shop.nothing (id int)`,
		"CREATE TABLE shop.\"new\nline\" AS SELECT g, 'a\nb' AS t FROM generate_series(1, 300) g", // names may hold newlines
		`CREATE TABLE shop.big AS SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 20) AS t FROM generate_series(1, 5000) g`,
		`SELECT lo_from_bytea(0, decode(string_agg(md5(g::text), ''), 'hex')) FROM generate_series(1, 100000) g`,
		`SELECT lo_from_bytea(0, '')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw := rawArchive(t, tc, c, "shop")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "raw.dump")
	if err := os.WriteFile(rawPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	want := restoreScript(t, tc, rawPath)
	if !bytes.Contains(want, []byte("COPY shop.big")) || !bytes.Contains(want, []byte("lo_open")) {
		t.Fatalf("the raw archive lacks the test's table or large objects:\n%.2000s", want)
	}

	// A failed write (a full disk) stops the reading too: pg_dump is not
	// left to run to its end for nothing.
	n, err := deflateArchive(&errWriter{n: 100}, bytes.NewReader(raw), 1)
	var fe *archiveFormatError
	if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("got %v, want the write's error", err)
	}
	if n > int64(len(raw))/2 {
		t.Errorf("read %d of %d bytes after the write failed", n, len(raw))
	}

	for _, level := range []int{1, 6, 9} {
		var out bytes.Buffer
		n, err := deflateArchive(&out, bytes.NewReader(raw), level)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if n != int64(len(raw)) {
			t.Errorf("level %d: read %d of %d bytes", level, n, len(raw))
		}
		if out.Len() >= len(raw)*3/4 {
			t.Errorf("level %d: %d bytes from %d: not compressed", level, out.Len(), len(raw))
		}
		p := filepath.Join(dir, "deflated.dump")
		if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := restoreScript(t, tc, p); !bytes.Equal(got, want) {
			t.Fatalf("level %d: pg_restore reads %d bytes of SQL from the compressed archive, %d from the raw one", level, len(got), len(want))
		}
		list, err := exec.Command(tc.Path("pg_restore"), "--list", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(list), "Compression: 1") && !strings.Contains(string(list), "Compression: gzip") {
			t.Errorf("level %d: the header does not say gzip:\n%.600s", level, list)
		}
	}
}

// TestDeflateArchiveCutShort: a stream cut anywhere is an error that says
// the stream ended (pg_dump died), never a panic or a hang; bytes that are
// not an archive say so.
func TestDeflateArchiveCutShort(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "raw.dump"))
	if err != nil {
		t.Fatal(err)
	}
	var full bytes.Buffer
	if _, err := deflateArchive(&full, bytes.NewReader(raw), 1); err != nil {
		t.Fatalf("the whole archive: %v", err)
	}
	for cut := 1; cut < len(raw); cut += max(1, len(raw)/300) {
		_, err := deflateArchive(io.Discard, bytes.NewReader(raw[:cut]), 1)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: %v, want an unexpected end", cut, len(raw), err)
		}
	}
	_, err = deflateArchive(io.Discard, strings.NewReader("-- PostgreSQL database dump\n"), 1)
	var fe *archiveFormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "not a custom-format archive") {
		t.Fatalf("a plain-text dump: %v", err)
	}
}

// errWriter fails after n bytes, like a full disk.
type errWriter struct{ n int }

func (w *errWriter) Write(b []byte) (int, error) {
	if w.n -= len(b); w.n < 0 {
		return 0, errors.New("no space left on device")
	}
	return len(b), nil
}

func FuzzDeflateArchive(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "raw.dump"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		deflateArchive(io.Discard, bytes.NewReader(b), 1) // must return, not panic
	})
}
