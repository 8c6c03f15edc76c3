package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

func verifyCommand(e *env) *ucli.Command {
	var o verifyOptions
	return &ucli.Command{
		Name:      "verify",
		Usage:     "prove recorded backups again: re-hash, and restore unless --hash-only",
		ArgsUsage: "[ID...]",
		Description: `The scheduled scrub for long-term archives. For each backup, the archive is
re-hashed and must match the catalog (a missing archive fails); then, unless
--hash-only, it is restored into a throwaway Postgres and every table's rows
are counted. Each result is appended to the record with an event in the
chain. Pruned backups are skipped. A backup in an S3 bucket is read from it;
an encrypted one needs --identity for a restore proof (--hash-only checks the
stored bytes and needs no key).

Examples:
   pgattest verify 20261124T222800Z-shop-7f3a
   pgattest verify --all --hash-only             # cheap weekly check of every archive
   pgattest verify --since 2026-11-01            # re-prove this month's backups

A proof that could not run, or that the machine stopped (a full temp
folder, no memory, a process killed), is not recorded: a verified backup
stays verified, and the DETAIL column says what ran short and where.

Exit codes: 0 all passed; 1 a proof could not run; 3 an archive failed.`,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "all", Usage: "every backup in the catalog", Destination: &o.all},
			&ucli.StringFlag{Name: "since", Usage: "backups started at or after this time (RFC 3339 or date)", Destination: &o.since},
			&ucli.StringFlag{Name: "name", Usage: "with --all or --since: only this name", Destination: &o.name},
			&ucli.BoolFlag{Name: "hash-only", Usage: "only re-hash the archives; no restore", Destination: &o.hashOnly},
			jobsFlag(&o.jobs, "parallel restore jobs for directory-format archives"),
			pgBinFlag(&o.pgBin, "pg_restore, postgres and initdb"),
			identityFlag(&o.identity, "to decrypt encrypted backups for a restore proof (--hash-only needs none)"),
			skipExtensionFlag(&o.skipExtensions),
			signKeyFlag(&o.signKey, "sign a receipt of each proof with this ed25519 private key `FILE` (as backup --sign-key), stored beside the archive (NAME-STAMP.verify-STAMP.receipt.json) and in the record", true),
		},
		Action: func(c *ucli.Context) error {
			o.ids = c.Args().Slice()
			return runVerify(c.Context, e, o)
		},
	}
}

// verifyOptions are verify's flags and arguments.
type verifyOptions struct {
	ids                   []string // the backups named
	all                   bool
	since, name           string
	hashOnly              bool
	jobs                  int
	pgBin, skipExtensions []string
	identity, signKey     string
}

// records are the backups the options select.
func (o verifyOptions) records(e *env) ([]*catalog.Record, error) {
	sel := 0
	for _, b := range []bool{len(o.ids) > 0, o.all, o.since != ""} {
		if b {
			sel++
		}
	}
	if sel != 1 {
		return nil, usageErrorf("for example: pgattest verify ID, or pgattest verify --all", "say which backups: IDs, --all or --since")
	}
	q := catalog.Query{Name: o.name}
	if o.since != "" {
		t, err := parseTime("since", o.since, true)
		if err != nil {
			return nil, err
		}
		q.Since = t
	}
	cat, err := openCatalog(e)
	if err != nil {
		return nil, err
	}
	defer cat.Close() // not held while proofs run: others may use the catalog meanwhile
	if len(o.ids) == 0 {
		return cat.List(q)
	}
	var recs []*catalog.Record
	for _, id := range o.ids {
		r, err := resolve(cat, id)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func runVerify(ctx context.Context, e *env, opts verifyOptions) error {
	recs, err := opts.records(e)
	if err != nil {
		return err
	}
	keys, err := pipeline.LoadIdentities(opts.identity)
	if err != nil {
		return err
	}
	o := pipeline.ReproveOptions{HashOnly: opts.hashOnly, Jobs: opts.jobs, PGBin: opts.pgBin,
		SkipExtensions: opts.skipExtensions, Redactor: e.red, Identities: keys}
	p := newProgress(e)
	if e.verbose {
		o.Log = func(line string) { p.line("    | %s", line) }
	}
	verb := map[bool]string{true: "hashing", false: "proving"}[o.HashOnly]
	res, err := pipeline.Verify(ctx, recs, pipeline.VerifyOptions{ReproveOptions: o, CatalogPath: e.catalogPath, SignKey: opts.signKey,
		OnStart: func(i, n int, rec *catalog.Record) { p.line("[%d/%d] %s %s", i+1, n, verb, rec.ID) }})
	p.done()
	if res == nil {
		return err
	}
	if e.json {
		out := make([]*catalog.Record, 0, len(res.Rows)) // always an array, whatever the count
		for _, r := range res.Rows {
			out = append(out, r.Record)
		}
		if jerr := writeJSON(e.stdout, out); jerr != nil {
			return jerr
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tRESULT\tTOOK\tDETAIL")
		for _, r := range res.Rows {
			detail := r.Detail
			if r.Err != nil {
				detail = oneLineError(r.Err)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Record.ID, safe(r.Record.Name), r.Result, formatDuration(r.Took), detail)
		}
		tw.Flush()
		fmt.Fprintf(e.stdout, "%d checked: %d passed, %d failed, %d could not run, %d skipped\n",
			len(res.Rows), res.Passed, res.Failed, res.Errors, res.Skipped)
	}
	if e.verbose && res.Event.Seq > 0 {
		p.line("catalog head: event %d %s", res.Event.Seq, res.Event.Hash)
	}
	switch {
	case err != nil:
		return err
	case res.Failed > 0:
		return proofErrorf("'pgattest show ID' has the details of each failed proof", "%d of %d backups failed their proof", res.Failed, len(res.Rows))
	case res.Errors > 0:
		return withHint(fmt.Errorf("%d of %d proofs could not run", res.Errors, len(res.Rows)), "the DETAIL column says why; fix it and run verify again")
	case res.Unsigned > 0:
		return withHint(fmt.Errorf("%d of %d proofs were recorded without the receipt --sign-key asked for", res.Unsigned, len(res.Rows)), "the DETAIL column says why (the archive could not be read, or the receipt not stored); run verify --sign-key again once it is fixed")
	case len(res.Rows) == 0:
		fmt.Fprintln(e.stderr, "pgattest: no backups matched")
	}
	return nil
}

// oneLineError is an error and its hint on one line, for a table cell.
func oneLineError(err error) string {
	if h := hintOf(err); h != "" {
		return err.Error() + " (" + h + ")"
	}
	return err.Error()
}
