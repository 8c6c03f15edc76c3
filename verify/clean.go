package verify

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// pg_restore --clean runs each entry's drop statement, in reverse order,
// before it restores. For a partitioned table that fails: a partition's
// index or index-backed constraint (its primary key, say) is attached to
// the parent's, and dropping it alone is refused ("cannot drop inherited
// constraint"); dropping the parent's takes it along. So a clean restore
// of such an archive is given the archive with those drop statements
// emptied (WithoutDrops): the rest of its bytes are as stored.

// AttachedIndexes returns the dump IDs of the entries of entries whose
// drop statement --clean cannot run: the indexes and index-backed
// constraints of partitions, attached to their parent's (the tags of the
// archive's INDEX ATTACH entries).
func AttachedIndexes(entries []Entry) map[int]bool {
	attached := map[[2]string]bool{}
	for _, e := range entries {
		if e.Type == "INDEX ATTACH" {
			attached[[2]string{e.Schema, e.Name}] = true
		}
	}
	out := map[int]bool{}
	for _, e := range entries {
		name := e.Name
		if e.Type == "CONSTRAINT" { // tagged "table constraint": the name from its SQL
			name = constraintName(e.Defn)
		}
		if (e.Type == "INDEX" || e.Type == "CONSTRAINT") && attached[[2]string{e.Schema, name}] {
			out[e.DumpID] = true
		}
	}
	return out
}

// constraintName is the name in "ALTER TABLE … ADD CONSTRAINT name …".
func constraintName(sql string) string {
	for _, st := range statements(sql) {
		for i := 0; i+2 < len(st); i++ {
			if st[i].is("ADD") && st[i+1].is("CONSTRAINT") {
				if n, ok := st[i+2].name(); ok {
					return n
				}
			}
		}
	}
	return ""
}

// WithoutDrops returns an archive read from r (a custom-format file, or a
// directory-format archive's toc.dat) with the drop statements of the
// entries in ids emptied, every other byte as it was: its header and
// table of contents are read and changed, the rest streams from r as it
// is read.
func WithoutDrops(r io.Reader, ids map[int]bool) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var head bytes.Buffer
	p := &tocReader{}
	p.r = readerFunc(func(b []byte) (int, error) {
		n, err := br.Read(b)
		head.Write(b[:n])
		p.pos += int64(n)
		return n, err
	})
	toc, err := p.read()
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, &UnreadableError{Path: "the archive", Detail: err.Error()}
	}
	raw := head.Bytes()
	var out bytes.Buffer
	out.Grow(len(raw))
	at := int64(0)
	empty := make([]byte, 1+p.intSize) // a string of length 0: sign 0, value 0
	for _, e := range toc.Entries {
		if !ids[e.DumpID] {
			continue
		}
		out.Write(raw[at:e.dropAt[0]])
		out.Write(empty)
		at = e.dropAt[1]
	}
	out.Write(raw[at:])
	return io.MultiReader(&out, br), nil
}
