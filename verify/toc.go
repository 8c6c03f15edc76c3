package verify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pgattest/pgattest/testenv"
)

// Entry is one line of an archive's table of contents, as `pg_restore -l`
// prints it:
//
//	3451; 0 16448 TABLE DATA shop order_items shop_owner
//	dumpId; catalog-oid object-oid type schema name owner
//
// pg_restore prints names unquoted, so a name with a space is ambiguous on
// its own; [TOC.Refine] resolves owners and schemas against the exact role
// names taken from the archive's SQL.
type Entry struct {
	DumpID     int    `json:"dump_id"`
	CatalogOID uint32 `json:"catalog_oid"`
	ObjectOID  uint32 `json:"object_oid"`
	Type       string `json:"type"`   // "TABLE", "TABLE DATA", "FK CONSTRAINT", …
	Schema     string `json:"schema"` // "" when pg_restore prints "-"
	Name       string `json:"name"`   // the tag: "order_items", "order_total(bigint)", "TABLE customers" (for a COMMENT)
	Owner      string `json:"owner"`

	// Read only from the archive itself (ReadArchiveTOC), not from
	// pg_restore -l: the entry's SQL, its tablespace, its section and the
	// dump IDs of the entries it depends on.
	Defn       string `json:"-"`
	Tablespace string `json:"-"`
	Section    int    `json:"-"`
	Deps       []int  `json:"-"`
	hadDumper  bool
	rest       string   // "schema name owner" as printed, kept for Refine
	dropAt     [2]int64 // where the drop statement is in the archive (WithoutDrops)
}

// Line renders the entry as pg_restore -l prints it (what -L reads).
func (e Entry) Line() string {
	schema := e.Schema
	if schema == "" {
		schema = "-"
	}
	return fmt.Sprintf("%d; %d %d %s %s %s %s", e.DumpID, e.CatalogOID, e.ObjectOID, e.Type, schema, e.Name, e.Owner)
}

// HasData reports whether the entry carries data blocks in the archive
// (table contents, large objects), as opposed to SQL in the TOC itself.
func (e Entry) HasData() bool {
	switch e.Type {
	case "TABLE DATA", "BLOBS", "LARGE OBJECTS":
		return true
	}
	return false
}

// Header is the archive header pg_restore -l prints in its comment lines.
type Header struct {
	CreatedAt     string `json:"created_at"`
	DBName        string `json:"dbname"`
	TOCEntries    int    `json:"toc_entries"`
	Compression   string `json:"compression"`
	DumpVersion   string `json:"dump_version"` // archive format version, "1.14-0"
	Format        string `json:"format"`       // CUSTOM, DIRECTORY, TAR
	ServerVersion string `json:"server_version"`
	PgDumpVersion string `json:"pg_dump_version"`
}

// TOC is a parsed table of contents.
type TOC struct {
	Header  Header  `json:"header"`
	Entries []Entry `json:"entries"`
	// Special are the entries pg_restore -l does not list: those it
	// applies on its own (ENCODING, STDSTRINGS, SEARCHPATH) and those of the
	// database itself (DATABASE, its properties, comment and grants), which
	// a restore without --create leaves alone. Read from the archive only.
	Special []Entry `json:"-"`
}

