package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

func pruneCommand(e *env) *ucli.Command {
	var o pruneOptions
	return &ucli.Command{
		Name:      "prune",
		Usage:     "delete old archives by a retention policy, keeping their records",
		ArgsUsage: " ",
		Description: `Decides, for each name, which backups a policy keeps, with restic's rules:
--keep-daily 7 keeps the newest backup of each of the 7 newest days that have
one, and so on; a backup kept by any rule is kept; -1 means all. Days, weeks
(ISO), months and years are in UTC. Only proven backups fill a slot, and the
newest proven backup of each name is never removed. A failed or unproven
backup is kept while it is newer than every proven one, else removed.

Only what restores counts: each archive is asked of its folder or bucket
first (no byte read); one that is gone fills no slot, is marked "missing"
and is not deleted (found again later, it counts again). A folder or store
that cannot answer stops the prune before anything is deleted. A backup and
its re-encrypted copies are one backup: the copy for the newest recipients
is kept, the others removed ("superseded").

Removing deletes the archive and its manifest and marks the record "pruned"
with an event in the chain: the record stays, so 'list' and 'audit' still
show what existed and when it went. The chain is verified first; prune
refuses to act on a catalog that does not verify.

Examples:
   pgattest prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
   pgattest prune --name shop-prod --keep-within 30d --keep-monthly -1
   pgattest prune --keep-last 10

Exit codes: 0 done; 1 an archive could not be deleted, or a store could
not say whether one is there; 2 no or bad policy;
3 the catalog's chain is broken.`,
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "keep-last", Usage: "keep the newest N proven backups", Destination: &o.policy.Last},
			&ucli.IntFlag{Name: "keep-hourly", Usage: "keep the newest proven backup of each of the newest N hours", Destination: &o.policy.Hourly},
			&ucli.IntFlag{Name: "keep-daily", Usage: "keep the newest proven backup of each of the newest N days", Destination: &o.policy.Daily},
			&ucli.IntFlag{Name: "keep-weekly", Usage: "keep the newest proven backup of each of the newest N weeks", Destination: &o.policy.Weekly},
			&ucli.IntFlag{Name: "keep-monthly", Usage: "keep the newest proven backup of each of the newest N months", Destination: &o.policy.Monthly},
			&ucli.IntFlag{Name: "keep-yearly", Usage: "keep the newest proven backup of each of the newest N years", Destination: &o.policy.Yearly},
			&ucli.StringFlag{Name: "keep-within", Usage: "keep every proven backup started within this span of the newest (30d, 6m, 1y6m, 36h)", Destination: &o.within},
			&ucli.StringFlag{Name: "name", Usage: "only backups filed under this name", Destination: &o.name},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show the decision table; delete nothing", Destination: &o.dryRun},
		},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "prune", "for example: pgattest prune --keep-daily 7 --dry-run"); err != nil {
				return err
			}
			return runPrune(c.Context, e, o)
		},
	}
}

// pruneOptions are prune's flags.
type pruneOptions struct {
	policy catalog.Policy // the counts; Within from within
	within string
	name   string
	dryRun bool
}

// pipeline checks the policy and makes the pipeline's options of it.
func (o pruneOptions) pipeline() (pipeline.PruneOptions, error) {
	p := o.policy
	for _, f := range []struct {
		name string
		n    int
	}{{"keep-last", p.Last}, {"keep-hourly", p.Hourly}, {"keep-daily", p.Daily}, {"keep-weekly", p.Weekly}, {"keep-monthly", p.Monthly}, {"keep-yearly", p.Yearly}} {
		if f.n < -1 {
			return pipeline.PruneOptions{}, usageErrorf("use a count, or -1 for all", "--%s %d is out of range", f.name, f.n)
		}
	}
	if s := o.within; s != "" {
		span, err := catalog.ParseSpan(s)
		if err != nil {
			return pipeline.PruneOptions{}, usageErrorf("for example --keep-within 30d", "--keep-within: %v", err)
		}
		p.Within = span
	}
	if p.Empty() {
		return pipeline.PruneOptions{}, usageErrorf("say what to keep, for example --keep-daily 7 --keep-weekly 4 --keep-monthly 12 (add --dry-run to see the decision first)",
			"no retention policy given")
	}
	return pipeline.PruneOptions{Policy: p, Name: o.name, DryRun: o.dryRun}, nil
}

// pruneJSON is the JSON of prune.
type pruneJSON struct {
	Policy     string            `json:"policy"`
	DryRun     bool              `json:"dry_run"`
	Kept       []pruneRow        `json:"kept"`
	Removed    []pruneRow        `json:"removed"`
	FreedBytes int64             `json:"freed_bytes"`
	Failed     map[string]string `json:"failed,omitempty"`
	// Locked: to remove, but under Object Lock retention until then;
	// kept, and removed by a run after that date.
	Locked map[string]time.Time `json:"locked,omitempty"`
	// Missing: backups whose archive was not there whole; they fill no
	// slot, are marked missing, and nothing of them is deleted.
	Missing []pruneRow `json:"missing,omitempty"`
	Head    string     `json:"head,omitempty"`
}

type pruneRow struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	StartedAt time.Time `json:"started_at"`
	Status    string    `json:"status"`
	Size      int64     `json:"size"`
	Reasons   []string  `json:"reasons,omitempty"`
}

