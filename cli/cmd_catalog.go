package cli

import (
	"context"
	"fmt"
	"sort"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

// catalogVerifyOptions, catalogImportOptions and catalogRebuildOptions are
// the catalog subcommands' flags and arguments.
type catalogVerifyOptions struct {
	archives bool
}

type catalogImportOptions struct {
	manifests []string
	dir       string
}

type catalogRebuildOptions struct {
	repo                  string
	rehash, includeHidden bool
	trustKeys             []string
}

func catalogCommand(e *env) *ucli.Command {
	var (
		verifyOpts  catalogVerifyOptions
		importOpts  catalogImportOptions
		rebuildOpts catalogRebuildOptions
	)
	return &ucli.Command{
		Name:  "catalog",
		Usage: "check the catalog, import into it, rebuild it from a repository",
		Subcommands: []*ucli.Command{{
			Name:      "verify",
			Usage:     "walk the hash chain of events; with --archives, re-hash every archive",
			ArgsUsage: " ",
			Description: `Every change to the catalog appends an event whose hash covers the previous
event's hash and the record as stored. This walks the whole chain, checks each
record against its last event, and prints the head hash: keep it somewhere
else (a ticket, a log) and a later run proves nothing was rewritten since.

Examples:
   pgattest catalog verify
   pgattest catalog verify --archives      # also re-hash every archive on disk

Exit codes: 0 intact; 1 the catalog cannot be read; 3 a broken link or an
archive that no longer matches its digest.`,
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "archives", Usage: "also re-hash every archive that has not been pruned", Destination: &verifyOpts.archives},
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() > 0 {
					return usageErrorf("run 'pgattest catalog verify'", "catalog verify takes no arguments")
				}
				return runCatalogVerify(c.Context, e, verifyOpts)
			},
		}, {
			Name:      "import",
			Usage:     "record backups from their manifests: runs the catalog did not take, or archives from elsewhere",
			ArgsUsage: "[MANIFEST...]",
			Description: `A backup whose record the catalog could not take (held by another run too
long, damaged, on a full disk) keeps its archive and manifest in
DIR/NAME/.pgattest-unrecorded/, never under its final name. Once the catalog
is fixed, import records it: the archive's digest must match its manifest,
then the archive takes its final name and the record its event. Any other
manifest (MANIFEST.json beside its archive) can be imported the same way. A
backup the catalog holds already is left alone. The status is what the
record's proofs give: only a passed restore proof makes a backup verified.

Examples:
   pgattest catalog import                         # every unrecorded run under --dir
   pgattest catalog import backups/shop/.pgattest-unrecorded/shop-20261124T222800Z.manifest.json

Exit codes: 0 imported (or already there); 1 a manifest could not be read or
recorded; 3 an archive does not match its manifest's digest.`,
			Flags: []ucli.Flag{
				dirFlag(&importOpts.dir, "where to look for unrecorded runs when no MANIFEST is given"),
			},
			Action: func(c *ucli.Context) error {
				importOpts.manifests = c.Args().Slice()
				return runCatalogImport(c.Context, e, importOpts)
			},
		}, {
			Name:      "rebuild",
			Usage:     "make a new catalog from the manifests in a repository (a bucket, a folder)",
			ArgsUsage: " ",
			Description: `Every backup stores its manifest beside its archive: the record as it was made
and the archive's table of contents. When the machine that held the catalog
is gone, rebuild reads every NAME/*.manifest.json of the repository, checks
that its archive is there (of the recorded size; with --rehash, of the
recorded BLAKE3 too) and records it, oldest first, in a new catalog: list,
audit and restore --as-of then work as before. Backups that many machines
wrote into one bucket are rebuilt together. Proofs made later by verify are
not in manifests: with --trust-key they are taken from their signed receipts
(NAME-STAMP.verify-STAMP.receipt.json); without, run verify again to add them.

A manifest is a file: whoever can write to the repository could have written
it. With --trust-key (the public half of backup --sign-key's key), a backup
is recorded verified only when the receipt beside it, signed by a trusted
key, covers its archive's digest and its proof; any other is recorded
unverified, its claimed proofs kept apart, and the summary counts why
(unsigned, unknown key, receipt does not match). A later proof whose receipt a
trusted key signed for these very bytes counts too, also for a backup that
was not signed.

Examples:
   pgattest catalog rebuild --repo s3://acme-backups/pg --catalog ~/rebuilt.db --trust-key sign.pub.pem
   pgattest catalog rebuild --repo /srv/backups --catalog /srv/catalog.db --rehash

Exit codes: 0 rebuilt; 1 a manifest could not be read or the store reached; 2
the catalog holds records already; 3 an archive is missing or does not match
its manifest.`,
			Flags: []ucli.Flag{
				repoFlag(&rebuildOpts.repo, "the repository: s3://BUCKET[/PREFIX] (credentials from the AWS variables), file:///path or a folder"),
				&ucli.BoolFlag{Name: "rehash", Usage: "re-hash every archive (reads them all), not only check each is there", Destination: &rebuildOpts.rehash},
				&ucli.BoolFlag{Name: "include-hidden", Usage: "also record backups whose manifest a delete marker hides in a versioned bucket (listed, not recorded, without it)", Destination: &rebuildOpts.includeHidden},
				trustKeyFlag(&rebuildOpts.trustKeys, "record a backup verified only when a receipt signed by this public key `FILE` (SPKI PEM) covers its archive and proof; repeatable"),
			},
			Action: func(c *ucli.Context) error {
				if err := noArgs(c, "catalog rebuild", "name the repository with --repo"); err != nil {
					return err
				}
				return runCatalogRebuild(c.Context, e, rebuildOpts)
			},
		}},
	}
}

