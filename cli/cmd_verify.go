package cli

import (
	"fmt"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

func verifyCommand(e *env) *ucli.Command {
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
			&ucli.BoolFlag{Name: "all", Usage: "every backup in the catalog"},
			&ucli.StringFlag{Name: "since", Usage: "backups started at or after this time (RFC 3339 or date)"},
			&ucli.StringFlag{Name: "name", Usage: "with --all or --since: only this name"},
			&ucli.BoolFlag{Name: "hash-only", Usage: "only re-hash the archives; no restore"},
			&ucli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel restore jobs for directory-format archives", Value: 1},
			&ucli.StringSliceFlag{Name: "pg-bin", Usage: "folder with pg_restore, postgres and initdb; repeatable"},
			&ucli.StringFlag{Name: "identity", Usage: "age identity `FILE` (age-keygen's, or an SSH private key) to decrypt encrypted backups for a restore proof (--hash-only needs none); keep it off the backup host", EnvVars: []string{"PGATTEST_IDENTITY"}},
			&ucli.StringSliceFlag{Name: "verify-skip-extension", Usage: "when the proving Postgres lacks extension `NAME`, prove the rest without it (recorded in the proof); repeatable"},
			&ucli.StringFlag{Name: "sign-key", Usage: "sign a receipt of each proof with this ed25519 private key `FILE` (as backup --sign-key), stored beside the archive (NAME-STAMP.verify-STAMP.receipt.json) and in the record", EnvVars: []string{"PGATTEST_SIGN_KEY"}},
		},
		Action: func(c *ucli.Context) error {
			ids := c.Args().Slice()
			sel := 0
			for _, b := range []bool{len(ids) > 0, c.Bool("all"), c.IsSet("since")} {
				if b {
					sel++
				}
			}
			if sel != 1 {
				return usageErrorf("for example: pgattest verify ID, or pgattest verify --all", "say which backups: IDs, --all or --since")
			}
			q := catalog.Query{Name: c.String("name")}
			if s := c.String("since"); s != "" {
				t, err := parseTime("since", s, true)
				if err != nil {
					return err
				}
				q.Since = t
			}
			cat, err := openCatalog(e)
			if err != nil {
				return err
			}
			var recs []*catalog.Record
			if len(ids) > 0 {
				for _, id := range ids {
					r, err := resolve(cat, id)
					if err != nil {
						cat.Close()
						return err
					}
					recs = append(recs, r)
				}
			} else {
				recs, err = cat.List(q)
			}
			cat.Close() // not held while proofs run: others may use the catalog meanwhile
			if err != nil {
				return err
			}
			keys, err := pipeline.LoadIdentities(c.String("identity"))
			if err != nil {
				return err
			}
			o := pipeline.ReproveOptions{HashOnly: c.Bool("hash-only"), Jobs: c.Int("jobs"), PGBin: c.StringSlice("pg-bin"),
				SkipExtensions: c.StringSlice("verify-skip-extension"), Redactor: e.red, Identities: keys}
			return runVerify(c, e, recs, o, c.String("sign-key"))
		},
	}
}

func runVerify(c *ucli.Context, e *env, recs []*catalog.Record, o pipeline.ReproveOptions, signKey string) error {
	p := newProgress(e)
	if e.verbose {
		o.Log = func(line string) { p.line("    | %s", line) }
	}
	verb := map[bool]string{true: "hashing", false: "proving"}[o.HashOnly]
	res, err := pipeline.Verify(c.Context, recs, pipeline.VerifyOptions{ReproveOptions: o, CatalogPath: e.catalogPath, SignKey: signKey,
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
		return withHint(fmt.Errorf("%d of %d proofs were recorded without the receipt --sign-key asked for", res.Unsigned, len(res.Rows)), "the DETAIL column says why (a directory-format archive has no SHA-256 of one file to name)")
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