func runPrune(ctx context.Context, e *env, opts pruneOptions) error {
	o, err := opts.pipeline()
	if err != nil {
		return err
	}
	if _, err := os.Stat(e.catalogPath); errors.Is(err, fs.ErrNotExist) {
		return noCatalog(e)
	}
	if e.verbose {
		o.Log = func(line string) { fmt.Fprintf(e.stderr, "  %s\n", line) }
	}
	o.CatalogPath = e.catalogPath
	res, err := pipeline.Prune(ctx, o)
	var refused *pipeline.CatalogRefusedError
	if errors.As(err, &refused) {
		return &hintError{err: fmt.Errorf("refusing to prune: %w", refused.Err), kind: errProofFailed,
			hint: "'pgattest catalog verify' shows what is wrong; nothing was deleted"}
	}
	if err != nil && res == nil {
		return err
	}
	out := pruneJSON{Policy: res.Policy, DryRun: o.DryRun, Kept: []pruneRow{}, Removed: []pruneRow{}, FreedBytes: res.Freed, Head: res.Event.Hash}
	for _, k := range res.Kept {
		out.Kept = append(out.Kept, rowOf(k.Record, k.Reasons))
	}
	for _, r := range res.Removed {
		var why []string
		if c := res.Superseded[r.ID]; c != "" {
			why = []string{"superseded by its re-encrypted copy " + c}
		}
		out.Removed = append(out.Removed, rowOf(r, why))
	}
	for _, m := range res.Missing {
		out.Missing = append(out.Missing, rowOf(m.Record, []string{m.Why}))
	}
	if len(res.Locked) > 0 {
		out.Locked = res.Locked
	}
	if len(res.Failed) > 0 {
		out.Failed = map[string]string{}
		for id, ferr := range res.Failed {
			out.Failed[id] = ferr.Error()
		}
	}
	if e.json {
		if werr := writeJSON(e.stdout, out); werr != nil {
			return werr
		}
	} else {
		printPrune(e, out)
	}
	if e.verbose && res.Event.Seq > 0 {
		fmt.Fprintf(e.stderr, "catalog head: event %d %s\n", res.Event.Seq, res.Event.Hash)
	}
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return withHint(fmt.Errorf("%d archives could not be deleted; their records are unchanged", len(res.Failed)),
			"fix what the failures say and run prune again")
	}
	return nil
}

func rowOf(r *catalog.Record, reasons []string) pruneRow {
	return pruneRow{ID: r.ID, Name: r.Name, StartedAt: r.StartedAt, Status: r.Status, Size: r.Archive.Size, Reasons: reasons}
}

func printPrune(e *env, out pruneJSON) {
	w := e.stdout
	fmt.Fprintf(w, "policy: %s\n", out.Policy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DECISION\tID\tNAME\tSTARTED (UTC)\tSTATUS\tSIZE\tREASONS")
	verb := "removed"
	if out.DryRun {
		verb = "remove"
	}
	for _, r := range out.Kept {
		fmt.Fprintf(tw, "keep\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, safe(r.Name), r.StartedAt.UTC().Format("2006-01-02 15:04:05"), r.Status, formatBytes(r.Size), strings.Join(r.Reasons, ", "))
	}
	for _, r := range out.Removed {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", verb, r.ID, safe(r.Name), r.StartedAt.UTC().Format("2006-01-02 15:04:05"), r.Status, formatBytes(r.Size), strings.Join(r.Reasons, ", "))
	}
	for _, r := range out.Missing {
		fmt.Fprintf(tw, "missing\t%s\t%s\t%s\t%s\t%s\tthe archive is not there whole: %s\n", r.ID, safe(r.Name), r.StartedAt.UTC().Format("2006-01-02 15:04:05"), r.Status, formatBytes(r.Size), strings.Join(r.Reasons, ", "))
	}
	tw.Flush()
	ids := make([]string, 0, len(out.Failed))
	for id := range out.Failed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "failed  %s: %s\n", id, out.Failed[id])
	}
	locked := make([]string, 0, len(out.Locked))
	for id := range out.Locked {
		locked = append(locked, id)
	}
	sort.Strings(locked)
	for _, id := range locked {
		fmt.Fprintf(w, "kept    %s: locked until %s (Object Lock); a prune after that date removes it\n", id, out.Locked[id].UTC().Format(time.DateOnly))
	}
	if n := len(out.Missing); n > 0 {
		what := "archive was"
		if n > 1 {
			what = "archives were"
		}
		marked := "marked missing"
		if out.DryRun {
			marked = "to be marked missing"
		}
		fmt.Fprintf(w, "%d %s not found whole: counted in no slot, %s, nothing of them deleted; 'pgattest verify --hash-only ID' checks one again\n", n, what, marked)
	}
	if out.DryRun {
		fmt.Fprintf(w, "dry run: would keep %d and remove %d backups, freeing %s; nothing was changed\n", len(out.Kept), len(out.Removed), formatBytes(out.FreedBytes))
		return
	}
	fmt.Fprintf(w, "kept %d, removed %d backups, freed %s; their records stay, marked pruned\n", len(out.Kept), len(out.Removed), formatBytes(out.FreedBytes))
}
