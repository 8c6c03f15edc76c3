package verify

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// WithoutDrops empties exactly the drop statements asked for: every other
// byte of the archive is as it was, and the result parses to the same
// entries.
func TestWithoutDrops(t *testing.T) {
	raw, err := os.ReadFile("testdata/select.dump")
	if err != nil {
		t.Fatal(err)
	}
	p := &tocReader{}
	br := bytes.NewReader(raw)
	p.r = readerFunc(func(b []byte) (int, error) { n, err := br.Read(b); p.pos += int64(n); return n, err })
	toc, err := p.read()
	if err != nil {
		t.Fatal(err)
	}
	var pick []Entry
	for _, e := range toc.Entries {
		if e.dropAt[1]-e.dropAt[0] > int64(1+p.intSize) && len(pick) < 2 { // a drop statement of some length
			pick = append(pick, e)
		}
	}
	if len(pick) != 2 {
		t.Fatalf("the test archive has %d entries with drop statements", len(pick))
	}
	r, err := WithoutDrops(bytes.NewReader(raw), map[int]bool{pick[0].DumpID: true, pick[1].DumpID: true})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	empty := make([]byte, 1+p.intSize)
	var want []byte
	want = append(want, raw[:pick[0].dropAt[0]]...)
	want = append(want, empty...)
	want = append(want, raw[pick[0].dropAt[1]:pick[1].dropAt[0]]...)
	want = append(want, empty...)
	want = append(want, raw[pick[1].dropAt[1]:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("rewritten archive of %d bytes differs from the expected splice (%d bytes)", len(got), len(want))
	}
	// Read back on its own: the chosen drop statements are empty strings,
	// every other entry's drop statement and the rest as they were.
	q := &tocReader{}
	gr := bytes.NewReader(got)
	q.r = readerFunc(func(b []byte) (int, error) { n, err := gr.Read(b); q.pos += int64(n); return n, err })
	again, err := q.read()
	if err != nil || len(again.Entries) != len(toc.Entries) {
		t.Fatalf("the rewritten archive does not parse to the same entries: %v", err)
	}
	for i, e := range again.Entries {
		before := raw[toc.Entries[i].dropAt[0]:toc.Entries[i].dropAt[1]]
		after := got[e.dropAt[0]:e.dropAt[1]]
		chosen := e.DumpID == pick[0].DumpID || e.DumpID == pick[1].DumpID
		switch {
		case chosen && !bytes.Equal(after, empty):
			t.Errorf("entry %d: drop statement %q, want an empty one", e.DumpID, after)
		case !chosen && !bytes.Equal(after, before):
			t.Errorf("entry %d: drop statement changed", e.DumpID)
		}
		if e.Defn != toc.Entries[i].Defn || e.Name != toc.Entries[i].Name {
			t.Errorf("entry %d changed", e.DumpID)
		}
	}
	if !bytes.Equal(got[len(got)-(len(raw)-int(p.pos)):], raw[p.pos:]) {
		t.Error("the archive's data after its table of contents changed")
	}
}
