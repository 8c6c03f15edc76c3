package pipeline

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrUsage marks errors in what the user asked for (a bad name, a
// connection string that does not parse); the CLI exits 2 on them.
var ErrUsage = errors.New("usage error")

// UsageError is a mistake in the options, with what to do instead.
type UsageError struct {
	Err  error
	hint string
}

func (e *UsageError) Error() string        { return e.Err.Error() }
func (e *UsageError) Unwrap() error        { return e.Err }
func (e *UsageError) Hint() string         { return e.hint }
func (e *UsageError) Is(target error) bool { return target == ErrUsage }

// DirError is a destination folder that cannot be used.
type DirError struct {
	Dir string
	Err error
}

func (e *DirError) Error() string { return fmt.Sprintf("cannot write to %s: %v", e.Dir, e.Err) }
func (e *DirError) Unwrap() error { return e.Err }

// Hint says how to pick another folder.
func (e *DirError) Hint() string {
	switch {
	case errors.Is(e.Err, syscall.ENOSPC), errors.Is(e.Err, syscall.EDQUOT):
		return "the file system is full: free space there or choose another folder with --dir; the partial archive was removed, nothing was recorded"
	case errors.Is(e.Err, syscall.EROFS):
		return "the file system is mounted read-only: choose another folder with --dir (or PGATTEST_DIR)"
	}
	return "choose a folder you can write to with --dir (or PGATTEST_DIR); pgattest creates it 0700"
}

// DumpError is a pg_dump run that failed. Nothing was kept.
type DumpError struct {
	Err    error
	Detail string // pg_dump's own error line, when it printed one
}

func (e *DumpError) Error() string {
	if e.Detail != "" {
		return "pg_dump failed: " + e.Detail
	}
	return fmt.Sprintf("pg_dump failed: %v", e.Err)
}
func (e *DumpError) Unwrap() error { return e.Err }

// Hint says that nothing is lost and where to look.
func (e *DumpError) Hint() string {
	return "no archive and no record were kept; run again with --verbose to see pg_dump's output"
}

// NotRecordedError means the archive is in place but the catalog could not
// take its record: the archive and its manifest are kept.
type NotRecordedError struct {
	Archive string
	Err     error
}

func (e *NotRecordedError) Error() string {
	return fmt.Sprintf("archive %s was written but not recorded: %v", e.Archive, e.Err)
}
func (e *NotRecordedError) Unwrap() error { return e.Err }

// Hint points at the manifest, which holds the whole record.
func (e *NotRecordedError) Hint() string {
	var h interface{ Hint() string }
	if errors.As(e.Err, &h) && h.Hint() != "" {
		return h.Hint() + "\nthe manifest beside the archive holds the full record"
	}
	return "the manifest beside the archive holds the full record; fix the catalog and run the backup again"
}

// ProofNotRunError means the archive was made and recorded as unverified
// because the proof itself could not run (no server binaries, a cluster
// that did not start): the archive may be fine, nobody knows yet.
type ProofNotRunError struct{ Err error }

func (e *ProofNotRunError) Error() string {
	return fmt.Sprintf("backup recorded as unverified: the proof could not run: %v", e.Err)
}
func (e *ProofNotRunError) Unwrap() error { return e.Err }

// Hint says how to prove it later.
func (e *ProofNotRunError) Hint() string {
	var h interface{ Hint() string }
	if errors.As(e.Err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	return "fix the cause, then prove the archive with 'pgattest verify ID'"
}