// knownTypes are the entry types pg_dump writes (PostgreSQL 9.6 to 18),
// longest first so "TABLE DATA" wins over "TABLE".
var knownTypes = func() []string {
	t := []string{
		"ACCESS METHOD", "ACL", "AGGREGATE", "BLOB", "BLOB METADATA", "BLOBS", "CAST",
		"CHECK CONSTRAINT", "COLLATION", "COMMENT", "CONSTRAINT", "CONVERSION", "DATABASE",
		"DATABASE PROPERTIES", "DEFAULT", "DEFAULT ACL", "DOMAIN", "DUMMY TYPE", "ENCODING",
		"EVENT TRIGGER", "EXTENSION", "FK CONSTRAINT", "FOREIGN DATA WRAPPER", "FOREIGN TABLE",
		"FUNCTION", "INDEX", "INDEX ATTACH", "LARGE OBJECT", "LARGE OBJECTS", "MATERIALIZED VIEW",
		"MATERIALIZED VIEW DATA", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY",
		"PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION", "PUBLICATION TABLE",
		"PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "RULE", "SCHEMA", "SEARCHPATH",
		"SECURITY LABEL", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "SERVER",
		"SHELL TYPE", "STATISTICS", "STATISTICS DATA", "STDSTRINGS", "SUBSCRIPTION",
		"SUBSCRIPTION TABLE", "TABLE", "TABLE ATTACH", "TABLE DATA", "TEXT SEARCH CONFIGURATION",
		"TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "TRANSFORM",
		"TRIGGER", "TYPE", "USER MAPPING", "VIEW",
	}
	sort.Slice(t, func(i, j int) bool { return len(t[i]) > len(t[j]) })
	return t
}()

// KnownType reports whether t (in any case) is an entry type pg_dump writes,
// and returns it as pg_restore -l prints it.
func KnownType(t string) (string, bool) {
	t = strings.ToUpper(strings.Join(strings.Fields(t), " "))
	for _, k := range knownTypes {
		if k == t {
			return k, true
		}
	}
	return "", false
}

// ParseTOC reads the output of `pg_restore -l`. Lines it cannot read as an
// entry or a header comment are an error naming the line, so a change in
// pg_restore's format is noticed rather than silently miscounted.
func ParseTOC(r io.Reader) (*TOC, error) {
	t := &TOC{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, ";") {
			t.Header.parse(line)
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("table of contents line %d: %w", n, err)
		}
		t.Entries = append(t.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read table of contents: %w", err)
	}
	return t, nil
}

func (h *Header) parse(line string) {
	s := strings.TrimSpace(strings.TrimPrefix(line, ";"))
	if v, ok := strings.CutPrefix(s, "Archive created at "); ok {
		h.CreatedAt = v
		return
	}
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return
	}
	v = strings.TrimSpace(v)
	switch strings.TrimSpace(k) {
	case "dbname":
		h.DBName = v
	case "TOC Entries":
		h.TOCEntries, _ = strconv.Atoi(v)
	case "Compression":
		h.Compression = v
	case "Dump Version":
		h.DumpVersion = v
	case "Format":
		h.Format = v
	case "Dumped from database version":
		h.ServerVersion = v
	case "Dumped by pg_dump version":
		h.PgDumpVersion = v
	}
}

func parseEntry(line string) (Entry, error) {
	var e Entry
	id, rest, ok := strings.Cut(line, "; ")
	if !ok {
		return e, fmt.Errorf("no \"; \" after the dump id in %q", line)
	}
	var err error
	if e.DumpID, err = strconv.Atoi(id); err != nil || e.DumpID < 0 {
		return e, fmt.Errorf("bad dump id %q", id)
	}
	f := strings.SplitN(rest, " ", 3)
	if len(f) < 3 {
		return e, fmt.Errorf("too few fields in %q", line)
	}
	cat, err1 := strconv.ParseUint(f[0], 10, 32)
	obj, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return e, fmt.Errorf("bad object ids in %q", line)
	}
	e.CatalogOID, e.ObjectOID = uint32(cat), uint32(obj)
	rest = f[2]
	for _, t := range knownTypes {
		if strings.HasPrefix(rest, t+" ") || rest == t {
			e.Type, rest = t, strings.TrimPrefix(rest[len(t):], " ")
			break
		}
	}
	if e.Type == "" { // a type this parser does not know: assume one word
		t, r, ok := strings.Cut(rest, " ")
		if !ok {
			return e, fmt.Errorf("no type in %q", line)
		}
		e.Type, rest = t, r
	}
	e.rest = rest
	e.split(nil, nil)
	return e, nil
}

