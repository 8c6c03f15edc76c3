package verify

import (
	"errors"
	"fmt"
	"strings"
)

// ProofFailed reports whether err is evidence that something is wrong (an
// archive that does not restore or no longer matches its digest, a catalog
// damaged or changed behind pgattest's back), as opposed to something that
// broke: an error in its chain says so with a ProofFailed() bool method.
// The CLI exits 3 on it.
func ProofFailed(err error) bool {
	var pf interface{ ProofFailed() bool }
	return errors.As(err, &pf) && pf.ProofFailed()
}

// Sentinels for errors.Is; the typed errors below carry the details.
var (
	ErrDigestMismatch = errors.New("archive digest does not match")
	ErrIncomplete     = errors.New("archive is incomplete")
	ErrRestoreFailed  = errors.New("restore failed")
	ErrMissing        = errors.New("archive is missing")
	ErrUnreadable     = errors.New("archive cannot be read")
)

// DigestMismatchError: the archive on disk is not the one that was recorded.
type DigestMismatchError struct {
	Path      string
	Want, Got string
	// Segment, when set, is the first piece (1-based, of Segments) that
	// did not hash to the record, at Offset: read back from storage, it
	// was not used.
	Segment, Segments int
	Offset            int64
}

func (e *DigestMismatchError) Error() string {
	if e.Segment > 0 {
		return fmt.Sprintf("archive digest does not match: %s\n    segment %d of %d (from byte %d) is not the recorded one: %s\n    none of it was used", e.Path, e.Segment, e.Segments, e.Offset, e.Got)
	}
	return fmt.Sprintf("archive digest does not match: %s\n    recorded BLAKE3 %s\n    file now       %s", e.Path, e.Want, e.Got)
}
func (e *DigestMismatchError) Is(t error) bool   { return t == ErrDigestMismatch }
func (e *DigestMismatchError) ProofFailed() bool { return true }
func (e *DigestMismatchError) Hint() string {
	return "the archive changed after it was recorded (bit rot, tampering, or an overwrite); restore from another backup"
}

// MissingError: the archive is not where the record says.
type MissingError struct {
	Path string
	Err  error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("archive is missing: %s (%v)", e.Path, e.Err)
}
func (e *MissingError) Unwrap() error     { return e.Err }
func (e *MissingError) Is(t error) bool   { return t == ErrMissing }
func (e *MissingError) ProofFailed() bool { return true }

// NotArchiveError: the recorded archive path holds something else than the
// file or folder pgattest wrote there: a symbolic link, a folder where a
// file was, a device. pgattest does not follow links: it proves the archive
// it wrote, where it wrote it.
type NotArchiveError struct {
	Path  string
	Want  string // "a custom-format file"
	Found string // "a symbolic link"
}

func (e *NotArchiveError) Error() string {
	return fmt.Sprintf("archive %s: want %s, found %s", e.Path, e.Want, e.Found)
}
func (e *NotArchiveError) Is(t error) bool   { return t == ErrMissing }
func (e *NotArchiveError) ProofFailed() bool { return true }
func (e *NotArchiveError) Hint() string {
	return "pgattest reads an archive only as it wrote it, at its recorded path, and follows no links: copy the archive itself back there, or restore from another backup"
}

// IncompleteError: the archive ends before all of its data (a truncated file,
// a folder with a missing data file).
type IncompleteError struct {
	Detail string // what pg_restore said, or which entries were never read
}

func (e *IncompleteError) Error() string     { return "archive is incomplete: " + e.Detail }
func (e *IncompleteError) Is(t error) bool   { return t == ErrIncomplete }
func (e *IncompleteError) ProofFailed() bool { return true }
func (e *IncompleteError) Hint() string {
	return "the file was cut short (a copy or upload that did not finish, a full disk); restore from another backup"
}

// RestoreError: pg_restore stopped at a TOC entry.
type RestoreError struct {
	Entry   string // the TOC entry line, e.g. "3451; 0 16448 TABLE DATA shop order_items shop_owner"
	Message string // Postgres' message, as pg_restore quoted it
	Command string // the SQL that failed, first line
	Exit    string // how pg_restore ended
	// Functions are those the server's CONTEXT named, innermost first:
	// "public.f(integer)" (PL/pgSQL), "f" (SQL).
	Functions []string
	// Table is the table whose data pg_restore was processing last (its
	// name as pg_restore printed it).
	Table string
}

func (e *RestoreError) Error() string {
	var b strings.Builder
	b.WriteString("restore failed")
	if e.Entry != "" {
		fmt.Fprintf(&b, " at TOC entry %s", e.Entry)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	} else if e.Exit != "" {
		fmt.Fprintf(&b, ": pg_restore %s", e.Exit)
	}
	if e.Command != "" {
		fmt.Fprintf(&b, "\n    command was: %s", e.Command)
	}
	return b.String()
}
func (e *RestoreError) Is(t error) bool   { return t == ErrRestoreFailed }
func (e *RestoreError) ProofFailed() bool { return true }

// UnreadableError: pg_restore cannot even list the archive.
type UnreadableError struct {
	Path   string
	Detail string
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("archive cannot be read: %s: %s", e.Path, e.Detail)
}
func (e *UnreadableError) Is(t error) bool   { return t == ErrUnreadable }
func (e *UnreadableError) ProofFailed() bool { return true }

// NewerArchiveError: the archive was written by a pg_dump newer than the
// pg_restore at hand can read ("unsupported version (1.16) in file header").
type NewerArchiveError struct {
	Path          string
	FormatVersion string // the archive's format version, "1.16"
	Tool          string // the pg_restore that could not read it, "15.18"
}

func (e *NewerArchiveError) Error() string {
	return fmt.Sprintf("archive format %s of %s is newer than pg_restore %s reads: it was written by a newer pg_dump",
		e.FormatVersion, e.Path, e.Tool)
}
func (e *NewerArchiveError) Is(t error) bool   { return t == ErrUnreadable }
func (e *NewerArchiveError) ProofFailed() bool { return true }
func (e *NewerArchiveError) Hint() string {
	return "install the postgresql-client package of the pg_dump that wrote it (apt.postgresql.org has every version)"
}

// ErrMissingExtension is reported by a *MissingExtensionError.
var ErrMissingExtension = errors.New("extension missing")

// MissingExtensionError: the archive creates extensions that the Postgres
// proving it does not have, so the restore could not succeed.
type MissingExtensionError struct {
	Names  []string // as the archive names them, sorted
	Server string   // version of the proving Postgres, "15.18"
}

func (e *MissingExtensionError) Error() string {
	s := "s"
	if len(e.Names) == 1 {
		s = ""
	}
	return fmt.Sprintf("the archive needs extension%s %s, which the proving Postgres %s does not have",
		s, strings.Join(e.Names, ", "), e.Server)
}
func (e *MissingExtensionError) Is(t error) bool   { return t == ErrMissingExtension }
func (e *MissingExtensionError) ProofFailed() bool { return true }
func (e *MissingExtensionError) Hint() string {
	return fmt.Sprintf("install the extension into the Postgres that proves backups (contrib extensions come with the postgresql package, others with their own, e.g. postgresql-%s-postgis-3), "+
		"or prove the rest without it (the proof records what it left out)",
		major(e.Server))
}

func major(version string) string {
	m, _, _ := strings.Cut(version, ".")
	return m
}
