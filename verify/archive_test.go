package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"testing"
)

// archiveHead writes the header and table of contents of an archive as
// pg_dump does (pg_backup_archiver.c WriteHead, WriteToc), for the parser's
// tests: format version 1.vmin, custom or directory format.
func archiveHead(vmin, format int, entries []Entry) []byte {
	var b bytes.Buffer
	wint := func(v int) {
		sign := byte(0)
		if v < 0 {
			sign, v = 1, -v
		}
		b.WriteByte(sign)
		for range 4 {
			b.WriteByte(byte(v))
			v >>= 8
		}
	}
	wstr := func(s string, null bool) {
		if null {
			wint(-1)
			return
		}
		wint(len(s))
		b.WriteString(s)
	}
	b.WriteString("PGDMP")
	b.Write([]byte{1, byte(vmin), 0, 4, 8, byte(format)})
	if vmin >= 15 {
		b.WriteByte(1) // gzip
	} else {
		wint(1)
	}
	for _, v := range []int{5, 4, 3, 2, 10, 126, 0} { // 2026-11-02 03:04:05
		wint(v)
	}
	wstr("shop", false)
	wstr("15.18", false)
	wstr("15.18", false)
	wint(len(entries))
	for _, e := range entries {
		wint(e.DumpID)
		if e.hadDumper {
			wint(1)
		} else {
			wint(0)
		}
		wstr(strconv.FormatUint(uint64(e.CatalogOID), 10), false)
		wstr(strconv.FormatUint(uint64(e.ObjectOID), 10), false)
		wstr(e.Name, false)
		wstr(e.Type, false)
		wint(e.Section)
		wstr(e.Defn, false)
		wstr("", false) // drop
		wstr("", e.Type != "TABLE DATA")
		wstr(e.Schema, e.Schema == "")
		wstr(e.Tablespace, false)
		if vmin >= 14 {
			wstr("heap", false)
		}
		if vmin >= 16 {
			wint('r')
		}
		wstr(e.Owner, false)
		wstr("false", false)
		for _, d := range e.Deps {
			wstr(strconv.Itoa(d), false)
		}
		wstr("", true)
		if format == archCustom {
			b.WriteByte(1) // K_OFFSET_POS_NOT_SET
			b.Write(make([]byte, 8))
		} else {
			wstr(fmt.Sprintf("%d.dat", e.DumpID), !e.hadDumper)
		}
	}
	return b.Bytes()
}

func sampleEntries() []Entry {
	return []Entry{
		{DumpID: 7, CatalogOID: 2615, ObjectOID: 16385, Type: "SCHEMA", Name: "shop", Owner: "shop_owner", Section: SectionPreData, Defn: "CREATE SCHEMA shop;\n"},
		{DumpID: 224, CatalogOID: 1259, ObjectOID: 16400, Type: "TABLE", Schema: "shop", Name: "a\nb \"c\"", Owner: "Ann O'Neil", Section: SectionPreData,
			Defn: "CREATE TABLE shop.\"a\nb \"\"c\"\"\" (id integer);\n", Tablespace: "fast", Deps: []int{7}},
		{DumpID: 3400, CatalogOID: 0, ObjectOID: 16400, Type: "TABLE DATA", Schema: "shop", Name: "a\nb \"c\"", Owner: "Ann O'Neil", Section: SectionData, Deps: []int{224}, hadDumper: true},
		{DumpID: 3401, CatalogOID: 0, ObjectOID: 0, Type: "ACL", Schema: "shop", Name: "TABLE a\nb \"c\"", Owner: "Ann O'Neil", Section: SectionNone, Defn: "GRANT SELECT ON TABLE shop.t TO reader;\n", Deps: []int{224, 7}},
	}
}

