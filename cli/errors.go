package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
)

// Exit codes, as DESIGN §3 and every command's --help list them.
const (
	exitOK          = 0
	exitFailure     = 1 // connection, I/O, a tool missing…
	exitUsage       = 2 // bad flags or arguments
	exitProofFailed = 3 // hash mismatch, restore error, broken chain, audit gap
)

// errUsage marks errors in what the user typed; they exit with 2.
var errUsage = errors.New("usage error")

// errProofFailed marks a result that proved something is wrong (a digest
// that does not match, a restore that failed, a broken chain, a day without a
// proven backup); it exits with 3. Lower packages mark their own errors by
// implementing ProofFailure.
var errProofFailed = errors.New("proof failed")

// hinter is implemented by errors that know what the user should do next.
// Lower packages implement it on their own error types; cli prints it.
type hinter interface{ Hint() string }

// hintError adds a hint (and, through kind, an exit code) to an error.
type hintError struct {
	err  error
	hint string
	kind error // errUsage, errProofFailed or nil
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }
func (e *hintError) Is(target error) bool {
	return e.kind != nil && target == e.kind
}

// withHint wraps err with what to do next.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// usageErrorf reports a mistake in the command line, with a hint.
func usageErrorf(hint, format string, args ...any) error {
	return &hintError{err: fmt.Errorf(format, args...), hint: hint, kind: errUsage}
}

// proofErrorf reports evidence that something is wrong (exit 3).
func proofErrorf(hint, format string, args ...any) error {
	return &hintError{err: fmt.Errorf(format, args...), hint: hint, kind: errProofFailed}
}

// exitCode decides the process's exit code from an error, in one place.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, pipeline.ErrUsage):
		return exitUsage
	case errors.Is(err, errProofFailed), verify.ProofFailed(err):
		return exitProofFailed
	default:
		return exitFailure
	}
}

// printError writes an error and its hint the way every command does:
//
//	pgattest: error: what went wrong
//	pgattest: hint: what to do next
func printError(w io.Writer, err error) {
	msg := strings.TrimRight(err.Error(), "\n")
	first, rest, _ := strings.Cut(msg, "\n")
	fmt.Fprintf(w, "pgattest: error: %s\n", first)
	if rest != "" {
		fmt.Fprintln(w, rest)
	}
	if hint := hintOf(err); hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(w, "pgattest: hint: %s\n", line)
		}
	}
}

