package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
)

// Extensions returns the names of the extensions the archive creates.
func (t *TOC) Extensions() []string {
	var names []string
	for _, e := range t.Entries {
		if e.Type == "EXTENSION" {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	return names
}

// MissingExtensions returns those of names that the cluster cannot create
// (not in pg_available_extensions).
func MissingExtensions(ctx context.Context, c *testenv.Cluster, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT name FROM pg_available_extensions WHERE name = ANY($1)`, names)
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the throwaway cluster's extensions: %w", err)
	}
	var missing []string
	for _, n := range names {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// planExtensions compares the extensions the archive creates with those
// the proving server has. A missing one fails the proof unless o accepts it
// (SkipExtensions); an accepted one is left out of the restore with every
// entry that needs it, and rep.Skipped says so. The returned set holds the
// dump IDs to leave out.
func planExtensions(ctx context.Context, o Options, c *testenv.Cluster, rep *Report) (map[int]bool, error) {
	wanted := rep.TOC.Extensions()
	if len(wanted) == 0 {
		return nil, nil
	}
	missing, err := MissingExtensions(ctx, c, wanted)
	if err != nil {
		return nil, err
	}
	var refused []string
	for _, name := range missing {
		if !slices.Contains(o.SkipExtensions, name) {
			refused = append(refused, name)
		}
	}
	server := c.Toolchain.Version.String()
	if len(refused) > 0 {
		return nil, &MissingExtensionError{Names: refused, Server: server}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	deps, err := ReadDependencies(ctx, o.Client.Path("pg_restore"), o.Archive, rep.TOC, o.Scratch)
	if err != nil {
		return nil, err
	}
	omit := map[int]bool{}
	for _, name := range missing {
		left := needing(rep.TOC, deps, name)
		var what []string
		for _, e := range rep.TOC.Entries {
			if left[e.DumpID] && e.Type != "EXTENSION" {
				what = append(what, e.Describe())
			}
			if left[e.DumpID] {
				omit[e.DumpID] = true
			}
		}
		s := fmt.Sprintf("extension %s (not in the proving Postgres %s)", name, server)
		switch {
		case len(what) == 0:
		case len(what) <= 8:
			s += fmt.Sprintf(" and the %d entries that need it: %s", len(what), strings.Join(what, ", "))
		default:
			s += fmt.Sprintf(" and the %d entries that need it: %s, …", len(what), strings.Join(what[:8], ", "))
		}
		rep.Skipped = append(rep.Skipped, s)
	}
	return omit, nil
}

// needing returns the dump IDs of extension name's entry and of every entry
// that needs it, directly or through others. A table's data goes with its
// table.
func needing(toc *TOC, deps map[int][]int, name string) map[int]bool {
	left := map[int]bool{}
	for _, e := range toc.Entries {
		if e.Type == "EXTENSION" && e.Name == name {
			left[e.DumpID] = true
		}
	}
	for changed := true; changed; {
		changed = false
		gone := map[[2]string]bool{}
		for _, e := range toc.Entries {
			if left[e.DumpID] && e.Type == "TABLE" {
				gone[[2]string{e.Schema, e.Name}] = true
			}
		}
		for _, e := range toc.Entries {
			if left[e.DumpID] {
				continue
			}
			out := e.HasData() && gone[[2]string{e.Schema, e.Name}]
			for _, d := range deps[e.DumpID] {
				out = out || left[d]
			}
			if out {
				left[e.DumpID], changed = true, true
			}
		}
	}
	return left
}

// Describe names the entry for a message: "TABLE public.t",
// "COMMENT EXTENSION fakext".
func (e Entry) Describe() string {
	if strings.HasPrefix(e.Name, e.Type+" ") { // "CAST (a AS b)"
		return e.Name
	}
	if e.Schema == "" {
		return e.Type + " " + e.Name
	}
	return e.Type + " " + e.Schema + "." + e.Name
}
