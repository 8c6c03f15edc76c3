package verify

import (
	"fmt"
	"strings"
)

// TableNotFoundError names a --table the archive does not hold.
type TableNotFoundError struct {
	Table   string
	Similar []string
}

func (e *TableNotFoundError) Error() string {
	return fmt.Sprintf("the archive holds no table %s", e.Table)
}

// Hint lists tables of the same name in other schemas, or how to list them.
func (e *TableNotFoundError) Hint() string {
	if len(e.Similar) > 0 {
		return "did you mean " + strings.Join(e.Similar, " or ") + "?"
	}
	return "write it as schema.name; 'pgattest show ID' lists the archive's tables"
}

// tableTypes are the entries that belong to a table: restored with it when it
// is named with --table.
var tableTypes = map[string]bool{
	"INDEX": true, "CONSTRAINT": true, "FK CONSTRAINT": true, "CHECK CONSTRAINT": true,
	"TRIGGER": true, "COMMENT": true, "ACL": true, "DEFAULT": true, "POLICY": true,
	"ROW SECURITY": true, "RULE": true, "INDEX ATTACH": true, "STATISTICS": true,
	"SEQUENCE OWNED BY": true, "SEQUENCE": true, "SEQUENCE SET": true, "SECURITY LABEL": true,
	"TABLE ATTACH": true,
}

// prereqTypes are what a restored table may need to exist first.
var prereqTypes = map[string]bool{
	"SCHEMA": true, "TYPE": true, "DOMAIN": true, "FUNCTION": true, "SEQUENCE": true,
	"EXTENSION": true, "COLLATION": true, "SHELL TYPE": true, "PROCEDURE": true, "AGGREGATE": true,
}

// SelectTables picks the entries that restore the named tables: each
// TABLE (a partitioned one with its partitions, their data and their ATTACH
// entries), its TABLE DATA, and the entries that depend on it (indexes,
// constraints, triggers, defaults with their sequences, comments, grants,
// policies). An entry that also needs a table not named (a foreign key to
// it) is left out and reported in skipped. The entries keep the archive's
// order, which is pg_dump's dependency order.
//
// What the tables need and the target may lack (their schema, types,
// domains, functions, sequences, extensions) is added unless exists says
// the target has it already; exists nil means the target is empty.
func SelectTables(toc *TOC, tables []string, exists func(Entry) bool) (selected []Entry, skipped []string, err error) {
	deps := toc.Dependencies()
	byID := map[int]Entry{}
	for _, e := range toc.Entries {
		byID[e.DumpID] = e
	}
	isTable := func(e Entry) bool { return e.Type == "TABLE" || e.Type == "FOREIGN TABLE" }
	want := map[int]bool{}
	for _, name := range tables {
		schema, rel, ok := strings.Cut(name, ".")
		if !ok {
			schema, rel = "public", name
		}
		found := false
		var similar []string
		for _, e := range toc.Entries {
			if !isTable(e) {
				continue
			}
			if e.Schema == schema && e.Name == rel {
				want[e.DumpID], found = true, true
			} else if e.Name == rel || e.Name == name {
				similar = append(similar, e.Schema+"."+e.Name)
			}
		}
		if !found {
			return nil, nil, &TableNotFoundError{Table: schema + "." + rel, Similar: similar}
		}
	}
	// A partitioned table brings its partitions (and theirs): each TABLE
	// ATTACH entry is named after the partition and depends on the parent.
	tableID := map[[2]string]int{}
	for _, e := range toc.Entries {
		if isTable(e) {
			tableID[[2]string{e.Schema, e.Name}] = e.DumpID
		}
	}
	for changed := true; changed; {
		changed = false
		for _, e := range toc.Entries {
			part, ok := tableID[[2]string{e.Schema, e.Name}]
			if e.Type != "TABLE ATTACH" || !ok || want[part] {
				continue
			}
			for _, d := range e.Deps {
				if d != part && want[d] && isTable(byID[d]) {
					want[part], changed = true, true
				}
			}
		}
	}
	tablesWanted := map[[2]string]bool{}
	for id := range want {
		tablesWanted[[2]string{byID[id].Schema, byID[id].Name}] = true
	}
	// tablesOf is the set of tables an entry belongs to, through its
	// dependencies on tables and on other table entries (a foreign key
	// depends on the referenced table's primary key, which is that table's).
	memo := map[int][]int{}
	var tablesOf func(id int, depth int) []int
	tablesOf = func(id int, depth int) []int {
		if t, ok := memo[id]; ok {
			return t
		}
		e, ok := byID[id]
		switch {
		case !ok || depth > 8:
			return nil
		case isTable(e):
			return []int{id}
		case !tableTypes[e.Type] || e.Type == "SEQUENCE" || e.Type == "SEQUENCE SET":
			return nil
		}
		var out []int
		for _, d := range deps[id] {
			out = append(out, tablesOf(d, depth+1)...)
		}
		memo[id] = out
		return out
	}
	belongs := func(e Entry) (on, other []string) {
		seen := map[int]bool{}
		for _, d := range deps[e.DumpID] {
			ts := tablesOf(d, 0)
			if de, ok := byID[d]; ok && (de.Type == "SEQUENCE" || de.Type == "SEQUENCE SET") && want[d] {
				on = append(on, de.Schema+"."+de.Name)
			}
			for _, t := range ts {
				if seen[t] {
					continue
				}
				seen[t] = true
				if name := byID[t].Schema + "." + byID[t].Name; want[t] {
					on = append(on, name)
				} else {
					other = append(other, name)
				}
			}
		}
		return on, other
	}
	for changed := true; changed; {
		changed = false
		for _, e := range toc.Entries {
			if want[e.DumpID] {
				continue
			}
			if e.HasData() {
				if e.Type == "TABLE DATA" && tablesWanted[[2]string{e.Schema, e.Name}] {
					want[e.DumpID], changed = true, true
				}
				continue
			}
			if !tableTypes[e.Type] {
				continue
			}
			on, other := belongs(e)
			if len(on) == 0 || len(other) > 0 {
				continue
			}
			want[e.DumpID], changed = true, true
			if e.Type == "DEFAULT" { // the sequence behind nextval()
				for _, d := range deps[e.DumpID] {
					if de := byID[d]; de.Type == "SEQUENCE" && !want[d] {
						want[d] = true
					}
				}
			}
		}
	}
	// Prerequisites, transitively: a table's schema, its column types, the
	// function its CHECK or trigger calls, the schema of that function…
	var need func(id int, depth int)
	need = func(id int, depth int) {
		for _, d := range deps[id] {
			de, ok := byID[d]
			if !ok || want[d] || !prereqTypes[de.Type] || depth > 16 {
				continue
			}
			if exists != nil && exists(de) {
				continue
			}
			want[d] = true
			need(d, depth+1)
		}
	}
	for id := range want {
		need(id, 0)
	}
	for _, e := range toc.Entries {
		if want[e.DumpID] {
			selected = append(selected, e)
			continue
		}
		if !tableTypes[e.Type] {
			continue
		}
		if on, other := belongs(e); len(on) > 0 && len(other) > 0 {
			skipped = append(skipped, fmt.Sprintf("%s %s %s: needs table %s, which is not restored", e.Type, e.Schema, e.Name, strings.Join(other, ", ")))
		}
	}
	return selected, skipped, nil
}
