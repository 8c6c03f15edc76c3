package verify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// The table of contents as pg_dump wrote it, read from the archive itself
// (a custom-format file, or a directory-format archive's toc.dat) rather
// than from `pg_restore -l`, which prints names with their newlines turned
// into spaces and splits nothing unambiguously. The binary form holds every
// name exactly, each entry's SQL, its tablespace and the entries it depends
// on: what the proof needs to decide, before restoring, what an unprivileged
// restore can do.
//
// Layout (pg_backup_archiver.c, ReadHead and ReadToc, formats 1.12–1.16):
// "PGDMP", version major, minor, revision, int size, offset size, format;
// compression (an int before 1.15, an algorithm byte since); the creation
// time (7 ints); database name, server version, pg_dump version (strings);
// the number of entries; then per entry: dump id, had-dumper (ints), table
// oid, oid, tag, desc (strings), section (int), defn, drop statement, copy
// statement, namespace, tablespace, table access method (1.14+), relkind
// (int, 1.16+), owner, "false" (strings), the dependencies (strings up to a
// NULL one), and the format's extra: a data offset (custom: a flag byte and
// offset-size bytes) or a file name (directory, tar: a string).

// Archive format numbers of the header's format byte.
const (
	archCustom    = 1
	archTar       = 3
	archDirectory = 5
)

// archive format versions this reader knows.
const (
	k112 = 1<<16 | 12<<8
	k114 = 1<<16 | 14<<8
	k115 = 1<<16 | 15<<8
	k116 = 1<<16 | 16<<8
	kMax = 1<<16 | 16<<8 | 0xff
)

// Sections of an entry (pg_backup.h teSection).
const (
	SectionNone     = 1
	SectionPreData  = 2
	SectionData     = 3
	SectionPostData = 4
)

// maxTOCString bounds one string of the TOC (a function's body, a view's
// query): a damaged length must not allocate gigabytes.
const maxTOCString = 1 << 30

// ReadArchiveTOC reads the table of contents of the archive at path:
// the file itself (custom format) or its toc.dat (directory format).
func ReadArchiveTOC(path string) (*TOC, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &MissingError{Path: path, Err: err}
	}
	if fi.IsDir() {
		path = filepath.Join(path, "toc.dat")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &MissingError{Path: path, Err: err}
	}
	defer f.Close()
	toc, err := ParseArchiveTOC(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return nil, &UnreadableError{Path: path, Detail: err.Error()}
	}
	return toc, nil
}

// ParseArchiveTOC reads an archive's header and table of contents from r
// and stops there (the data that follows is not read). An archive cut short
// before its TOC ends is io.ErrUnexpectedEOF.
func ParseArchiveTOC(r io.Reader) (*TOC, error) {
	p := &tocReader{r: r}
	toc, err := p.read()
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return toc, err
}

// HeadTOC parses the table of contents from the first bytes of an archive
// as they arrive: it returns the TOC once head holds all of it, and nil
// without an error while it does not yet.
func HeadTOC(head []byte) (*TOC, error) {
	toc, err := ParseArchiveTOC(bytes.NewReader(head))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil
	}
	return toc, err
}

type tocReader struct {
	r       io.Reader
	pos     int64 // bytes read so far, when counted (WithoutDrops)
	version int
	intSize int
	offSize int
	format  int
	buf     [16]byte
}

func (p *tocReader) read() (*TOC, error) {
	head := p.buf[:11]
	if _, err := io.ReadFull(p.r, head); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(head, []byte("PGDMP")) {
		return nil, errors.New("not a pg_dump archive (no PGDMP at its start)")
	}
	p.version = int(head[5])<<16 | int(head[6])<<8 | int(head[7])
	p.intSize, p.offSize, p.format = int(head[8]), int(head[9]), int(head[10])
	if p.version < k112 || p.version > kMax {
		return nil, fmt.Errorf("archive format %d.%d is not one pgattest reads (1.12 to 1.16)", head[5], head[6])
	}
	if p.intSize < 1 || p.intSize > 8 || p.offSize < 1 || p.offSize > 8 {
		return nil, fmt.Errorf("unexpected integer sizes %d/%d", p.intSize, p.offSize)
	}
	t := &TOC{}
	t.Header.DumpVersion = fmt.Sprintf("%d.%d-%d", head[5], head[6], head[7])
	switch p.format {
	case archCustom:
		t.Header.Format = "CUSTOM"
	case archDirectory:
		t.Header.Format = "DIRECTORY"
	case archTar:
		t.Header.Format = "TAR"
	default:
		return nil, fmt.Errorf("unknown archive format %d", p.format)
	}
	if p.version >= k115 {
		alg, err := p.byte()
		if err != nil {
			return nil, err
		}
		t.Header.Compression = [...]string{"none", "gzip", "lz4", "zstd"}[min(int(alg), 3)]
		if alg > 3 {
			t.Header.Compression = strconv.Itoa(int(alg))
		}
	} else {
		level, err := p.int()
		if err != nil {
			return nil, err
		}
		t.Header.Compression = strconv.Itoa(level)
	}
	var tm [7]int // sec, min, hour, mday, mon, year, isdst
	for i := range tm {
		v, err := p.int()
		if err != nil {
			return nil, err
		}
		tm[i] = v
	}
	t.Header.CreatedAt = fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", tm[5]+1900, tm[4]+1, tm[3], tm[2], tm[1], tm[0])
	var err error
	for _, s := range []*string{&t.Header.DBName, &t.Header.ServerVersion, &t.Header.PgDumpVersion} {
		if *s, _, err = p.str(); err != nil {
			return nil, err
		}
	}
	n, err := p.int()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > 1<<28 {
		return nil, fmt.Errorf("table of contents of %d entries", n)
	}
	t.Header.TOCEntries = n
	t.Entries = make([]Entry, 0, min(n, 4096))
	for i := 0; i < n; i++ {
		e, err := p.entry()
		if err != nil {
			return nil, fmt.Errorf("table of contents entry %d of %d: %w", i+1, n, err)
		}
		t.Entries = append(t.Entries, e)
	}
	return t, nil
}

