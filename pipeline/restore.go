package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// RestoreOptions configure a restore of a recorded backup into a target.
type RestoreOptions struct {
	Record  *catalog.Record
	Target  string   // connection string of the target database (must exist)
	NoOwner bool     // --no-owner: objects owned by the connecting user
	Clean   bool     // --clean --if-exists: drop objects before creating them
	Jobs    int      // > 1: parallel pg_restore (no single transaction)
	Tables  []string // schema.name: restore only these tables, with their data, indexes and constraints
	DryRun  bool     // say what would happen; change nothing
	Force   bool     // allow the backup's own source database as the target
	// AllowPooled accepts a target behind a pooler in transaction or
	// statement mode (pg_restore's session settings may not hold there).
	AllowPooled bool
	PGBin       []string
	Redactor    *Redactor
	Log         func(line string)
	// Starting, when set, is called once every check has passed, just
	// before pg_restore runs (not for a dry run).
	Starting func(target *Source)
	// CatalogPath, when set, is the catalog the restore is noted in (a
	// "restored" event); it must be writable and intact before anything
	// is restored.
	CatalogPath string
}

// RestorePlan is what a restore did, or would do with DryRun.
type RestorePlan struct {
	Record  *catalog.Record
	Target  *Source
	Entries []verify.Entry // the selected entries; all of them when no table was named
	Skipped []string       // entries left out of a selective restore, and why
	Notes   []string       // what the user should know: a selection that restores no rows
	Total   int            // entries in the archive
	Command string         // the pg_restore command line, password-free
	Event   catalog.Event  // the "restored" event, when noted
}

// SameSourceError refuses to restore over the backup's own source.
type SameSourceError struct{ Target string }

func (e *SameSourceError) Error() string {
	return fmt.Sprintf("the target %s is the database this backup was taken from", e.Target)
}

// Hint says how to go on.
func (e *SameSourceError) Hint() string {
	return "restore into a new database (createdb, then --target its URL), or pass --force if overwriting the source is what you mean"
}

// Restore re-hashes the backup's archive (a mismatch refuses the restore),
// checks the target, selects entries for --table, and runs pg_restore. On
// cancel the target is left as pg_restore left it; the error says so.
func Restore(ctx context.Context, o RestoreOptions) (*RestorePlan, error) {
	plan, err := restoreBackup(ctx, o)
	var h *hinted
	if err != nil && ctx.Err() != nil && !errors.As(err, &h) { // stopped before pg_restore ran
		return plan, withHintErr(fmt.Errorf("restore interrupted before pg_restore ran: the target was not changed"),
			"run the restore again")
	}
	return plan, err
}

