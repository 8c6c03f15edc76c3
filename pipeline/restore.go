package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// RestoreOptions configure a restore of a recorded backup into a target.
type RestoreOptions struct {
	Record  *catalog.Record
	Target  string // connection string of the target database (must exist)
	NoOwner bool   // --no-owner: objects owned by the connecting user
	// NoACL leaves grants and default privileges out (pg_restore
	// --no-privileges), and policies that name a role the target lacks.
	NoACL bool
	// CreateRoles creates the roles the archive names that the target
	// lacks, NOLOGIN, and grants them to the connecting user (so objects
	// can be handed to them); RestorePlan.CreatedRoles lists them.
	CreateRoles bool
	Clean       bool     // --clean --if-exists: drop objects before creating them
	Jobs        int      // > 1: parallel pg_restore (no single transaction)
	Tables      []string // schema.name: restore only these tables, with their data, indexes and constraints
	DryRun      bool     // say what would happen; change nothing
	Force       bool     // allow the backup's own source database as the target
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
	// Identities decrypt an encrypted backup (--identity).
	Identities *seal.Identities
}

// RestorePlan is what a restore did, or would do with DryRun.
type RestorePlan struct {
	Record  *catalog.Record
	Target  *Source
	Entries []verify.Entry // the selected entries; all of them when no table was named
	Skipped []string       // entries left out of a selective restore, and why
	Notes   []string       // what the user should know: a selection that restores no rows
	// CreatedRoles are the roles created in the target (CreateRoles), or
	// that would be (DryRun).
	CreatedRoles []string
	Total        int           // entries in the archive
	Command      string        // the pg_restore command line, password-free
	Event        catalog.Event // the "restored" event, when noted
}

// SameSourceError refuses to restore over the backup's own source.
type SameSourceError struct{ Target string }

func (e *SameSourceError) Error() string {
	return fmt.Sprintf("the target %s is the database this backup was taken from", e.Target)
}

// Hint says how to go on.
func (e *SameSourceError) Hint() string {
	return "restore into a new database (createdb first); overwriting the source takes an explicit override"
}

// CleanJobsError refuses --clean with parallel jobs for a custom-format
// archive holding partitioned tables, before anything is dropped: their
// partitions' indexes must be dropped with their parent's, which takes the
// archive streamed into one pg_restore.
type CleanJobsError struct{ Partitions int }

func (e *CleanJobsError) Error() string {
	return fmt.Sprintf("a clean restore of this archive cannot run in parallel: %d indexes or constraints of partitions must be dropped with their parent's, which takes one job", e.Partitions)
}

// Hint says what works.
func (e *CleanJobsError) Hint() string {
	return "restore it with one job (in one transaction), or in parallel into a new, empty database; nothing was changed"
}

// Is makes it a usage error: the combination is refused.
func (e *CleanJobsError) Is(t error) bool { return t == ErrUsage }

