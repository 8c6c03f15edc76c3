package cli

import (
	"context"
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
)

func listCommand(e *env) *ucli.Command {
	var o listOptions
	return &ucli.Command{
		Name:      "list",
		Usage:     "list the backups in the catalog, newest first",
		ArgsUsage: " ",
		Description: `Examples:
   pgattest list
   pgattest list --name shop-prod --since 2026-11-01 --status verified
   pgattest --json list --limit 0 | jq '.[] | select(.status != "verified") | .id'

Exit codes: 0 listed (also when nothing matches); 1 the catalog cannot be
read; 2 bad flags.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "name", Usage: "only backups filed under this name", Destination: &o.name},
			&ucli.StringFlag{Name: "status", Usage: "only this status: verified, failed, unverified, pruned or missing (prune found the archive gone)", Destination: &o.status},
			&ucli.StringFlag{Name: "since", Usage: "only backups started at or after this time (RFC 3339 or date)", Destination: &o.since},
			&ucli.StringFlag{Name: "until", Usage: "only backups started at or before this time (a date means its end)", Destination: &o.until},
			&ucli.IntFlag{Name: "limit", Usage: "at most this many (0: all)", Value: 50, Destination: &o.limit},
		},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "list", "'pgattest show ID' shows one backup"); err != nil {
				return err
			}
			return runList(c.Context, e, o)
		},
	}
}

// listOptions are list's flags.
type listOptions struct {
	name, status, since, until string
	limit                      int
}

func runList(ctx context.Context, e *env, o listOptions) error {
	q := catalog.Query{Name: o.name, Status: o.status, Limit: o.limit}
	switch q.Status {
	case "", catalog.StatusVerified, catalog.StatusFailed, catalog.StatusUnverified, catalog.StatusPruned, catalog.StatusMissing:
	default:
		return usageErrorf("use verified, failed, unverified, pruned or missing", "--status %q is not a status", q.Status)
	}
	var err error
	if s := o.since; s != "" {
		if q.Since, err = parseTime("since", s, true); err != nil {
			return err
		}
	}
	if s := o.until; s != "" {
		if q.Until, err = parseTime("until", s, false); err != nil {
			return err
		}
	}
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	defer cat.Close()
	recs, err := cat.List(q)
	if err != nil {
		return err
	}
	if e.json {
		if recs == nil {
			recs = []*catalog.Record{}
		}
		return writeJSON(e.stdout, recs)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stdout, "no backups match in %s\n", cat.Path())
		return nil
	}
	printRecords(e.stdout, recs)
	return nil
}

func showCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "show",
		Usage:     "show one backup: archive, digest, contents, proofs, row counts",
		ArgsUsage: "ID",
		Description: `ID may be shortened to any unique prefix, as 'pgattest list' prints it.

Examples:
   pgattest show 20261124T222800Z-shop-7f3a
   pgattest --json show 20261124T2228 | jq .proofs

Exit codes: 0 shown; 1 the catalog cannot be read; 2 no such backup, or
an ID prefix that matches several.`,
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("'pgattest list' prints the IDs", "show takes one backup ID")
			}
			return runShow(c.Context, e, showOptions{id: c.Args().First()})
		},
	}
}

// showOptions are show's argument.
type showOptions struct {
	id string
}

func runShow(ctx context.Context, e *env, o showOptions) error {
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	defer cat.Close()
	rec, err := resolve(cat, o.id)
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, rec)
	}
	printRecord(e.stdout, rec)
	return nil
}

// resolve finds the backup an ID (or a unique prefix of one) names; an ID
// that names none or several is a usage error.
func resolve(cat *catalog.Catalog, id string) (*catalog.Record, error) {
	rec, err := cat.Resolve(id)
	if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrAmbiguous) {
		return nil, usageErrorf("'pgattest list' prints the IDs in "+cat.Path(), "%v", err)
	}
	return rec, err
}