func restoreBackup(ctx context.Context, o RestoreOptions) (*RestorePlan, error) {
	rec := o.Record
	if o.Redactor == nil {
		o.Redactor = &Redactor{}
	}
	if log := o.Log; log != nil { // pg_restore's lines are text from outside
		o.Log = func(line string) { log(o.Redactor.String(line)) }
	}
	if !o.DryRun {
		if err := checkCatalog(o.CatalogPath, false); err != nil {
			return nil, err
		}
	}
	if rec.Status == catalog.StatusPruned {
		return nil, withHintErr(fmt.Errorf("backup %s was pruned on %s: its archive is gone", rec.ID, rec.PrunedAt.Format("2006-01-02")),
			"pick another backup: 'pgattest list --name "+rec.Name+" --status verified'")
	}
	if _, err := verify.CheckDigest(rec.Archive.Path, rec.Archive.Format, rec.Archive.BLAKE3); err != nil {
		return nil, err // DigestMismatchError or MissingError: evidence, exit 3
	}
	target, err := Connect(ctx, o.Target, o.AllowPooled, o.Redactor)
	if err != nil {
		return nil, err
	}
	if sameDatabase(target, rec.Source) && !o.Force {
		return nil, &SameSourceError{Target: target.Display()}
	}
	tools, err := ChooseTools(maxVersion(recordedServer(rec), target.ServerVersion), o.PGBin)
	if err != nil {
		return nil, err
	}
	pgRestore := tools.Path("pg_restore")
	scratch, err := testenv.NewTempScratch("pgattest-restore-")
	if err != nil {
		return nil, err
	}
	defer scratch.Remove()

	toc, err := verify.ReadTOC(ctx, pgRestore, rec.Archive.Path)
	if err != nil {
		return nil, err
	}
	plan := &RestorePlan{Record: rec, Target: target, Entries: toc.Entries, Total: len(toc.Entries)}
	args := []string{"--verbose", "--exit-on-error", "--no-password", "--dbname=" + target.Conn.Sanitized()}
	if len(o.Tables) > 0 {
		exists, conn, err := targetHas(ctx, target, o.Redactor)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.Background())
		if plan.Entries, plan.Skipped, err = verify.SelectTables(toc, o.Tables, exists); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(plan.Entries, func(e verify.Entry) bool { return e.HasData() }) {
			plan.Notes = append(plan.Notes, "the archive holds no rows for "+strings.Join(o.Tables, ", ")+": only definitions are restored")
		}
		list := filepath.Join(scratch.Dir, "restore.list")
		if err := os.WriteFile(list, verify.List(plan.Entries), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--use-list="+list)
	}
	if o.NoOwner {
		args = append(args, "--no-owner")
	}
	if o.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	if o.Jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(o.Jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	args = append(args, rec.Archive.Path)
	plan.Command = o.Redactor.String(commandLine(pgRestore, args))
	if o.DryRun {
		return plan, nil
	}
	if o.Starting != nil {
		o.Starting(target)
	}
	if o.Log != nil {
		o.Log(plan.Command)
	}
	err = verify.RunRestore(ctx, pgRestore, args, target.ChildEnv(), o.Log)
	if err == nil && ctx.Err() == nil && o.CatalogPath != "" {
		cat, cerr := openCatalog(o.CatalogPath, nil)
		if cerr == nil {
			plan.Event, cerr = cat.Note(rec.ID, catalog.KindRestored, fmt.Sprintf("into %s, %d of %d entries", target.Display(), len(plan.Entries), plan.Total))
			cat.Close()
		}
		if cerr != nil {
			return plan, fmt.Errorf("restored, but the restore could not be noted in the catalog: %w", cerr)
		}
	}
	if ctx.Err() != nil {
		state := "the changes of the interrupted transaction were rolled back"
		if o.Jobs > 1 {
			state = "it holds what pg_restore's jobs had finished"
		}
		return plan, withHintErr(fmt.Errorf("restore interrupted: the target %s was left as pg_restore left it: %s", target.Display(), state),
			"run the restore again, with --clean to replace what is there")
	}
	return plan, err
}

// sameDatabase reports whether the target is the backup's source: by what
// both servers said (catalog.Identity) when the record has it; for records
// made before, by host, port and database as they were written.
func sameDatabase(t *Source, s catalog.Source) bool {
	if s.Identity != nil {
		return s.Identity.SameDatabase(t.Identity)
	}
	norm := func(h string) string {
		h = strings.ToLower(strings.TrimSuffix(h, "/"))
		if h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return "loopback"
		}
		return h
	}
	return norm(t.Host) == norm(s.Host) && t.Port == s.Port && t.Database == s.Database
}

func maxVersion(a, b testenv.Version) testenv.Version {
	if b.Major > a.Major {
		return b
	}
	return a
}

// withHintErr attaches a hint to an error of this package.
func withHintErr(err error, hint string) error { return &hinted{err: err, hint: hint} }

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }
func (h *hinted) Hint() string  { return h.hint }

// targetHas returns a check of whether the target database already has the
// object an entry creates (schemas, types, functions, sequences, extensions).
// Close the returned connection when done.
func targetHas(ctx context.Context, target *Source, red *Redactor) (func(verify.Entry) bool, *pgx.Conn, error) {
	conn, err := testenv.ConnectUTF8(ctx, target.Conn.withPassword())
	if err != nil {
		return nil, nil, connectError(target, err, red)
	}
	return func(e verify.Entry) bool {
		qualified := pgx.Identifier{e.Schema, e.Name}.Sanitize()
		var q string
		var arg any
		switch e.Type {
		case "SCHEMA":
			q, arg = `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, e.Name
		case "EXTENSION":
			q, arg = `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)`, e.Name
		case "TYPE", "DOMAIN", "SHELL TYPE":
			q, arg = `SELECT to_regtype($1) IS NOT NULL`, qualified
		case "SEQUENCE":
			q, arg = `SELECT to_regclass($1) IS NOT NULL`, qualified
		case "FUNCTION", "PROCEDURE", "AGGREGATE":
			q, arg = `SELECT to_regprocedure($1) IS NOT NULL`, pgx.Identifier{e.Schema}.Sanitize()+"."+e.Name
		case "COLLATION":
			q, arg = `SELECT to_regcollation($1) IS NOT NULL`, qualified
		default:
			return false
		}
		var ok bool
		if err := conn.QueryRow(ctx, q, arg).Scan(&ok); err != nil {
			return false
		}
		return ok
	}, conn, nil
}
