package verify

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden is what a TOC test compares: the parsed TOC after Refine with the
// roles of the .roles file beside the .toc, and its summary.
type golden struct {
	TOC    *TOC           `json:"toc"`
	Counts map[string]int `json:"counts"`
	Tables [][2]string    `json:"tables"`
	Owners []string       `json:"owners"`
}

// TestParseTOCGolden parses real `pg_restore -l` outputs (PostgreSQL 15:
// the sample shop in custom and directory format, and a database of odd
// names with spaces, quotes, unicode and upper case).
func TestParseTOCGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.toc")
	if len(files) < 3 {
		t.Fatalf("golden inputs missing: %q", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			toc, err := ParseTOC(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if roles, err := os.ReadFile(strings.TrimSuffix(f, ".toc") + ".roles"); err == nil {
				toc.Refine(strings.Split(strings.TrimSpace(string(roles)), "\n"))
			}
			got, _ := json.MarshalIndent(golden{toc, toc.Counts(), toc.Tables(), toc.Owners()}, "", "  ")
			path := strings.TrimSuffix(f, ".toc") + ".golden.json"
			if *update {
				os.WriteFile(path, append(got, '\n'), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./verify -run Golden -update)", err)
			}
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
				t.Errorf("parse of %s differs from %s (rerun with -update and review the diff):\n%s", f, path, got)
			}
		})
	}
}

// Spot checks that do not depend on the golden files being right.
func TestParseTOCOddNames(t *testing.T) {
	in, _ := os.ReadFile("testdata/odd-names.toc")
	toc, err := ParseTOC(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	toc.Refine([]string{"Ann Smith", "postgres"})
	if toc.Header.DBName != "Odd Names" || toc.Header.Format != "CUSTOM" || toc.Header.DumpVersion != "1.14-0" {
		t.Errorf("header %+v", toc.Header)
	}
	want := map[[2]string]bool{{"Sales Q1", "café"}: true, {"Sales Q1", `order "items"`}: true, {"public", "Users"}: true}
	tables := toc.Tables()
	if len(tables) != len(want) {
		t.Fatalf("tables %q", tables)
	}
	for _, tb := range tables {
		if !want[tb] {
			t.Errorf("unexpected table %q", tb)
		}
	}
	for _, e := range toc.Entries {
		if e.Owner != "Ann Smith" {
			t.Errorf("entry %d %s %q: owner %q", e.DumpID, e.Type, e.Name, e.Owner)
		}
	}
	if n := toc.Counts()["TABLE DATA"]; n != 3 {
		t.Errorf("TABLE DATA entries %d, want 3", n)
	}
}

func FuzzParseTOC(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toc")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(string(b))
	}
	f.Add("1; 0 0 ENCODING - ENCODING \n")
	f.Add("12; 1259 16390 TABLE DATA public t owner\n")
	f.Fuzz(func(t *testing.T, in string) {
		toc, err := ParseTOC(strings.NewReader(in))
		if err != nil {
			return
		}
		toc.Refine([]string{"a b", "postgres"})
		toc.Counts()
		toc.Tables()
		toc.Owners()
		// Every entry renders to a line that parses back to the same entry.
		for _, e := range toc.Entries {
			back, err := parseEntry(e.Line())
			if err != nil {
				t.Fatalf("entry %+v renders as %q, which does not parse: %v", e, e.Line(), err)
			}
			if back.DumpID != e.DumpID || back.CatalogOID != e.CatalogOID || back.ObjectOID != e.ObjectOID || back.Type != e.Type {
				t.Fatalf("round trip of %q changed the entry: %+v → %+v", e.Line(), e, back)
			}
		}
	})
}
