package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pgattest/pgattest/pipeline"
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

// proofFailure is implemented by errors of lower packages that mean "the
// evidence says no" rather than "something broke".
type proofFailure interface{ ProofFailed() bool }

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
	var pf proofFailure
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, pipeline.ErrUsage):
		return exitUsage
	case errors.Is(err, errProofFailed), errors.As(err, &pf) && pf.ProofFailed():
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
// flags: the packages below say what went wrong, the command line what to
// type next.
func flagHint(err error) string {
	var missing *pipeline.MissingRolesError
	var create *pipeline.CreateRolesError
	var partly *pipeline.PartlyRestoredError
	switch {
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
	if h := flagHint(err); h != "" {
		return h
	}
	var h hinter
	if errors.As(err, &h) {
		return h.Hint()
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