func TestParseArchiveTOC(t *testing.T) {
	for _, vmin := range []int{12, 14, 15, 16} {
		for _, format := range []int{archCustom, archDirectory} {
			t.Run(fmt.Sprintf("1.%d-format%d", vmin, format), func(t *testing.T) {
				want := sampleEntries()
				head := archiveHead(vmin, format, want)
				// Data after the TOC is not read.
				toc, err := ParseArchiveTOC(bytes.NewReader(append(head, 1, 2, 3)))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(toc.Entries, want) {
					t.Errorf("entries\n got %#v\nwant %#v", toc.Entries, want)
				}
				if toc.Header.DBName != "shop" || toc.Header.TOCEntries != 4 || toc.Header.DumpVersion != fmt.Sprintf("1.%d-0", vmin) {
					t.Errorf("header %+v", toc.Header)
				}
				if toc.Header.CreatedAt != "2026-11-02 03:04:05" {
					t.Errorf("created at %q", toc.Header.CreatedAt)
				}
				// Every cut of the head is "not yet", never an error or a TOC.
				for i := 0; i < len(head); i += 7 {
					got, err := HeadTOC(head[:i])
					if got != nil || err != nil {
						t.Fatalf("HeadTOC of %d of %d bytes: %v, %v", i, len(head), got, err)
					}
				}
				if got, err := HeadTOC(head); err != nil || got == nil || len(got.Entries) != 4 {
					t.Fatalf("HeadTOC of the whole head: %v, %v", got, err)
				}
			})
		}
	}
}

func TestParseArchiveTOCRefusesDamage(t *testing.T) {
	head := archiveHead(14, archCustom, sampleEntries())
	for name, b := range map[string][]byte{
		"not an archive":  []byte("SELECT 1; -- a plain SQL file\n"),
		"format 1.99":     append([]byte("PGDMP\x01\x63\x00\x04\x08\x01"), head[11:]...),
		"odd int size":    append([]byte("PGDMP\x01\x0e\x00\x09\x08\x01"), head[11:]...),
		"huge entry list": append(append([]byte{}, head[:len("PGDMP")+6+5+35+3*5+4+5+5]...), 0, 0xff, 0xff, 0xff, 0x7f),
	} {
		if _, err := ParseArchiveTOC(bytes.NewReader(b)); err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err %v, want a format error", name, err)
		}
	}
}

// FuzzParseArchiveTOC: whatever the names hold (newlines, quotes, bytes
// that are not UTF-8), the TOC read back is the TOC written; and no input
// makes the parser crash or allocate what the input does not hold.
func FuzzParseArchiveTOC(f *testing.F) {
	f.Add([]byte("a\nb"), []byte("Ann O'Neil"), []byte("x\x00y"), uint8(14))
	f.Add([]byte("\n\n"), []byte(`"`), []byte("pg_restore: processing data for table \"x\""), uint8(16))
	f.Add(archiveHead(14, archCustom, sampleEntries()), []byte{}, []byte{0xff}, uint8(15))
	f.Fuzz(func(t *testing.T, name, owner, defn []byte, v uint8) {
		vmin := 12 + int(v%5)
		want := []Entry{
			{DumpID: 1, CatalogOID: 1259, ObjectOID: 1, Type: "TABLE", Schema: string(owner), Name: string(name), Owner: string(owner), Section: SectionPreData, Defn: string(defn)},
			{DumpID: 2, Type: "TABLE DATA", Schema: string(owner), Name: string(name), Owner: string(owner), Section: SectionData, Deps: []int{1}, hadDumper: true},
		}
		for _, format := range []int{archCustom, archDirectory} {
			toc, err := ParseArchiveTOC(bytes.NewReader(archiveHead(vmin, format, want)))
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if !reflect.DeepEqual(toc.Entries, want) {
				t.Fatalf("round trip\n got %#v\nwant %#v", toc.Entries, want)
			}
		}
		// Arbitrary bytes: an error or a TOC, never a crash.
		ParseArchiveTOC(bytes.NewReader(name))
		ParseArchiveTOC(bytes.NewReader(append([]byte("PGDMP\x01\x0e\x00\x04\x08\x01"), defn...)))
	})
}