func runCatalogRebuild(ctx context.Context, e *env, o catalogRebuildOptions) error {
	if o.repo == "" {
		return usageErrorf("give --repo s3://BUCKET/PREFIX or --repo /path/to/backups", "catalog rebuild needs the repository to read")
	}
	res, err := pipeline.Rebuild(ctx, pipeline.RebuildOptions{CatalogPath: e.catalogPath, Repo: o.repo, Rehash: o.rehash,
		IncludeHidden: o.includeHidden, TrustKeys: o.trustKeys})
	if err != nil {
		return err
	}
	return printImport(e, res, "rebuilt")
}

func runCatalogImport(ctx context.Context, e *env, o catalogImportOptions) error {
	manifests := o.manifests
	if len(manifests) == 0 {
		var err error
		if manifests, err = pipeline.UnrecordedManifests(o.dir); err != nil {
			return err
		}
	}
	res, err := pipeline.Import(e.catalogPath, manifests)
	if err != nil {
		return err
	}
	return printImport(e, res, "imported")
}

// printImport shows what catalog import or rebuild did with each manifest.
func printImport(e *env, res *pipeline.ImportResult, verb string) error {
	type row struct {
		Manifest string `json:"manifest"`
		ID       string `json:"id,omitempty"`
		Result   string `json:"result"`
		Error    string `json:"error,omitempty"`
		Note     string `json:"note,omitempty"`
		// Attestation: what a rebuild with trusted keys found of the receipt.
		Attestation string `json:"attestation,omitempty"`
	}
	out := []row{}
	var failed, evidence, imported, hidden int
	attested := map[string]int{}
	for _, r := range res.Rows {
		x := row{Manifest: r.Manifest, Result: r.Result, Note: r.Note, Attestation: r.Attestation}
		if r.Attestation != "" && r.Err == nil {
			attested[r.Attestation]++
		}
		switch r.Result {
		case "imported":
			imported++
		case "hidden":
			hidden++
		}
		if r.Record != nil {
			x.ID = r.Record.ID
		}
		if r.Err != nil {
			x.Error = r.Err.Error()
			failed++
			if verify.ProofFailed(r.Err) {
				evidence++
			}
		}
		out = append(out, x)
	}
	if e.json {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		for _, r := range out {
			fmt.Fprintf(e.stdout, "%-16s %s %s\n", r.Result, safe(r.ID), safe(r.Manifest))
			if r.Error != "" {
				fmt.Fprintf(e.stdout, "                 %s\n", safeText(r.Error))
			}
			if r.Note != "" {
				fmt.Fprintf(e.stdout, "                 %s\n", safeText(r.Note))
			}
		}
		if verb == "rebuilt" {
			fmt.Fprintf(e.stdout, "%d manifests: %d recorded in %s, %d failed", len(out), imported, e.catalogPath, failed)
			if hidden > 0 {
				fmt.Fprintf(e.stdout, ", %d hidden behind delete markers (not recorded; --include-hidden records them)", hidden)
			}
			fmt.Fprintln(e.stdout)
			if len(attested) > 0 {
				fmt.Fprintf(e.stdout, "receipts: %d signed by a trusted key; recorded unverified: %d unsigned, %d by an unknown key, %d whose receipt does not match\n",
					attested[pipeline.AttestSigned], attested[pipeline.AttestUnsigned], attested[pipeline.AttestUnknownKey], attested[pipeline.AttestMismatch])
			}
		} else {
			fmt.Fprintf(e.stdout, "%d manifests: %d imported, %d already recorded, %d failed\n", len(out), imported, len(out)-imported-failed, failed)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stderr, "pgattest: note: %s\n", n)
	}
	if e.verbose && res.Event.Seq > 0 {
		fmt.Fprintf(e.stderr, "catalog head: event %d %s\n", res.Event.Seq, res.Event.Hash)
	}
	switch {
	case evidence > 0:
		return proofErrorf("someone changed the archive after its manifest was written, or wrote the manifest: those are not recorded; restore from another backup",
			"%d manifests are evidence of tampering (archives that do not match their manifest, or manifests that cannot be true)", evidence)
	case failed > 0:
		return withHint(fmt.Errorf("%d of %d manifests could not be %s", failed, len(out), verb), "the lines above say why")
	case len(out) == 0:
		if verb == "rebuilt" {
			fmt.Fprintln(e.stderr, "pgattest: no manifests in the repository: the new catalog is empty")
		} else {
			fmt.Fprintln(e.stderr, "pgattest: no manifests to import")
		}
	}
	return nil
}

