package pipeline_test

import (
	"context"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// Sources that restored by hand but failed the proof: each must verify.

// proofRows returns the rows the last proof counted, by schema.name.
func proofRows(rec *catalog.Record) map[string]int64 {
	out := map[string]int64{}
	for _, tb := range rec.LastProof().Tables {
		out[tb.Schema+"."+tb.Name] = tb.Rows
	}
	return out
}

func mustVerify(t *testing.T, o pipeline.Options) *catalog.Record {
	t.Helper()
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.Record.Status != catalog.StatusVerified {
		t.Fatalf("status %s: %s", res.Record.Status, res.Record.LastProof().Error)
	}
	return res.Record
}

// A table in a tablespace of its own: the proof has no such tablespace, so
// it restores without tablespaces and says so.
func TestProofRestoresWithoutTablespaces(t *testing.T) {
	src := pgtest.New(t)
	loc, err := os.MkdirTemp("", "pgattest-tablespace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(loc) })
	if u, err := user.Lookup(src.ServerUser); err == nil && os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(loc, uid, gid)
	}
	execAs(t, src.ConnString("postgres"), "CREATE TABLESPACE fast LOCATION '"+loc+"'")
	execAs(t, src.ConnString("postgres"), "CREATE DATABASE spaced")
	execAs(t, src.ConnString("spaced"), `CREATE TABLE public.hot (id int PRIMARY KEY) TABLESPACE fast;
		CREATE INDEX hot_idx ON public.hot (id) TABLESPACE fast;
		INSERT INTO public.hot SELECT generate_series(1, 250)`)
	o := backupOptions(t, src.ConnString("spaced"))
	o.Name = "spaced"
	rec := mustVerify(t, o)
	if got := proofRows(rec)["public.hot"]; got != 250 {
		t.Errorf("public.hot restored with %d rows, want 250", got)
	}
	if !someLineHolds(rec.LastProof().Skipped, []string{"tablespace fast", "default tablespace"}) {
		t.Errorf("skipped %q: want a line saying tablespace fast was not restored", rec.LastProof().Skipped)
	}
}

// Names may hold newlines (and pg_restore prints them as they are): both
// the streamed proof and the parallel one restore every table, and a
// selective restore finds the table by its exact name.
func TestNamesWithNewlines(t *testing.T) {
	src := pgtest.New(t)
	execAs(t, src.ConnString("postgres"), "CREATE DATABASE lines")
	execAs(t, src.ConnString("lines"), `CREATE TABLE public."line one
line two" (id int); INSERT INTO public."line one
line two" SELECT generate_series(1, 1000);
		CREATE SCHEMA "odd
schema"; CREATE TABLE "odd
schema".other (id int); INSERT INTO "odd
schema".other SELECT generate_series(1, 20)`)
	want := map[string]int64{"public.line one\nline two": 1000, "odd\nschema.other": 20}
	for _, jobs := range []int{1, 2} {
		o := backupOptions(t, src.ConnString("lines"))
		o.Name, o.Jobs = "lines", jobs
		rec := mustVerify(t, o)
		got := proofRows(rec)
		for name, n := range want {
			if got[name] != n {
				t.Errorf("jobs %d: %q restored with %d rows, want %d (proof counted %v)", jobs, name, got[name], n, got)
			}
		}
		if jobs == 1 && !rec.LastProof().Streamed {
			t.Error("the one-job proof did not stream")
		}
		var found bool
		for _, tb := range rec.TOC.Tables {
			found = found || (tb.Schema == "public" && tb.Name == "line one\nline two")
		}
		if !found {
			t.Errorf("jobs %d: the record's tables %v lack the exact name", jobs, rec.TOC.Tables)
		}
		if jobs == 1 {
			execAs(t, src.ConnString("postgres"), "CREATE DATABASE lines_copy")
			plan, err := pipeline.Restore(context.Background(), pipeline.RestoreOptions{
				Record: rec, Target: src.ConnString("lines_copy"), Tables: []string{"public.line one\nline two"}})
			if err != nil {
				t.Fatalf("restore --table of the newline name: %v", err)
			}
			if len(plan.Entries) < 2 {
				t.Errorf("restore selected %d entries", len(plan.Entries))
			}
			if n := countRowsIn(t, src, "lines_copy", `public."line one
line two"`); n != 1000 {
				t.Errorf("restored %d rows of the table, want 1000", n)
			}
		}
	}
}

// A LATIN1 database: pgattest's own connections speak UTF8 whatever the
// database's encoding, so it backs up, proves, and restores into another
// LATIN1 database with its text intact.
func TestLatin1Source(t *testing.T) {
	src := pgtest.New(t)
	for _, db := range []string{"latin", "latin_copy"} {
		execAs(t, src.ConnString("postgres"), "CREATE DATABASE "+db+" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
	}
	execAs(t, src.ConnString("latin"), `CREATE TABLE public.cafés (name text); INSERT INTO public.cafés VALUES ('Café Müller'), ('Señor Ñandú')`)
	o := backupOptions(t, src.ConnString("latin"))
	o.Name = "latin"
	rec := mustVerify(t, o)
	if got := proofRows(rec)["public.cafés"]; got != 2 {
		t.Errorf("public.cafés restored with %d rows, want 2", got)
	}
	if _, err := pipeline.Restore(context.Background(), pipeline.RestoreOptions{Record: rec, Target: src.ConnString("latin_copy")}); err != nil {
		t.Fatalf("restore into a LATIN1 database: %v", err)
	}
	ctx := context.Background()
	conn, err := testenv.ConnectUTF8(ctx, src.ConnString("latin_copy"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var names string
	if err := conn.QueryRow(ctx, `SELECT string_agg(name, '|' ORDER BY name) FROM public.cafés`).Scan(&names); err != nil {
		t.Fatal(err)
	}
	if names != "Café Müller|Señor Ñandú" {
		t.Errorf("restored text %q", names)
	}
}

func countRowsIn(t *testing.T, c *testenv.Cluster, db, table string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := testenv.ConnectUTF8(ctx, c.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return n
}