func (p *tocReader) entry() (Entry, error) {
	var e Entry
	var err error
	if e.DumpID, err = p.int(); err != nil {
		return e, err
	}
	if e.DumpID <= 0 {
		return e, fmt.Errorf("dump id %d", e.DumpID)
	}
	hadDumper, err := p.int()
	if err != nil {
		return e, err
	}
	e.hadDumper = hadDumper != 0
	var oids [2]string
	for i := range oids {
		if oids[i], _, err = p.str(); err != nil {
			return e, err
		}
	}
	cat, err1 := strconv.ParseUint(oids[0], 10, 32)
	obj, err2 := strconv.ParseUint(oids[1], 10, 32)
	if err1 != nil || err2 != nil {
		return e, fmt.Errorf("object ids %q %q", oids[0], oids[1])
	}
	e.CatalogOID, e.ObjectOID = uint32(cat), uint32(obj)
	if e.Name, _, err = p.str(); err != nil {
		return e, err
	}
	if e.Type, _, err = p.str(); err != nil {
		return e, err
	}
	if e.Section, err = p.int(); err != nil {
		return e, err
	}
	if e.Defn, _, err = p.str(); err != nil {
		return e, err
	}
	e.dropAt[0] = p.pos
	if _, _, err = p.str(); err != nil { // drop statement
		return e, err
	}
	e.dropAt[1] = p.pos
	if _, _, err = p.str(); err != nil { // copy statement
		return e, err
	}
	if e.Schema, _, err = p.str(); err != nil {
		return e, err
	}
	if e.Tablespace, _, err = p.str(); err != nil {
		return e, err
	}
	if p.version >= k114 {
		if _, _, err = p.str(); err != nil { // table access method
			return e, err
		}
	}
	if p.version >= k116 {
		if _, err = p.int(); err != nil { // relkind
			return e, err
		}
	}
	if e.Owner, _, err = p.str(); err != nil {
		return e, err
	}
	if _, _, err = p.str(); err != nil { // "false": with OIDs
		return e, err
	}
	for {
		d, null, err := p.str()
		if err != nil {
			return e, err
		}
		if null {
			break
		}
		id, err := strconv.Atoi(d)
		if err != nil || id <= 0 {
			return e, fmt.Errorf("dependency %q", d)
		}
		e.Deps = append(e.Deps, id)
	}
	switch p.format {
	case archCustom: // the data's offset: a flag byte, then offSize bytes
		if _, err := io.ReadFull(p.r, p.buf[:1+p.offSize]); err != nil {
			return e, err
		}
	default: // the data's file name
		if _, _, err := p.str(); err != nil {
			return e, err
		}
	}
	return e, nil
}

func (p *tocReader) byte() (byte, error) {
	if _, err := io.ReadFull(p.r, p.buf[:1]); err != nil {
		return 0, err
	}
	return p.buf[0], nil
}

// int reads pg_dump's integer (ArchiveInt) of intSize bytes.
func (p *tocReader) int() (int, error) {
	b := p.buf[:1+p.intSize]
	if _, err := io.ReadFull(p.r, b); err != nil {
		return 0, err
	}
	return ArchiveInt(b)
}

// ArchiveInt decodes an integer as pg_dump writes it in an archive: a sign
// byte, then the value's bytes, least significant first. Values past 2^31
// are refused: no archive pg_dump writes holds one, and a damaged archive
// must not turn into a huge length.
func ArchiveInt(b []byte) (int, error) {
	var v uint64
	for i := len(b) - 1; i >= 1; i-- {
		v = v<<8 | uint64(b[i])
	}
	if v > 1<<31 {
		return 0, fmt.Errorf("integer %d out of range", v)
	}
	if b[0] != 0 {
		return -int(v), nil
	}
	return int(v), nil
}

// str reads a string: its length (-1 for NULL), then its bytes. The bytes
// are read as they arrive, so a damaged length fails at the end of the
// input instead of allocating it first.
func (p *tocReader) str() (string, bool, error) {
	n, err := p.int()
	if err != nil {
		return "", false, err
	}
	if n < 0 {
		return "", true, nil
	}
	if n > maxTOCString {
		return "", false, fmt.Errorf("string of %d bytes", n)
	}
	var b bytes.Buffer
	if _, err := io.CopyN(&b, p.r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", false, err
	}
	return b.String(), false, nil
}
