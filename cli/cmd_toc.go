package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

func tocCommand(e *env) *ucli.Command {
	var o tocOptions
	return &ucli.Command{
		Name:      "toc",
		Usage:     "list an archive's entries (tables, indexes, functions, …) from the catalog",
		ArgsUsage: "ID",
		Description: `The entries are the archive's table of contents as pg_restore -l read it at
backup time, kept in the catalog (their digest is in the record, so
'catalog verify' covers them): no archive needed. --live reads the archive
again and says whether it still lists the same entries.

Examples:
   pgattest toc 20261124T222800Z-shop-7f3a
   pgattest toc 20261124T2228 --type table --schema shop
   pgattest toc 20261124T2228 --live               # re-read the archive itself
   pgattest --json toc 20261124T2228 | jq -r '.entries[] | select(.type == "FUNCTION") | .name'

Exit codes: 0 listed; 1 the archive or catalog cannot be read; 2 bad ID or
filter; 3 --live found entries that differ from the catalog's.`,
		Flags: []ucli.Flag{
			listFlag(&o.types, "type", "only entries of this type (TABLE, INDEX, \"TABLE DATA\", …); repeatable"),
			listFlag(&o.schemas, "schema", "only entries in this schema; repeatable"),
			&ucli.BoolFlag{Name: "live", Usage: "read the entries from the archive with pg_restore -l, and compare", Destination: &o.live},
			pgBinFlag(&o.pgBin, "pg_restore (with --live)"),
			identityFlag(&o.identity, "with --live: to decrypt an encrypted backup's head"),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("'pgattest list' prints the IDs", "toc takes one backup ID")
			}
			o.id = c.Args().First()
			return runTOC(c.Context, e, o)
		},
	}
}

// tocOptions are toc's flags and argument.
type tocOptions struct {
	id             string
	types, schemas []string
	live           bool
	pgBin          []string
	identity       string
}

// filter checks --type and --schema.
func (o tocOptions) filter() (tocFilter, error) {
	var types []string
	for _, t := range o.types {
		k, ok := verify.KnownType(t)
		if !ok {
			return tocFilter{}, usageErrorf(`use a type as pg_restore -l prints it: TABLE, "TABLE DATA", INDEX, CONSTRAINT, "FK CONSTRAINT", SEQUENCE, FUNCTION, VIEW, SCHEMA, …`,
				"--type %q is not a pg_dump entry type", t)
		}
		types = append(types, k)
	}
	return tocFilter{types: types, schemas: o.schemas}, nil
}

type tocFilter struct{ types, schemas []string }

func (f tocFilter) match(en catalog.TOCEntry) bool {
	return (len(f.types) == 0 || slices.Contains(f.types, en.Type)) &&
		(len(f.schemas) == 0 || slices.Contains(f.schemas, en.Schema))
}

// tocResult is the JSON of toc.
type tocResult struct {
	BackupID string             `json:"backup_id"`
	Source   string             `json:"source"` // "catalog" or "archive"
	Total    int                `json:"total"`  // entries before filtering
	Entries  []catalog.TOCEntry `json:"entries"`
	// With --live: whether the archive lists what the catalog kept.
	MatchesCatalog *bool    `json:"matches_catalog,omitempty"`
	Differences    []string `json:"differences,omitempty"`
}