// foldedWithoutDrops makes, in dir, a directory-format archive that is
// folder with the drop statements of ids emptied in its toc.dat (see
// verify.WithoutDrops): its data files are hard links to folder's (pg_restore
// reads no symbolic link), or copies on another file system.
func foldedWithoutDrops(folder, dir string, ids map[int]bool) (string, error) {
	out := filepath.Join(dir, "clean.dir")
	if err := os.Mkdir(out, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(folder)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() == "toc.dat" {
			continue
		}
		src, dst := filepath.Join(folder, e.Name()), filepath.Join(out, e.Name())
		if err := os.Link(src, dst); err != nil { // another file system: a copy
			if err := testenv.CopyFile(dst, src, 0o600); err != nil {
				return "", err
			}
		}
	}
	in, err := os.Open(filepath.Join(folder, "toc.dat"))
	if err != nil {
		return "", err
	}
	defer in.Close()
	r, err := verify.WithoutDrops(in, ids)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(filepath.Join(out, "toc.dat"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return out, err
}

// InterruptedRestoreError: the restore was interrupted while pg_restore
// ran; State says what the target holds.
type InterruptedRestoreError struct {
	Target, State string
}

func (e *InterruptedRestoreError) Error() string {
	return fmt.Sprintf("restore interrupted: the target %s was left as pg_restore left it: %s", e.Target, e.State)
}

// Hint says how to go on.
func (e *InterruptedRestoreError) Hint() string {
	return "run the restore again, replacing what is there"
}

// Restore re-hashes the backup's archive (a mismatch refuses the restore),
// checks the target, selects entries for --table, and runs pg_restore. On
// cancel the target is left as pg_restore left it; the error says so.
func Restore(ctx context.Context, o RestoreOptions) (*RestorePlan, error) {
	plan, err := restoreBackup(ctx, o)
	var ir *InterruptedRestoreError
	if err != nil && ctx.Err() != nil && !errors.As(err, &ir) { // stopped before pg_restore ran
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
		return nil, &PrunedError{Record: rec}
	}
	scratch, err := testenv.NewTempScratch("pgattest-restore-")
	if err != nil {
		return nil, err
	}
	defer scratch.Remove()
	// The archive is read back once and checked before any of it is used
	// (verified.go). One restore in one job streams it into one pg_restore
	// transaction (decrypted with the identity), a segment at a time, each
	// checked before pg_restore sees it; for --jobs, --create-roles or the
	// directory format it is copied into a private folder first, checked
	// as it is copied. An encrypted file here is hashed whole before
	// anything else: a changed ciphertext is refused before a connection
	// is made.
	var archive string
	var stream *storedStream
	a := rec.Archive
	switch {
	case a.Encryption != nil && o.Identities == nil:
		return nil, &IdentityNeededError{ID: rec.ID, Recipients: a.Encryption.Recipients}
	case hashWholeFirst(rec):
		if _, err := HashStored(ctx, rec); err != nil {
			return nil, err
		}
	}
	switch {
	case o.Jobs <= 1 && !o.CreateRoles && a.Format != verify.FormatDirectory:
		if stream, err = openStream(ctx, rec, o.Identities); err != nil {
			return nil, refusedBefore(err)
		}
		defer stream.Close()
		archive = a.Path
	default:
		if archive, err = archiveFile(ctx, rec, scratch.Dir, o.Identities); err != nil {
			return nil, refusedBefore(err) // DigestMismatchError or MissingError: evidence, exit 3
		}
	}
	target, err := Connect(ctx, o.Target, o.AllowPooled, o.Redactor)
	var pooled *PooledError
	if errors.As(err, &pooled) {
		pooled.Tool = "pg_restore"
	}
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
	var toc *verify.TOC
	if stream != nil {
		toc, err = verify.ReadTOCFrom(ctx, pgRestore, stream.head, a.Path)
	} else {
		toc, err = verify.ReadTOC(ctx, pgRestore, archive)
	}
	if err != nil {
		return nil, err
	}
	plan := &RestorePlan{Record: rec, Target: target, Entries: toc.Entries, Total: len(toc.Entries)}
	args := []string{"--verbose", "--exit-on-error", "--no-password", "--dbname=" + target.ChildConnInfo()}
	exists, conn, err := targetHas(ctx, target, o.Redactor)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	missing, err := missingRoles(ctx, conn, verify.FactsOf(toc).Roles)
	if err != nil {
		return nil, err
	}
	useList := len(o.Tables) > 0
	if len(o.Tables) > 0 {
		if plan.Entries, plan.Skipped, err = verify.SelectTables(toc, o.Tables, exists); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(plan.Entries, func(e verify.Entry) bool { return e.HasData() }) {
			plan.Notes = append(plan.Notes, "the archive holds no rows for "+strings.Join(o.Tables, ", ")+": only definitions are restored")
		}
	}
	// Partitions' indexes and constraints are dropped with their parent's,
	// not alone (verify.WithoutDrops): refused before anything changes when
	// that cannot be done.
	var cleanDrops map[int]bool // entries whose drop statement --clean leaves to their parent's
	if o.Clean {
		if cleanDrops = verify.AttachedIndexes(plan.Entries); len(cleanDrops) == 0 {
			cleanDrops = nil
		} else if o.Jobs > 1 && a.Format != verify.FormatDirectory {
			return nil, &CleanJobsError{Partitions: len(cleanDrops)}
		}
	}
	switch {
	case o.CreateRoles && len(missing) > 0:
		plan.CreatedRoles = missing
		grants, err := schemaGrants(ctx, conn, plan.Entries, missing)
		if err != nil {
			return nil, err
		}
		if !o.DryRun {
			if err := createRoles(ctx, conn, missing, target.User); err != nil {
				return nil, err
			}
			for schema, roles := range grants {
				q := "GRANT CREATE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + joinIdents(roles)
				if _, err := conn.Exec(ctx, q); err != nil {
					return nil, fmt.Errorf("give the created roles CREATE on schema %q: %w", schema, err)
				}
			}
		}
		for _, schema := range slices.Sorted(maps.Keys(grants)) {
			plan.Notes = append(plan.Notes, fmt.Sprintf("CREATE on schema %s for %s, which own objects there (handing them over needs it)",
				schema, strings.Join(grants[schema], ", ")))
		}
		missing = nil
	case o.NoACL && len(missing) > 0:
		// Without its grants, a policy for a role the target lacks is
		// all that would still name one: leave it out, and say so.
		var keep []verify.Entry
		for _, e := range plan.Entries {
			if who := policyRoles(e, missing); len(who) > 0 {
				plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s: names role %s, which the target lacks", e.Describe(), strings.Join(who, ", ")))
				continue
			}
			keep = append(keep, e)
		}
		useList = useList || len(keep) < len(plan.Entries)
		plan.Entries = keep
	}
	if o.NoACL {
		args = append(args, "--no-privileges")
	}
	if useList {
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
		switch {
		case cleanDrops == nil:
		case a.Format == verify.FormatDirectory:
			if archive, err = foldedWithoutDrops(archive, scratch.Dir, cleanDrops); err != nil {
				return nil, err
			}
		case stream == nil && !o.DryRun:
			if stream, err = openStream(ctx, rec, o.Identities); err != nil {
				return nil, err
			}
			defer stream.Close()
		}
	}
	if o.Jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(o.Jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	if stream == nil {
		args = append(args, archive)
	}
	shown := args
	if o.DryRun && (useList || archive != rec.Archive.Path) { // the list, a download: files that go with this run
		shown = slices.Clone(args)
		for i, a := range shown {
			if strings.HasPrefix(a, "--use-list=") {
				shown[i] = "--use-list=LIST"
			}
		}
		if stream == nil {
			shown[len(shown)-1] = rec.Archive.Path
		}
	}
	plan.Command = o.Redactor.String(commandLine(pgRestore, shown))
	if stream != nil {
		plan.Command += " < " + rec.Archive.Path
	}
	if o.DryRun {
		return plan, nil
	}
	if o.Starting != nil {
		o.Starting(target)
	}
	if o.Log != nil {
		o.Log(plan.Command)
	}
	if stream != nil {
		rctx, stop := context.WithCancel(ctx)
		stream.mismatch = stop // pg_restore stops before it reads the end: its transaction rolls back
		var input io.Reader = stream
		if cleanDrops != nil {
			input, err = verify.WithoutDrops(stream, cleanDrops)
		}
		if err == nil {
			err = verify.RunRestoreFrom(rctx, pgRestore, args, target.ChildEnv(), input, o.Log)
		}
		stop()
		if err != nil && ctx.Err() == nil {
			if rerr := stream.rest(); errors.Is(rerr, verify.ErrDigestMismatch) {
				err = rerr
			}
		}
		var mismatch *verify.DigestMismatchError
		if errors.As(err, &mismatch) {
			return plan, &RefusedRestoreError{Err: err}
		}
	} else {
		err = verify.RunRestore(ctx, pgRestore, args, target.ChildEnv(), o.Log)
	}
	var re *verify.RestoreError
	switch {
	case errors.As(err, &re) && len(missing) > 0 && (strings.Contains(re.Message, "does not exist") && strings.Contains(re.Message, "role") ||
		strings.Contains(re.Message, "must be member of role") || strings.Contains(re.Message, "must be able to SET ROLE")):
		err = &MissingRolesError{Roles: missing, Err: err, Jobs: o.Jobs}
	case err != nil && ctx.Err() == nil && o.Jobs > 1:
		err = &PartlyRestoredError{Target: target.Display(), Err: err}
	}
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
		return plan, &InterruptedRestoreError{Target: target.Display(), State: state}
	}
	return plan, err
}

// RefusedRestoreError: a streamed archive did not hash to its record, and
// pg_restore was stopped before its end: its one transaction rolled back.
// Before: the archive was refused before pg_restore started.
type RefusedRestoreError struct {
	Err    error
	Before bool
}

func (e *RefusedRestoreError) Error() string {
	if e.Before {
		return e.Err.Error() + "\n    nothing of it reached pg_restore: the target is unchanged"
	}
	return e.Err.Error() + "\n    pg_restore was stopped before the archive's end: its transaction rolled back, the target is unchanged"
}

// refusedBefore says of an archive refused before pg_restore ran that the
// target is unchanged.
func refusedBefore(err error) error {
	if errors.Is(err, verify.ErrDigestMismatch) {
		return &RefusedRestoreError{Err: err, Before: true}
	}
	return err
}
func (e *RefusedRestoreError) Unwrap() error { return e.Err }

// MissingRolesError: the restore stopped on a role the target lacks; Roles
// are all the roles the archive names that the target does not have.
type MissingRolesError struct {
	Roles []string
	Err   error
	Jobs  int
}

func (e *MissingRolesError) Error() string {
	state := "nothing was restored (one transaction)"
	if e.Jobs > 1 {
		state = "the target holds what the jobs had finished"
	}
	return fmt.Sprintf("%v\n    the target lacks %d role(s) the archive names: %s; %s", e.Err, len(e.Roles), strings.Join(e.Roles, ", "), state)
}
func (e *MissingRolesError) Unwrap() error { return e.Err }

// PartlyRestoredError: a parallel restore failed; its jobs do not share a
// transaction, so the target holds what they had finished.
type PartlyRestoredError struct {
	Target string
	Err    error
}

func (e *PartlyRestoredError) Error() string {
	return fmt.Sprintf("%v\n    the target %s was left partly written: parallel jobs do not run in one transaction", e.Err, e.Target)
}
func (e *PartlyRestoredError) Unwrap() error { return e.Err }

// missingRoles returns those of roles the target does not have.
func missingRoles(ctx context.Context, conn *pgx.Conn, roles []string) ([]string, error) {
	if len(roles) == 0 {
		return nil, nil
	}
	rows, _ := conn.Query(ctx, `SELECT r FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) ORDER BY 1`, roles)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the target's roles: %w", err)
	}
	return out, nil
}

// createRoles creates roles NOLOGIN in the target and grants them to user,
// who can then hand objects to them.
func createRoles(ctx context.Context, conn *pgx.Conn, roles []string, user string) error {
	for _, r := range roles {
		id := pgx.Identifier{r}.Sanitize()
		if _, err := conn.Exec(ctx, "CREATE ROLE "+id+" NOLOGIN"); err != nil {
			return &CreateRolesError{Role: r, Err: err}
		}
		if _, err := conn.Exec(ctx, "GRANT "+id+" TO "+pgx.Identifier{user}.Sanitize()); err != nil {
			return &CreateRolesError{Role: r, Err: err}
		}
	}
	return nil
}

// CreateRolesError: the target's user may not create a role the archive
// names (it needs CREATEROLE).
type CreateRolesError struct {
	Role string
	Err  error
}

func (e *CreateRolesError) Error() string {
	return fmt.Sprintf("cannot create role %q in the target: %v", e.Role, e.Err)
}
func (e *CreateRolesError) Unwrap() error { return e.Err }

// schemaGrants returns, for each schema the target has already, the roles
// among created that own entries in it: to hand an object to a role, an
// ordinary user needs that role to have CREATE on its schema.
func schemaGrants(ctx context.Context, conn *pgx.Conn, entries []verify.Entry, created []string) (map[string][]string, error) {
	rows, _ := conn.Query(ctx, `SELECT nspname::text FROM pg_catalog.pg_namespace`)
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the target's schemas: %w", err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		if e.Schema == "" || !slices.Contains(created, e.Owner) || !slices.Contains(have, e.Schema) || slices.Contains(out[e.Schema], e.Owner) {
			continue
		}
		out[e.Schema] = append(out[e.Schema], e.Owner)
	}
	return out, nil
}

func joinIdents(names []string) string {
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(ids, ", ")
}

// policyRoles returns the roles among missing that a POLICY entry names.
func policyRoles(e verify.Entry, missing []string) []string {
	if e.Type != "POLICY" {
		return nil
	}
	facts, _ := verify.ScanSQL(strings.NewReader(e.Defn))
	var out []string
	for _, r := range facts.Roles {
		if slices.Contains(missing, r) {
			out = append(out, r)
		}
	}
	return out
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