// flagHint is the hint of an error whose remedy is one of pgattest's
// flags: the packages below say what went wrong (and give advice that
// names no flag), the command line what to type next. "" when the error
// has no such hint.
func flagHint(err error) string {
	var missing *pipeline.MissingRolesError
	var create *pipeline.CreateRolesError
	var partly *pipeline.PartlyRestoredError
	var notRecorded *pipeline.NotRecordedError
	var refused *pipeline.CatalogRefusedError
	var ce *catalog.Error
	var dir *pipeline.DirError
	var dump *pipeline.DumpError
	var pooled *pipeline.PooledError
	var tools *pipeline.ToolsError
	var newer *verify.NewerArchiveError
	var ext *verify.MissingExtensionError
	var taken *pipeline.NameTakenError
	var same *pipeline.SameSourceError
	var pruned *pipeline.PrunedError
	var interrupted *pipeline.InterruptedRestoreError
	var noKey *pipeline.IdentityNeededError
	var noMatch *seal.NoMatchError
	var notRun *pipeline.ProofNotRunError
	var short *verify.ShortageError
	var cleanJobs *pipeline.CleanJobsError
	switch {
	case errors.As(err, &cleanJobs):
		return "drop --jobs: with one job --clean drops and restores in one transaction; or restore with --jobs into a new, empty database without --clean. Nothing was changed"
	case errors.As(err, &notRun) && errors.As(err, &short):
		return short.Hint() + "\nthe backup is recorded unverified: once that is fixed, prove it with 'pgattest verify " + notRun.ID + "'"
	case errors.As(err, &noKey):
		return "give --identity FILE (or PGATTEST_IDENTITY): the age identity, or SSH private key, of one of its recipients: " + strings.Join(noKey.Recipients, ", ")
	case errors.As(err, &noMatch):
		return "give --identity the key of one of the recipients 'pgattest show ID' lists; nothing was restored or changed"
	case errors.As(err, &notRecorded): // what to fix, then how to record what was kept
		var lines []string
		if h := flagHint(notRecorded.Err); h != "" {
			lines = append(lines, h)
		} else if h := lowerHint(notRecorded.Err); h != "" {
			lines = append(lines, h)
		}
		if notRecorded.Manifest != "" {
			lines = append(lines, "the archive and its manifest were set aside, not lost; once the catalog is fixed, record them with: pgattest catalog import "+notRecorded.Manifest)
		}
		return strings.Join(lines, "\n")
	case errors.As(err, &refused):
		if h := flagHint(refused.Err); h != "" {
			return h
		}
		return "the file was left untouched and nothing was done; 'pgattest catalog verify' shows what is wrong"
	case errors.As(err, &ce):
		switch {
		case errors.Is(ce.Err, catalog.ErrBusy):
			return "wait for the other run to finish (PGATTEST_CATALOG_WAIT sets how long to wait), or point this one at another file with --catalog"
		case errors.Is(ce.Err, catalog.ErrDamaged):
			return "the file was left untouched: it is damaged, so nothing is recorded in it; restore it from a copy, or use another file with --catalog"
		case errors.Is(ce.Err, catalog.ErrNotCatalog):
			return "the file was left untouched; restore it from a copy, or use another file with --catalog"
		case errors.Is(ce.Err, syscall.ENOSPC), errors.Is(ce.Err, syscall.EDQUOT):
			return "the file system that holds the catalog is full: free space there, or use a catalog elsewhere with --catalog"
		case errors.Is(ce.Err, catalog.ErrReadOnly):
			return "list, show, audit and restore only read the catalog; to record, make the file writable or point --catalog (PGATTEST_CATALOG) at a writable copy"
		case errors.Is(ce.Err, catalog.ErrNoCatalog):
			return "run 'pgattest backup' first, or point to a catalog with --catalog PATH (or PGATTEST_CATALOG)"
		case errors.Is(ce.Err, catalog.ErrNewerSchema):
			return "use the newer pgattest that wrote it"
		}
		return "check the path and its permissions, or pass --catalog PATH"
	case errors.As(err, &dir):
		switch {
		case dir.Full():
			return "the file system is full: free space there or choose another folder with --dir; the partial archive was removed, nothing was recorded"
		case dir.ReadOnly():
			return "the file system is mounted read-only: choose another folder with --dir (or PGATTEST_DIR)"
		}
		return "choose a folder you can write to with --dir (or PGATTEST_DIR); pgattest creates it 0700"
	case errors.As(err, &dump):
		return "no archive and no record were kept; run again with --verbose to see pg_dump's output"
	case errors.As(err, &pooled):
		return pooled.Hint() + ", or pass --allow-pooled"
	case errors.As(err, &tools) && tools.Proof:
		return tools.Hint() + " or pass --pg-bin DIR; or use --verify read to only read the archive through (recorded unverified)"
	case errors.As(err, &tools):
		return tools.Hint() + " or pass --pg-bin DIR"
	case errors.As(err, &newer):
		return newer.Hint() + " and point --pg-bin at its bin folder"
	case errors.As(err, &ext):
		return fmt.Sprintf("install the extension into the Postgres that proves backups (contrib extensions come with the postgresql package, others with their own), "+
			"or prove the rest without it: --verify-skip-extension %s (the proof records what it left out)", ext.Names[0])
	case errors.As(err, &taken):
		return "give this source a name of its own with --name, or pass --force-name if it is the same database moved elsewhere"
	case errors.As(err, &same):
		return "restore into a new database (createdb, then --target its URL), or pass --force if overwriting the source is what you mean"
	case errors.As(err, &pruned):
		return "pick another backup: 'pgattest list --name " + pruned.Record.Name + " --status verified'"
	case errors.As(err, &interrupted):
		return "run the restore again, with --clean to replace what is there"
	case errors.As(err, &partly):
		return "fix the cause, then restore again with --clean (it drops what is there first), or into a new database"
	case errors.As(err, &missing):
		return "pass --create-roles to create them NOLOGIN in the target (its user needs CREATEROLE), or --no-owner --no-acl to restore without owners and grants"
	case errors.As(err, &create):
		return "--create-roles needs a target user with CREATEROLE; or create the roles yourself, or restore with --no-owner --no-acl"
	}
	return ""
}

// jsonError is what a command prints on stdout with --json when it fails
// without a result of its own: one JSON document, as always.
type jsonError struct {
	Error    string `json:"error"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

// hintOf returns the hint an error carries, or "".
func hintOf(err error) string {
	var own *hintError // a command's own words come first
	if errors.As(err, &own) && own.hint != "" {
		return own.hint
	}
	if h := flagHint(err); h != "" {
		return h
	}
	return lowerHint(err)
}

// lowerHint is the hint the packages below give, naming no flag.
// The first non-empty one counts: an error that may have a hint (a
// store's failure) and has none for this cause does not hide the hint of
// the error it wraps (a digest that does not match).
func lowerHint(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if h, ok := e.(hinter); ok && h.Hint() != "" {
			return h.Hint()
		}
	}
	return ""
}

// warnPasswordInArgv prints one line when a connection string given on
// the command line (not through its environment variable) holds a
// password: every user of the machine can read a command line (ps,
// /proc/PID/cmdline).
func warnPasswordInArgv(e *env, flag, value, envVar string) {
	if value == "" || value == os.Getenv(envVar) {
		return
	}
	ci, err := pipeline.ParseConnString(value)
	if err != nil {
		return
	}
	if _, ok := ci.Password(); ok {
		fmt.Fprintf(e.stderr, "pgattest: warning: --%s holds a password, which other users of this machine can read in the command line; put the string in %s, or the password in PGPASSWORD or ~/.pgpass\n", flag, envVar)
	}
}