// split divides "schema name owner" using known schema and role names (may
// be nil): the owner is the longest known role that ends the text, else the
// last word; the schema is "-", the longest known schema that starts it, or
// the first word; the name is what is left between.
func (e *Entry) split(schemas, roles []string) {
	rest := e.rest
	e.Owner = ""
	if strings.HasSuffix(rest, " ") { // empty owner: "BLOBS - BLOBS "
		rest = rest[:len(rest)-1]
	} else {
		found := false
		for _, r := range roles {
			if strings.HasSuffix(rest, " "+r) {
				e.Owner, rest, found = r, rest[:len(rest)-len(r)-1], true
				break
			}
		}
		if !found {
			if i := strings.LastIndexByte(rest, ' '); i >= 0 {
				e.Owner, rest = rest[i+1:], rest[:i]
			}
		}
	}
	e.Schema = ""
	if s, ok := strings.CutPrefix(rest, "- "); ok {
		e.Name = s
		return
	}
	for _, s := range schemas {
		if strings.HasPrefix(rest, s+" ") {
			e.Schema, e.Name = s, rest[len(s)+1:]
			return
		}
	}
	schema, name, _ := strings.Cut(rest, " ")
	e.Schema, e.Name = schema, name
}

// Refine re-splits every entry knowing the exact role names (from the
// archive's SQL): names, schemas and owners with spaces come out right.
func (t *TOC) Refine(roles []string) {
	byLen := func(s []string) []string {
		s = append([]string(nil), s...)
		sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
		return s
	}
	roles = byLen(roles)
	var schemas []string
	for i := range t.Entries {
		e := &t.Entries[i]
		if e.rest == "" { // read from the archive itself: exact already
			continue
		}
		e.split(nil, roles)
		if e.Type == "SCHEMA" {
			schemas = append(schemas, e.Name)
		}
	}
	schemas = byLen(append(schemas, "public", "pg_catalog"))
	for i := range t.Entries {
		if t.Entries[i].rest != "" {
			t.Entries[i].split(schemas, roles)
		}
	}
}

// Counts returns how many entries there are of each type.
func (t *TOC) Counts() map[string]int {
	m := map[string]int{}
	for _, e := range t.Entries {
		m[e.Type]++
	}
	return m
}

// Tables returns the tables that hold rows (and materialized views) the
// archive creates, in TOC order, as [schema, name] pairs: a partitioned
// table is not one (its partitions are), as the proof counts them.
func (t *TOC) Tables() [][2]string {
	var out [][2]string
	for _, e := range t.Entries {
		if e.Type == "TABLE" && hasWords(e.Defn, "PARTITION", "BY") {
			continue // partitioned: its rows are its partitions', counted there
		}
		if e.Type == "TABLE" || e.Type == "MATERIALIZED VIEW" {
			out = append(out, [2]string{e.Schema, e.Name})
		}
	}
	return out
}

// DataEntries returns the entries whose data pg_restore must read from the
// archive.
func (t *TOC) DataEntries() []Entry {
	var out []Entry
	for _, e := range t.Entries {
		if e.HasData() {
			out = append(out, e)
		}
	}
	return out
}

// Owners returns the distinct non-empty owners named in the TOC.
func (t *TOC) Owners() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range t.Entries {
		if e.Owner != "" && !seen[e.Owner] {
			seen[e.Owner] = true
			out = append(out, e.Owner)
		}
	}
	sort.Strings(out)
	return out
}

// List renders entries as a pg_restore -L list file.
func List(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%d; %d %d %s\n", e.DumpID, e.CatalogOID, e.ObjectOID, e.Type)
	}
	return b.Bytes()
}

// ReadTOC reads an archive's table of contents: pg_restore -l must list it
// (so the pg_restore at hand can read this archive, and its header comes as
// pg_restore prints it), and the entries come from the archive itself
// (ReadArchiveTOC), exact whatever their names hold.
func ReadTOC(ctx context.Context, pgRestore, archive string) (*TOC, error) {
	out, err := listTOC(ctx, pgRestore, archive, nil)
	if err != nil {
		return nil, err
	}
	// pg_restore prints each entry on one line (a newline in a name
	// becomes a space): the line's dump id says which entries it lists.
	toc, err := ReadArchiveTOC(archive)
	if err != nil {
		return nil, err
	}
	return listed(toc, out, archive)
}

