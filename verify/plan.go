package verify

import (
	"bufio"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The proof restores someone else's archive: whoever can write to the
// source database decides which functions, checks, defaults, generated
// columns, index expressions, materialized views and event triggers it
// holds. So pg_restore never runs as a superuser: it connects as a role of
// the proof's own that owns the proof database and is a member of every
// role the archive names (created NOLOGIN NOSUPERUSER …), and the archive's
// code runs with those rights only. What only a superuser may do is done by
// pgattest itself (extensions, from the local installation) or left out and
// said (Plan.Skipped).

// FactsOf collects, from a TOC read from the archive itself, the roles its
// entries name (owners, and the roles in each entry's SQL: grantees,
// grantors, policy and default-privilege roles) and its encoding.
func FactsOf(t *TOC) SchemaFacts {
	roles := map[string]bool{}
	var f SchemaFacts
	br := bufio.NewReaderSize(nil, 4096) // one for every entry: a TOC may hold 100,000
	for _, e := range append(slices.Clip(t.Entries), t.Special...) {
		if e.Owner != "" {
			roles[e.Owner] = true
		}
		if e.Defn == "" {
			continue
		}
		br.Reset(strings.NewReader(e.Defn))
		s, _ := scanSQL(br)
		for _, r := range s.Roles {
			roles[r] = true
		}
		if e.Type == "ENCODING" && s.Encoding != "" {
			f.Encoding = s.Encoding
		}
		if e.Type == "DATABASE" {
			f.DBOwner = e.Owner
		}
	}
	for r := range roles {
		if !strings.HasPrefix(r, "pg_") {
			f.Roles = append(f.Roles, r)
		}
	}
	sort.Strings(f.Roles)
	return f
}

// ExtensionEntry is an extension the archive creates, and the schema pg_dump
// wrote it into.
type ExtensionEntry struct {
	Name   string
	Schema string
	DumpID int
}

// ArchiveExtensions lists the archive's EXTENSION entries with their schemas
// ("CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA s;").
func ArchiveExtensions(t *TOC) []ExtensionEntry {
	var out []ExtensionEntry
	for _, e := range t.Entries {
		if e.Type != "EXTENSION" {
			continue
		}
		x := ExtensionEntry{Name: e.Name, DumpID: e.DumpID}
		for _, st := range statements(e.Defn) {
			for i := 0; i+2 < len(st); i++ {
				if st[i].is("WITH") && st[i+1].is("SCHEMA") {
					x.Schema, _ = st[i+2].name()
				}
			}
		}
		out = append(out, x)
	}
	return out
}

// PlanInput is what the proving server offers, found before the plan is
// made: the extensions pgattest created (or could not), and its languages.
type PlanInput struct {
	// Languages maps every procedural language of the proof database, once
	// the archive's extensions exist, to whether it is trusted.
	Languages map[string]bool
	// LeftOut are extensions the proof leaves out (missing from the proving
	// Postgres and accepted with --verify-skip-extension, or an untrusted
	// language), each with its reason; the entries that need one go too.
	LeftOut map[string]string
	// Schemas are schemas pgattest created before the restore (an
	// extension lives in them): their SCHEMA entries are not restored.
	Schemas []string
	// ExtensionComments are the comments the extensions pgattest created
	// have (their control files'), by extension name: an archive's
	// COMMENT ON EXTENSION that sets the same is already restored.
	ExtensionComments map[string]string
	// ExtensionTables are the relations whose contents pg_dump saves for
	// the extensions pgattest created (pg_extension_config_dump:
	// configuration tables and sequences), by schema and name, each with
	// its extension's name.
	ExtensionTables map[[2]string]string
	// ExtensionSequences are those of ExtensionTables that are sequences:
	// only a SEQUENCE SET fills one, only a TABLE DATA the others.
	ExtensionSequences map[[2]string]bool
}

// Plan is what an unprivileged restore of the archive restores, and what it
// leaves out and why.
type Plan struct {
	Keep    []Entry  // restored by pg_restore, in archive order
	Skipped []string // what was left out, and why: one line per cause
	// NoTablespaces: some entries live in tablespaces, which the proof
	// does not have: they are restored into the default one.
	Tablespaces []string
	// ExtensionData are the kept entries that write into a relation of an
	// extension (PlanInput.ExtensionTables): the rows of a configuration
	// table (TABLE DATA) or a sequence's value (SEQUENCE SET). The
	// extension's definitions come from the local installation; these are
	// the archive's.
	ExtensionData []Entry
}

// superuserOnly says why an entry can only be restored by a superuser, or
// "" when an ordinary role that owns the database can restore it.
func superuserOnly(e Entry, in PlanInput) string {
	switch e.Type {
	case "EVENT TRIGGER":
		return "only a superuser can create an event trigger"
	case "PROCEDURAL LANGUAGE":
		return "only a superuser can create a procedural language"
	case "OPERATOR CLASS", "OPERATOR FAMILY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
		"ACCESS METHOD", "FOREIGN DATA WRAPPER":
		kind := strings.ToLower(e.Type)
		if strings.ContainsRune("aeiou", rune(kind[0])) {
			return "only a superuser can create an " + kind
		}
		return "only a superuser can create a " + kind
	case "SUBSCRIPTION", "SUBSCRIPTION TABLE":
		return "only a superuser can create a subscription (which would connect out)"
	case "PUBLICATION TABLES IN SCHEMA":
		return "only a superuser can publish a whole schema"
	case "SECURITY LABEL":
		return "a security label needs a label provider loaded by a superuser"
	case "PUBLICATION":
		if hasWords(e.Defn, "FOR", "ALL", "TABLES") {
			return "only a superuser can publish all tables"
		}
	case "CAST":
		if hasWords(e.Defn, "WITHOUT", "FUNCTION") {
			return "only a superuser can create a binary-coercible cast"
		}
	case "TYPE":
		if hasWords(e.Defn, "INPUT", "=") {
			return "only a superuser can create a base type"
		}
	case "FUNCTION", "PROCEDURE":
		lang := functionLanguage(e.Defn)
		switch trusted, ok := in.Languages[lang]; {
		case lang == "":
		case lang == "c" || lang == "internal":
			return fmt.Sprintf("a function in %s: only a superuser can create one", map[string]string{"c": "C", "internal": "internal"}[lang])
		case !ok:
			return fmt.Sprintf("its language %s is not installed in the proving Postgres", lang)
		case !trusted:
			return fmt.Sprintf("its language %s is untrusted: only a superuser can create a function in it", lang)
		}
	case "COMMENT":
		if strings.HasPrefix(e.Name, "EXTENSION ") {
			return "only the extension's owner (pgattest's superuser, which created it from the local installation) can comment on it"
		}
	}
	return ""
}

// PlanRestore decides, for an unprivileged restore, which entries of the
// archive to restore. Extensions are created by pgattest beforehand, so
// their entries are never restored; an entry that only a superuser could
// restore is left out, and so is every entry that needs it, directly or
// through others (pg_dump's dependencies; a table's data needs the table).
// The pure decision: PlanInput carries what the proving server offers.
func PlanRestore(t *TOC, in PlanInput) Plan {
	var p Plan
	byID := map[int]*Entry{}
	for i := range t.Entries {
		byID[t.Entries[i].DumpID] = &t.Entries[i]
	}
	cause := map[int]int{}     // dump id → the dump id of the root cause
	reason := map[int]string{} // root cause → why
	var roots []int
	created := map[string]bool{}
	for _, s := range in.Schemas {
		created[s] = true
	}
	for _, e := range t.Entries {
		if c, ok := dependsOn(e, cause); ok { // goes with what it needs
			cause[e.DumpID] = c
			continue
		}
		var why string
		switch {
		case extensionData(e, in) != "":
		case e.Type == "TABLE DATA" || e.Type == "SEQUENCE SET":
			why = leftOutExtensionData(e, byID, in)
		case e.Type == "EXTENSION":
			if r, ok := in.LeftOut[e.Name]; ok {
				why = r
			} else {
				continue // created by pgattest: not restored, not skipped
			}
		case e.Type == "SCHEMA" && created[e.Name], extensionCommentAsIs(e, in):
			continue
		default:
			why = superuserOnly(e, in)
		}
		if why != "" {
			cause[e.DumpID], reason[e.DumpID] = e.DumpID, why
			roots = append(roots, e.DumpID)
		}
	}
	// Dependents, in archive order until nothing changes: dependencies may
	// point forward (a table's data before a function it calls, say).
	for changed := true; changed; {
		changed = false
		for _, e := range t.Entries {
			if _, out := cause[e.DumpID]; out || e.Type == "EXTENSION" {
				continue
			}
			if c, ok := dependsOn(e, cause); ok {
				cause[e.DumpID], changed = c, true
			}
		}
	}
	dependents := map[int][]string{}
	tablespaces := map[string]int{}
	for _, e := range t.Entries {
		c, out := cause[e.DumpID]
		switch {
		case out && c != e.DumpID:
			dependents[c] = append(dependents[c], e.Describe())
		case out:
		case e.Type == "EXTENSION", e.Type == "SCHEMA" && created[e.Name], extensionCommentAsIs(e, in):
		default:
			p.Keep = append(p.Keep, e)
			if extensionData(e, in) != "" {
				p.ExtensionData = append(p.ExtensionData, e)
			}
			if e.Tablespace != "" {
				tablespaces[e.Tablespace]++
			}
		}
	}
	for _, id := range roots {
		e := byID[id]
		what := e.Describe()
		if e.Type == "EXTENSION" {
			what = "extension " + e.Name
		}
		s := what + ": " + reason[id]
		if d := dependents[id]; len(d) > 0 {
			noun := "entries that need it"
			if len(d) == 1 {
				noun = "entry that needs it"
			}
			if len(d) > 8 {
				s += fmt.Sprintf("; with the %d %s: %s, …", len(d), noun, strings.Join(d[:8], ", "))
			} else {
				s += fmt.Sprintf("; with the %d %s: %s", len(d), noun, strings.Join(d, ", "))
			}
		}
		p.Skipped = append(p.Skipped, s)
	}
	if len(tablespaces) > 0 {
		var names []string
		n := 0
		for ts, k := range tablespaces {
			names = append(names, ts)
			n += k
		}
		sort.Strings(names)
		p.Tablespaces = names
		noun := "entries"
		if n == 1 {
			noun = "entry"
		}
		p.Skipped = append(p.Skipped, fmt.Sprintf("tablespace %s: the proof has none, so its %d %s went into the default tablespace (pg_restore --no-tablespaces)",
			strings.Join(names, ", "), n, noun))
	}
	return p
}

// extensionCommentAsIs reports whether e is a COMMENT ON EXTENSION that
// sets the comment the extension already has (pg_dump writes one for every
// extension, mostly its control file's, which CREATE EXTENSION set).
func extensionCommentAsIs(e Entry, in PlanInput) bool {
	name, ok := strings.CutPrefix(e.Name, "EXTENSION ")
	if e.Type != "COMMENT" || !ok {
		return false
	}
	have, ok := in.ExtensionComments[strings.Trim(name, `"`)]
	if !ok {
		return false
	}
	st := statements(e.Defn)
	if len(st) != 1 || len(st[0]) != 6 {
		return false
	}
	s := st[0]
	return s[0].is("COMMENT") && s[1].is("ON") && s[2].is("EXTENSION") && s[4].is("IS") && s[5].kind == tokString && s[5].text == have
}

// extensionData returns the extension whose relation e fills (the rows of
// a configuration table, a sequence's value), or "".
func extensionData(e Entry, in PlanInput) string {
	key := [2]string{e.Schema, e.Name}
	if (e.Type == "TABLE DATA" && !in.ExtensionSequences[key]) || (e.Type == "SEQUENCE SET" && in.ExtensionSequences[key]) {
		return in.ExtensionTables[key]
	}
	return ""
}

// leftOutExtensionData says why a table's data or a sequence's value is
// left out when what it fills is in no entry of the archive (pg_dump
// saves an extension's configuration tables that way, the table itself
// being the extension's) and an extension was left out: it is that
// extension's, and goes with it. Otherwise it is restored, and a table
// that does not exist fails the proof, as it would fail any restore.
func leftOutExtensionData(e Entry, byID map[int]*Entry, in PlanInput) string {
	if len(in.LeftOut) == 0 || len(e.Deps) == 0 {
		return ""
	}
	for _, d := range e.Deps {
		if _, ok := byID[d]; ok {
			return ""
		}
	}
	names := make([]string, 0, len(in.LeftOut))
	for n := range in.LeftOut {
		names = append(names, n)
	}
	sort.Strings(names)
	what := "table"
	if e.Type == "SEQUENCE SET" {
		what = "sequence"
	}
	return fmt.Sprintf("its %s is in no entry of the archive: an extension's configuration %s, of an extension left out (%s)",
		what, what, strings.Join(names, ", "))
}

// dependsOn returns the root cause of the first dependency of e that is
// left out.
func dependsOn(e Entry, cause map[int]int) (int, bool) {
	for _, d := range e.Deps {
		if c, out := cause[d]; out {
			return c, true
		}
	}
	return 0, false
}

// statements tokenizes SQL as pg_dump writes it (quotes, dollar quotes and
// comments understood: a name cannot pose as a keyword).
func statements(sql string) [][]token {
	sc := &sqlScanner{r: bufio.NewReader(strings.NewReader(sql))}
	var out [][]token
	for {
		st, err := sc.statement()
		if len(st) > 0 {
			out = append(out, st)
		}
		if err != nil {
			return out
		}
	}
}

// hasWords reports whether the SQL holds the words in a row, as tokens
// (case folded; "=" and other punctuation match themselves).
func hasWords(sql string, words ...string) bool {
	for _, st := range statements(sql) {
	next:
		for i := 0; i+len(words) <= len(st); i++ {
			for j, w := range words {
				t := st[i+j]
				if !(t.is(w) || (t.kind == tokPunct && t.text == w)) {
					continue next
				}
			}
			return true
		}
	}
	return false
}

// functionLanguage is the language of a CREATE FUNCTION or CREATE
// PROCEDURE as pg_dump writes it ("LANGUAGE plpgsql"), lower case.
func functionLanguage(sql string) string {
	for _, st := range statements(sql) {
		if len(st) == 0 || !st[0].is("CREATE") {
			continue
		}
		for i := 0; i+1 < len(st); i++ {
			if st[i].is("LANGUAGE") {
				if n, ok := st[i+1].name(); ok {
					return n
				}
			}
		}
	}
	return ""
}
