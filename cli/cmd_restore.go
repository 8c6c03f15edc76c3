package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

func restoreCommand(e *env) *ucli.Command {
	var o restoreOptions
	return &ucli.Command{
		Name:      "restore",
		Usage:     "restore a proven backup into a database, picked by ID or by date",
		ArgsUsage: " ",
		Description: `Picks the newest backup of --name whose last proof passed and whose dump
started at or before --as-of (a bare date means the end of that day, UTC;
default: now), or the backup --id names. The archive is re-hashed first and a
mismatch refuses the restore (exit 3). The target database must exist
(createdb it first); the backup's own source is refused unless --force.

A backup in an S3 bucket streams from it (credentials from the AWS
variables), an encrypted one is decrypted with --identity as it streams; both
are hashed on the way and pg_restore's one transaction cannot finish before
the digests match: a changed archive leaves the target unchanged.

Examples:
   createdb shop_nov1
   pgattest restore --name shop-prod --as-of 2026-11-01 --target "postgresql://me@localhost/shop_nov1"
   pgattest restore --id 20261124T222800Z-shop-7f3a --target "$SCRATCH_URL" --table shop.orders --dry-run
   pgattest restore --name shop-prod --target "$STAGING_URL" --clean --no-owner --jobs 4
   pgattest restore --name shop-prod --identity ~/keys/backup.txt --target "$SCRATCH_URL"   # encrypted

   # a managed-cloud dump (Neon, Supabase) into a server without its roles:
   pgattest restore --name neondb --target "$LOCAL_URL" --no-owner --no-acl     # without owners and grants
   pgattest restore --name neondb --target "$LOCAL_URL" --create-roles          # or with them, roles made NOLOGIN

Exit codes: 0 restored (or planned, with --dry-run); 1 failure (an identity
that is not a recipient's); 2 usage error (an encrypted backup without
--identity); 3 the archive no longer matches its digest, or pg_restore failed.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "id", Usage: "the backup to restore (any unique prefix)", Destination: &o.id},
			&ucli.StringFlag{Name: "name", Usage: "restore the newest proven backup of this name", Destination: &o.name},
			&ucli.StringFlag{Name: "as-of", Usage: "with --name: newest proven backup started at or before this time (RFC 3339 or date)", Destination: &o.asOf},
			&ucli.StringFlag{Name: "target", Usage: "connection string of the database to restore into (required)", EnvVars: []string{"PGATTEST_TARGET"}, Destination: &o.target},
			&ucli.BoolFlag{Name: "no-owner", Usage: "do not set object owners; the target user owns everything", Destination: &o.noOwner},
			&ucli.BoolFlag{Name: "no-acl", Usage: "leave grants and default privileges out (pg_restore --no-privileges), and policies for roles the target lacks", Destination: &o.noACL},
			&ucli.BoolFlag{Name: "create-roles", Usage: "create the roles the archive names that the target lacks, NOLOGIN, granted to the target user (it needs CREATEROLE)", Destination: &o.createRoles},
			&ucli.BoolFlag{Name: "clean", Usage: "drop the archive's objects before creating them (with --if-exists); a partitioned table's partitions' indexes go with their parent's", Destination: &o.clean},
			jobsFlag(&o.jobs, "parallel restore jobs (not in one transaction)"),
			listFlag(&o.tables, "table", "schema.name: restore only this table with its data, indexes and constraints; repeatable"),
			&ucli.BoolFlag{Name: "dry-run", Usage: "say which backup, which entries and where; change nothing", Destination: &o.dryRun},
			&ucli.BoolFlag{Name: "force", Usage: "allow restoring into the backup's own source database", Destination: &o.force},
			allowPooledFlag(&o.allowPooled, "accept a target behind a pooler in transaction or statement mode"),
			pgBinFlag(&o.pgBin, "pg_restore"),
			identityFlag(&o.identity, "to decrypt an encrypted backup"),
		},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "restore", "use --id ID or --name NAME"); err != nil {
				return err
			}
			return runRestore(c.Context, e, o)
		},
	}
}

// restoreOptions are restore's flags.
type restoreOptions struct {
	id, name, asOf, target             string
	noOwner, noACL, createRoles, clean bool
	jobs                               int
	tables                             []string
	dryRun, force, allowPooled         bool
	pgBin                              []string
	identity                           string
}

func runRestore(ctx context.Context, e *env, opts restoreOptions) error {
	if opts.target == "" {
		return usageErrorf("pass --target URL of an existing database (createdb it first)", "restore needs --target")
	}
	if (opts.id == "") == (opts.name == "") {
		return usageErrorf("for example: --name shop-prod --as-of 2026-11-01, or --id ID", "say which backup: --id, or --name with an optional --as-of")
	}
	if opts.id != "" && opts.asOf != "" {
		return usageErrorf("--as-of picks among the backups of --name", "--as-of goes with --name, not --id")
	}
	if opts.jobs < 1 {
		return usageErrorf("use --jobs 1 or more", "--jobs %d is out of range", opts.jobs)
	}
	asOf := time.Now().UTC()
	if s := opts.asOf; s != "" {
		t, err := parseTime("as-of", s, false)
		if err != nil {
			return err
		}
		asOf = t
	}
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	var rec *catalog.Record
	if id := opts.id; id != "" {
		rec, err = resolve(cat, id)
	} else {
		rec, err = cat.AsOf(opts.name, asOf)
		var none *catalog.NoneAsOfError
		if errors.As(err, &none) {
			err = withHint(err, "'pgattest list --name "+opts.name+"' shows its backups; --id restores one that is not proven")
		}
	}
	cat.Close()
	if err != nil {
		return err
	}
	warnPasswordInArgv(e, "target", opts.target, "PGATTEST_TARGET")
	switch rec.Status {
	case catalog.StatusFailed:
		why := ""
		if p := rec.LastProof(); p != nil && p.Error != "" {
			why, _, _ = strings.Cut(p.Error, "\n")
			why = " (" + why + ")"
		}
		fmt.Fprintf(e.stderr, "pgattest: warning: backup %s failed its proof%s: it may not restore\n", rec.ID, why)
	case catalog.StatusUnverified:
		fmt.Fprintf(e.stderr, "pgattest: warning: backup %s was never proven by a restore\n", rec.ID)
	}
	ids, err := pipeline.LoadIdentities(opts.identity)
	if err != nil {
		return err
	}
	p := newProgress(e)
	o := pipeline.RestoreOptions{Identities: ids,
		Record: rec, Target: opts.target, NoOwner: opts.noOwner, Clean: opts.clean,
		NoACL: opts.noACL, CreateRoles: opts.createRoles,
		Jobs: opts.jobs, Tables: opts.tables, DryRun: opts.dryRun, Force: opts.force, AllowPooled: opts.allowPooled,
		PGBin: opts.pgBin, Redactor: e.red, CatalogPath: e.catalogPath,
	}
	if e.verbose {
		o.Log = func(line string) { p.line("    | %s", line) }
	}
	o.Starting = func(target *pipeline.Source) {
		p.line("restoring %s (%s, started %s) into %s …", rec.ID, rec.Name, formatTime(rec.StartedAt), target.Display())
	}
	t0 := time.Now()
	plan, err := pipeline.Restore(ctx, o)
	if err != nil {
		return err
	}
	return printRestore(e, plan, o.DryRun, time.Since(t0), plan.Event)
}

type restoreJSON struct {
	DryRun  bool            `json:"dry_run"`
	Backup  *catalog.Record `json:"backup"`
	Target  string          `json:"target"`
	Entries []string        `json:"entries"`
	Skipped []string        `json:"skipped"`
	Notes   []string        `json:"notes,omitempty"`
	Created []string        `json:"created_roles,omitempty"`
	Total   int             `json:"total_entries"`
	Command string          `json:"command"`
	TookMS  int64           `json:"duration_ms"`
}

func printRestore(e *env, plan *pipeline.RestorePlan, dry bool, took time.Duration, ev catalog.Event) error {
	if e.json {
		out := restoreJSON{DryRun: dry, Backup: plan.Record, Target: plan.Target.Display(), Total: plan.Total,
			Command: plan.Command, TookMS: took.Milliseconds(), Skipped: plan.Skipped, Notes: plan.Notes, Created: plan.CreatedRoles, Entries: []string{}}
		for _, en := range plan.Entries {
			out.Entries = append(out.Entries, en.Line())
		}
		if out.Skipped == nil {
			out.Skipped = []string{}
		}
		return writeJSON(e.stdout, out)
	}
	w := e.stdout
	verb := "restored"
	if dry {
		verb = "would restore"
	}
	rec := plan.Record
	fmt.Fprintf(w, "%s backup %s (%s, started %s, %s)\n", verb, rec.ID, safe(rec.Name), formatTime(rec.StartedAt), rec.Status)
	fmt.Fprintf(w, "  archive  %s (digest matches)\n", rec.Archive.Path)
	fmt.Fprintf(w, "  into     %s (PostgreSQL %s)\n", plan.Target.Display(), plan.Target.ServerVersion.Raw)
	fmt.Fprintf(w, "  entries  %d of %d\n", len(plan.Entries), plan.Total)
	if dry || len(plan.Entries) < plan.Total {
		for _, en := range plan.Entries {
			schema := en.Schema
			if schema == "" {
				schema = "-"
			}
			fmt.Fprintf(w, "    %-18s %s %s\n", safe(en.Type), safe(schema), safe(en.Name))
		}
	}
	for _, s := range plan.Skipped {
		fmt.Fprintf(w, "  skipped  %s\n", safeText(s))
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(w, "  note     %s\n", safeText(n))
	}
	if len(plan.CreatedRoles) > 0 {
		verb := "created"
		if dry {
			verb = "would create"
		}
		fmt.Fprintf(w, "  roles    %s %d NOLOGIN: %s\n", verb, len(plan.CreatedRoles), safeJoin(plan.CreatedRoles, ", "))
	}
	if dry {
		fmt.Fprintf(w, "  command  %s\n", plan.Command)
		fmt.Fprintln(w, "nothing was changed (--dry-run)")
	} else {
		fmt.Fprintf(w, "  took     %s\n", formatDuration(took))
		if e.verbose {
			fmt.Fprintf(e.stderr, "catalog head: event %d %s\n", ev.Seq, ev.Hash)
		}
	}
	return nil
}