// listed checks the entries read from an archive against pg_restore -l's
// listing of it (out), and takes the header from the listing.
func listed(toc *TOC, out []byte, archive string) (*TOC, error) {
	var h Header
	listed := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, ";") {
			h.parse(strings.TrimRight(line, "\r"))
		} else if id, _, ok := strings.Cut(line, "; "); ok {
			if n, err := strconv.Atoi(id); err == nil {
				listed[n] = true
			}
		}
	}
	if h.TOCEntries != len(toc.Entries) {
		return nil, &UnreadableError{Path: archive, Detail: fmt.Sprintf("pg_restore counts %d entries, the archive holds %d", h.TOCEntries, len(toc.Entries))}
	}
	all := toc.Entries
	toc.Entries = make([]Entry, 0, len(listed))
	for _, e := range all {
		if listed[e.DumpID] {
			toc.Entries = append(toc.Entries, e)
		} else {
			toc.Special = append(toc.Special, e)
		}
	}
	if len(toc.Entries) != len(listed) {
		return nil, &UnreadableError{Path: archive, Detail: fmt.Sprintf("pg_restore lists %d entries the archive does not hold", len(listed)-len(toc.Entries))}
	}
	toc.Header = h
	return toc, nil
}

// ReadTOCFrom is ReadTOC for an archive that is not a file here (in a
// bucket, encrypted): head holds its first bytes, at least up to the end of
// its table of contents, and goes to pg_restore -l on its standard input.
// name says where the archive is, for errors.
func ReadTOCFrom(ctx context.Context, pgRestore string, head []byte, name string) (*TOC, error) {
	out, err := listTOC(ctx, pgRestore, name, head)
	if err != nil {
		return nil, err
	}
	toc, err := ParseArchiveTOC(bytes.NewReader(head))
	if err != nil {
		return nil, &UnreadableError{Path: name, Detail: err.Error()}
	}
	return listed(toc, out, name)
}

// listTOC runs pg_restore -l on the archive file, or (head set) on head
// given on its standard input.
func listTOC(ctx context.Context, pgRestore, archive string, head []byte) ([]byte, error) {
	args := []string{"-l", archive}
	if head != nil {
		args = args[:1]
	}
	cmd := toolCommand(ctx, testenv.Sandbox{}, pgRestore, args, nil)
	if head != nil {
		cmd.Stdin = bytes.NewReader(head)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unreadable(pgRestore, archive, stderr.String(), err)
	}
	return out, nil
}

var unsupportedRE = regexp.MustCompile(`unsupported version \(([0-9.]+)\) in file header`)

// unreadable explains why pg_restore could not read an archive.
func unreadable(pgRestore, archive, stderr string, err error) error {
	if m := unsupportedRE.FindStringSubmatch(stderr); m != nil {
		tool := "?"
		if v, verr := testenv.ToolVersion(pgRestore); verr == nil {
			tool = v.String()
		}
		return &NewerArchiveError{Path: archive, FormatVersion: m[1], Tool: tool}
	}
	return &UnreadableError{Path: archive, Detail: firstError(stderr, err)}
}

// firstError picks pg_restore's own error line out of its stderr.
func firstError(stderr string, err error) string {
	for _, l := range strings.Split(stderr, "\n") {
		if i := strings.Index(l, "error: "); i >= 0 {
			return strings.TrimSpace(l[i+len("error: "):])
		}
	}
	if s := strings.TrimSpace(stderr); s != "" {
		return s
	}
	return err.Error()
}

// Dependencies returns, for every entry, the dump IDs it depends on, as
// pg_dump recorded them (a table's data depends on its table). Only a TOC
// read from the archive itself has them (ReadTOC, ReadArchiveTOC).
func (t *TOC) Dependencies() map[int][]int {
	deps := make(map[int][]int, len(t.Entries))
	for _, e := range t.Entries {
		deps[e.DumpID] = e.Deps
	}
	return deps
}
