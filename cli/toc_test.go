package cli

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestTOC(t *testing.T) {
	src := shop(t)
	exec1(t, src, "postgres", "CREATE DATABASE tiny")
	exec1(t, src, "tiny", "CREATE TABLE notes (id int PRIMARY KEY, body text)", "INSERT INTO notes VALUES (1, 'x')")
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")

	tocJSON := func(t *testing.T, args ...string) (int, tocResult, string) {
		t.Helper()
		code, out, errOut := run(t, append([]string{"--catalog", w.catalog, "--json", "toc", rec.ID}, args...)...)
		var res tocResult
		if code == 0 || code == 3 {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("toc --json exit %d: stdout is not JSON: %v\n%s\n%s", code, err, out, errOut)
			}
		}
		return code, res, errOut
	}

	t.Run("from the catalog", func(t *testing.T) {
		code, res, errOut := tocJSON(t)
		if code != 0 || res.Source != "catalog" || res.Total != rec.TOC.Entries || len(res.Entries) != rec.TOC.Entries {
			t.Fatalf("exit %d, %d of %d entries from %q, want all %d from the catalog\n%s", code, len(res.Entries), res.Total, res.Source, rec.TOC.Entries, errOut)
		}
		types := map[string]int{}
		for _, en := range res.Entries {
			types[en.Type]++
		}
		for typ, n := range rec.TOC.Counts {
			if types[typ] != n {
				t.Errorf("%d entries of type %s, the record counts %d", types[typ], typ, n)
			}
		}
	})
	t.Run("filters", func(t *testing.T) {
		_, all, _ := tocJSON(t)
		want := 0
		for _, en := range all.Entries {
			if en.Type == "TABLE DATA" && en.Schema == "shop" {
				want++
			}
		}
		code, res, _ := tocJSON(t, "--type", "table data", "--schema", "shop")
		if code != 0 || want == 0 || len(res.Entries) != want {
			t.Fatalf("exit %d, %d TABLE DATA entries in shop, want %d", code, len(res.Entries), want)
		}
		for _, en := range res.Entries {
			if en.Type != "TABLE DATA" || en.Schema != "shop" {
				t.Errorf("filtered list has %+v", en)
			}
		}
		code, out, _ := run(t, "--catalog", w.catalog, "toc", rec.ID[:20], "--type", "INDEX")
		if code != 0 || !strings.Contains(out, "of "+strconv.Itoa(rec.TOC.Entries)+" entries") || !strings.Contains(out, "INDEX") || strings.Contains(out, "TABLE DATA") {
			t.Errorf("text toc --type INDEX exit %d:\n%s", code, out)
		}
		code, _, errOut := run(t, "--catalog", w.catalog, "toc", rec.ID, "--type", "TABEL")
		if code != 2 || !strings.Contains(errOut, `"TABEL" is not a pg_dump entry type`) || !strings.Contains(errOut, "hint:") {
			t.Errorf("bad --type: exit %d\n%s", code, errOut)
		}
	})
	t.Run("live matches", func(t *testing.T) {
		code, res, errOut := tocJSON(t, "--live")
		if code != 0 || res.Source != "archive" || res.MatchesCatalog == nil || !*res.MatchesCatalog || res.Total != rec.TOC.Entries {
			t.Fatalf("exit %d source %q matches %v total %d\n%s", code, res.Source, res.MatchesCatalog, res.Total, errOut)
		}
	})
	t.Run("live refuses another archive in its place", func(t *testing.T) {
		// Storage is hostile: another archive renamed into place is not
		// read (its TOC is not listed): its head does not hash to the
		// record, and that is the answer.
		code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("tiny"), "--name", "tiny")
		if code != 0 {
			t.Fatalf("backup tiny exit %d\n%s", code, errOut)
		}
		other := decodeRecord(t, out)
		data, err := os.ReadFile(other.Archive.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rec.Archive.Path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = run(t, "--catalog", w.catalog, "toc", rec.ID, "--live")
		if code != 3 || !strings.Contains(errOut, "archive digest does not match") || strings.Contains(out+errOut, "notes") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		// The catalog's copy is untouched by what happened on disk.
		code, res, _ := tocJSON(t)
		if code != 0 || res.Total != rec.TOC.Entries {
			t.Errorf("catalog entries after the swap: exit %d, %d entries", code, res.Total)
		}
	})
	t.Run("unknown ID", func(t *testing.T) {
		code, _, errOut := run(t, "--catalog", w.catalog, "toc", "19990101")
		if code != 2 || !strings.Contains(errOut, "no such backup") {
			t.Errorf("unknown ID: exit %d\n%s", code, errOut)
		}
	})
}
