package cli

import (
	"fmt"
	"sort"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

func catalogCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "catalog",
		Usage: "check the catalog itself",
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
				&ucli.BoolFlag{Name: "archives", Usage: "also re-hash every archive that has not been pruned"},
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() > 0 {
					return usageErrorf("run 'pgattest catalog verify'", "catalog verify takes no arguments")
				}
				return runCatalogVerify(e, c.Bool("archives"))
			},
		}},
	}
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

func runCatalogVerify(e *env, archives bool) error {
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
			if _, err := verify.CheckDigest(r.Archive.Path, r.Archive.Format, r.Archive.BLAKE3); err != nil {
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