func runTOC(ctx context.Context, e *env, opts tocOptions) error {
	f, err := opts.filter()
	if err != nil {
		return err
	}
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	rec, err := resolve(cat, opts.id)
	if err != nil {
		cat.Close()
		return err
	}
	stored, storedErr := cat.Entries(rec.ID)
	cat.Close()
	if storedErr != nil && !errors.Is(storedErr, catalog.ErrNoEntries) {
		return storedErr // a broken link is evidence: exit 3
	}
	res := tocResult{BackupID: rec.ID, Source: "catalog", Entries: stored}
	if opts.live {
		ids, err := pipeline.LoadIdentities(opts.identity)
		if err != nil {
			return err
		}
		live, err := pipeline.LiveTOC(ctx, rec, opts.pgBin, ids)
		if err != nil {
			return err
		}
		res.Source, res.Entries = "archive", live
		if storedErr == nil {
			res.Differences = diffEntries(stored, live)
			same := len(res.Differences) == 0
			res.MatchesCatalog = &same
		}
	} else if storedErr != nil {
		return withHint(fmt.Errorf("the catalog has no entries for %s: it was recorded by an older pgattest", rec.ID),
			"'pgattest toc "+rec.ID+" --live' reads them from the archive")
	}
	res.Total = len(res.Entries)
	all := res.Entries
	kept := res.Entries[:0:0]
	for _, en := range res.Entries {
		if f.match(en) {
			kept = append(kept, en)
		}
	}
	res.Entries = kept

	if e.json {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		printTOC(e, rec, res, f, all)
	}
	if res.MatchesCatalog != nil && !*res.MatchesCatalog {
		return proofErrorf("'pgattest verify "+rec.ID+" --hash-only' checks the archive against its digest",
			"the archive's entries differ from those recorded at backup time (%d differences)", len(res.Differences))
	}
	return nil
}

func printTOC(e *env, rec *catalog.Record, res tocResult, f tocFilter, all []catalog.TOCEntry) {
	from := "from the catalog"
	if res.Source == "archive" {
		from = "read from " + rec.Archive.Path
	}
	shown := fmt.Sprintf("%d entries", res.Total)
	if len(f.types)+len(f.schemas) > 0 {
		shown = fmt.Sprintf("%d of %d entries", len(res.Entries), res.Total)
	}
	fmt.Fprintf(e.stdout, "backup %s: %s, %s\n", rec.ID, shown, from)
	if len(res.Entries) > 0 {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DUMP ID\tTYPE\tSCHEMA\tNAME\tOWNER")
		for _, en := range res.Entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", en.DumpID, safe(en.Type), safe(dash(en.Schema)), safe(en.Name), safe(dash(en.Owner)))
		}
		tw.Flush()
	} else if res.Total > 0 {
		fmt.Fprintf(e.stdout, "no entries match; the archive has schemas %s\nand types %s\n",
			safeJoin(schemasOf(all), ", "), safeJoin(typesOf(rec), ", "))
	}
	switch {
	case res.MatchesCatalog == nil:
	case *res.MatchesCatalog:
		fmt.Fprintf(e.stdout, "the archive lists the same %d entries the catalog recorded\n", res.Total)
	default:
		fmt.Fprintln(e.stdout, "the archive differs from the entries the catalog recorded:")
		for _, d := range res.Differences {
			fmt.Fprintf(e.stdout, "  %s\n", safeText(d))
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// typesOf lists the entry types a record's archive has, most frequent first.
func typesOf(rec *catalog.Record) []string {
	var ts []string
	for t := range rec.TOC.Counts {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool {
		ci, cj := rec.TOC.Counts[ts[i]], rec.TOC.Counts[ts[j]]
		return ci > cj || ci == cj && ts[i] < ts[j]
	})
	return ts
}

// schemasOf lists the schemas entries are in, sorted.
func schemasOf(entries []catalog.TOCEntry) []string {
	seen := map[string]bool{}
	var out []string
	for _, en := range entries {
		if en.Schema != "" && !seen[en.Schema] {
			seen[en.Schema] = true
			out = append(out, en.Schema)
		}
	}
	sort.Strings(out)
	return out
}

// diffEntries lists entries only in one of the two lists, as
// "+ line" (only in the archive) and "- line" (only in the catalog).
func diffEntries(stored, live []catalog.TOCEntry) []string {
	key := func(en catalog.TOCEntry) string {
		return fmt.Sprintf("%d; %s %s %s %s", en.DumpID, en.Type, dash(en.Schema), en.Name, dash(en.Owner))
	}
	count := map[string]int{}
	for _, en := range stored {
		count[key(en)]++
	}
	for _, en := range live {
		count[key(en)]--
	}
	var out []string
	for k, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+k)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+k)
		}
	}
	sort.Strings(out)
	return out
}