// chainResult is the JSON of catalog verify.
type chainResult struct {
	OK       bool                `json:"ok"`
	Events   int                 `json:"events"`
	Records  int                 `json:"records"`
	HeadSeq  uint64              `json:"head_seq"`
	Head     string              `json:"head"`
	Broken   *catalog.BrokenLink `json:"broken,omitempty"`
	Archives *archiveCheck       `json:"archives,omitempty"`
}

type archiveCheck struct {
	Checked  int               `json:"checked"`
	Failures map[string]string `json:"failures"` // backup id → why
}

func runCatalogVerify(ctx context.Context, e *env, o catalogVerifyOptions) error {
	archives := o.archives
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	rep, err := cat.VerifyChain()
	if err != nil {
		cat.Close()
		return err
	}
	res := chainResult{OK: rep.OK(), Events: rep.Events, Records: rep.Records, HeadSeq: rep.HeadSeq, Head: rep.Head, Broken: rep.Broken}
	var recs []*catalog.Record
	if archives {
		recs, err = cat.List(catalog.Query{})
	}
	cat.Close()
	if err != nil {
		return err
	}
	if archives {
		res.Archives = &archiveCheck{Failures: map[string]string{}}
		for _, r := range recs {
			if r.Status == catalog.StatusPruned {
				continue
			}
			res.Archives.Checked++
			_, err := pipeline.HashStored(ctx, r)
			if ctx.Err() != nil {
				return ctx.Err() // interrupted: an unfinished read is no finding
			}
			if err != nil {
				res.Archives.Failures[r.ID] = err.Error()
				res.OK = false
			}
		}
	}
	if e.json {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "catalog %s\n", e.catalogPath)
		fmt.Fprintf(e.stdout, "  events   %d checked\n  records  %d checked\n", res.Events, res.Records)
		if rep.Broken != nil {
			fmt.Fprintf(e.stdout, "  chain    BROKEN: %v\n", rep.Broken)
		} else {
			fmt.Fprintf(e.stdout, "  chain    intact\n")
		}
		fmt.Fprintf(e.stdout, "  head     event %d %s\n", res.HeadSeq, res.Head)
		if a := res.Archives; a != nil {
			fmt.Fprintf(e.stdout, "  archives %d checked, %d do not match\n", a.Checked, len(a.Failures))
			ids := make([]string, 0, len(a.Failures))
			for id := range a.Failures {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				fmt.Fprintf(e.stdout, "    %s: %s\n", id, a.Failures[id])
			}
		}
	}
	switch {
	case rep.Broken != nil:
		return &hintError{err: rep.Broken, kind: errProofFailed,
			hint: "the catalog was changed outside pgattest from that point on; compare with a copy, and with the manifests beside the archives"}
	case res.Archives != nil && len(res.Archives.Failures) > 0:
		return proofErrorf("'pgattest verify ID' records the failure in the backup's record", "%d archives do not match their recorded digest", len(res.Archives.Failures))
	}
	return nil
}
