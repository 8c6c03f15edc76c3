package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"github.com/pgattest/pgattest/catalog"
	"strings"
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

// Full reports a full file system (or quota).
func (e *DirError) Full() bool {
	return errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT)
}

// ReadOnly reports a read-only file system.
func (e *DirError) ReadOnly() bool { return errors.Is(e.Err, syscall.EROFS) }

// Hint says what to fix (the command line names the flag).
func (e *DirError) Hint() string {
	switch {
	case e.Full():
		return "the file system is full: free space there or write the archives elsewhere; the partial archive was removed, nothing was recorded"
	case e.ReadOnly():
		return "the file system is mounted read-only: write the archives elsewhere"
	}
	return "write the archives to a folder you can write to; pgattest creates it 0700"
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
	return "no archive and no record were kept; pg_dump's own output tells more"
}

// NotRecordedError means the catalog did not take the record: the archive
// and its manifest are kept in the name's unrecorded folder (never under
// their final names, which promise a record), for catalog import.
type NotRecordedError struct {
	Archive  string // where the archive is now
	Manifest string // its manifest, beside it ("" when it could not be written)
	Err      error  // why the catalog did not take it
	KeepErr  error  // why the archive could not be moved aside, if it could not
}

func (e *NotRecordedError) Error() string {
	if e.KeepErr != nil {
		return fmt.Sprintf("archive %s was written but not recorded: %v (and it could not be set aside: %v)", e.Archive, e.Err, e.KeepErr)
	}
	return fmt.Sprintf("archive %s was written but not recorded: %v", e.Archive, e.Err)
}
func (e *NotRecordedError) Unwrap() error { return e.Err }

// Hint says what to fix, then how to record the kept run.
func (e *NotRecordedError) Hint() string {
	var lines []string
	var h interface{ Hint() string }
	if errors.As(e.Err, &h) && h.Hint() != "" {
		lines = append(lines, h.Hint())
	}
	if e.Manifest != "" {
		lines = append(lines, "the archive and its manifest were set aside, not lost; once the catalog is fixed, record them with: pgattest catalog import "+e.Manifest)
	}
	return strings.Join(lines, "\n")
}

// PrunedError: the backup was pruned, its archive is gone; the record
// stays (with what the catalog kept of it).
type PrunedError struct {
	Record *catalog.Record
}

func (e *PrunedError) Error() string {
	when := ""
	if e.Record.PrunedAt != nil {
		when = " on " + e.Record.PrunedAt.Format("2006-01-02")
	}
	return fmt.Sprintf("backup %s was pruned%s: its archive is gone", e.Record.ID, when)
}

// Hint says what is left.
func (e *PrunedError) Hint() string {
	return "pick another backup of " + e.Record.Name + "; the catalog still lists what this one held"
}

// ProofNotRunError means the archive was made and recorded as unverified
// because the proof itself could not run (no server binaries, a cluster
// that did not start): the archive may be fine, nobody knows yet.
type ProofNotRunError struct {
	ID  string // the backup's, as recorded
	Err error
}

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
	return "fix the cause, then prove the archive with 'pgattest verify " + cmp.Or(e.ID, "ID") + "'"
}
