package catalog

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors a caller may test for with errors.Is.
var (
	// ErrBusy: another process holds the catalog longer than the timeout.
	ErrBusy = errors.New("catalog is in use by another pgattest")
	// ErrNotCatalog: the file exists but is not a pgattest catalog (empty,
	// truncated, another kind of file). It is never overwritten.
	ErrNotCatalog = errors.New("not a pgattest catalog")
	// ErrNoCatalog: a read-only open of a file that does not exist.
	ErrNoCatalog = errors.New("no catalog")
	// ErrReadOnly: the catalog (or the folder it would be made in) cannot
	// be written: a read-only mount, missing permissions.
	ErrReadOnly = errors.New("catalog cannot be written")
	// ErrNewerSchema: made by a newer pgattest.
	ErrNewerSchema = errors.New("catalog made by a newer pgattest")
	// ErrNotFound: no record with that ID, or no record matches a query.
	ErrNotFound = errors.New("no such backup")
	// ErrAmbiguous: a short ID matches more than one record.
	ErrAmbiguous = errors.New("ambiguous backup ID")
	// ErrDamagedRecord: a stored record is not valid JSON.
	ErrDamagedRecord = errors.New("damaged record")
	// ErrNoEntries: the record was made without its TOC entries.
	ErrNoEntries = errors.New("no TOC entries in the catalog")
	// ErrChainBroken: the event chain or a record does not match its hash.
	ErrChainBroken = errors.New("catalog chain is broken")
	// ErrDamaged: a catalog file whose pages are damaged or cut short. It
	// also matches ErrNotCatalog (it is not one pgattest can use), and it is
	// evidence (exit 3), as a broken chain is.
	ErrDamaged = errors.New("damaged catalog")
)

// Error is a failure to open or use the catalog file at Path.
type Error struct {
	Path   string
	Err    error
	Detail string
	PID    int // for ErrBusy: who holds the lock, when known
}

func (e *Error) Error() string {
	switch {
	case errors.Is(e.Err, ErrBusy) && e.PID > 0:
		return fmt.Sprintf("catalog is in use by another pgattest (pid %d): %s", e.PID, e.Path)
	case errors.Is(e.Err, ErrBusy):
		return fmt.Sprintf("catalog is in use by another pgattest: %s", e.Path)
	case e.Detail != "":
		return fmt.Sprintf("catalog %s: %v (%s)", e.Path, e.Err, e.Detail)
	}
	return fmt.Sprintf("catalog %s: %v", e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets a damaged catalog match ErrNotCatalog too.
func (e *Error) Is(target error) bool { return target == ErrNotCatalog && e.Err == ErrDamaged }

// ProofFailed: a damaged file is evidence that something went wrong with
// the catalog, as a broken chain is.
func (e *Error) ProofFailed() bool { return errors.Is(e.Err, ErrDamaged) }

// Hint says what to do next.
func (e *Error) Hint() string {
	switch {
	case errors.Is(e.Err, ErrBusy):
		return "wait for the other run to finish, or use another catalog file"
	case errors.Is(e.Err, ErrDamaged):
		return "the file was left untouched: it is damaged, so nothing is recorded in it; restore it from a copy, or use another catalog file"
	case errors.Is(e.Err, ErrNotCatalog):
		return "the file was left untouched; restore it from a copy, or use another catalog file"
	case errors.Is(e.Err, syscall.ENOSPC), errors.Is(e.Err, syscall.EDQUOT):
		return "the file system that holds the catalog is full: free space there, or use a catalog elsewhere"
	case errors.Is(e.Err, ErrReadOnly):
		return "list, show, audit and restore only read the catalog; to record, make the file writable or use a writable copy"
	case errors.Is(e.Err, ErrNoCatalog):
		return "no backup has been recorded there yet"
	case errors.Is(e.Err, ErrNewerSchema):
		return "use the newer pgattest that wrote it"
	}
	return "check the path and its permissions"
}
