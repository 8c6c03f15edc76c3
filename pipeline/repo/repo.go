// Package repo is where archives and manifests are kept: a folder on this
// machine, or a bucket of an S3-compatible object store. Both keep the same
// layout (PREFIX/NAME/NAME-STAMP.dump and its .manifest.json) and behave
// alike, so the pipeline writes to either without knowing which:
//
//   - Create starts an object as a stream; nothing is visible under its key
//     until Commit (a rename out of a partial file, or the completion of a
//     multipart upload), and Abort leaves nothing. A run killed mid-write
//     leaves a partial that AbortStale removes later.
//   - Open streams an object back; Stat, List and Delete do what they say;
//     an object under retention (S3 Object Lock) is not deleted before its
//     date (ErrLocked).
//
// Credentials never reach a key, a URL or an error of this package: an S3
// repository takes them from the AWS variables and files, and its URL is
// only s3://BUCKET/PREFIX.
package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Repo is a repository of archives and manifests.
type Repo interface {
	// URL is the repository as a user writes it: file:///abs/path or
	// s3://bucket/prefix, without credentials.
	URL() string
	// Create begins the object at key, written as a stream; it is not
	// visible under key before Commit.
	Create(ctx context.Context, key string, o CreateOptions) (Upload, error)
	// Open streams the object at key: the version named (where the store
	// keeps versions; "" is the current one), never another. A delete
	// marker or a newer version over it hides nothing.
	Open(ctx context.Context, key, version string) (io.ReadCloser, error)
	// Stat describes the object at key, the version named as Open does
	// (ErrNotFound when there is none).
	Stat(ctx context.Context, key, version string) (Object, error)
	// Delete removes the object at key, the version named ("" the
	// current one): a *LockedError while it is under retention, nothing
	// when it is already gone.
	Delete(ctx context.Context, key, version string) error
	// List returns the objects whose keys start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]Object, error)
	// AbortStale removes what runs that are gone left unfinished under
	// prefix (partial files, multipart uploads), and returns how many.
	AbortStale(ctx context.Context, prefix string) (int, error)
	// Versions lists what the store keeps under key, newest first:
	// versions and delete markers (none where it keeps no versions).
	Versions(ctx context.Context, key string) ([]Version, error)
	// Check asks, before any dump, whether the repository can be written
	// to and, when lock is set, whether it can keep objects under
	// retention.
	Check(ctx context.Context, lock bool) error
	// Move puts the object at from under to (never over one there:
	// ErrExists) and removes it from from. An object under retention is
	// not moved (*LockedError).
	Move(ctx context.Context, from, to string) error
	// HoldKey marks key as being completed by this process (an archive
	// whose manifest is not stored yet) until release: release(true)
	// forgets the mark (the key was dealt with); release(false) lets it go
	// as a killed process would, for KeyState of the next run to find.
	HoldKey(key string) (release func(done bool), err error)
	// KeyState says whether a process of this machine is completing key
	// now (live), or was and was killed (dead); a dead mark is the
	// caller's until done (forget: the key was dealt with).
	KeyState(key string) (live, dead bool, done func(forget bool))
	// Hidden lists the objects under prefix that a delete marker hides,
	// each as its newest version under the marker (none where the store
	// keeps no versions): deleted by a key's owner, or hidden by a writer
	// of the bucket; their bytes are there.
	Hidden(ctx context.Context, prefix string) ([]Object, error)
}

// Version is one version of an object, or a delete marker.
type Version struct {
	ID           string
	ModTime      time.Time
	Size         int64
	DeleteMarker bool
	Latest       bool // the key's current version (or marker)
}

// CreateOptions for Create.
type CreateOptions struct {
	// RetainUntil, when set, puts the object under retention until then
	// (S3 Object Lock, in LockMode); a local repository refuses it.
	RetainUntil time.Time
	LockMode    string // "GOVERNANCE" (default) or "COMPLIANCE"
	// Metadata known when the object is started (not its digest).
	Metadata map[string]string
	// Exclusive claims the key as the object is started: ErrExists, and
	// nothing left behind, when an object is there already or another
	// writer started on the key first, so that runs racing for one key
	// (two backups of a name in the same second) never both write it.
	Exclusive bool
}

// Upload is an object being written.
type Upload interface {
	io.Writer
	// Commit makes the object visible under its key. An object already
	// there is ErrExists (the caller picks another key); the written bytes
	// are then discarded.
	Commit(ctx context.Context) (Object, error)
	// Abort discards what was written; after Commit it does nothing.
	Abort(ctx context.Context) error
}

// OnDisk is an upload whose bytes are a file of this machine as they are
// written (a folder's partial file): Path names it, for this process's own
// reader (a backup's proof from the file) until Commit or Abort.
type OnDisk interface {
	Path() string
	// Reopen opens the file written, read-only: the same file whatever
	// was done to its name since.
	Reopen() (*os.File, error)
}

// Adopter is a repository on this machine's file system, which takes a
// folder of finished files under a key by a rename rather than a copy:
// Near gives a folder on the same file system as the key prefix's, where
// such a folder is to be made.
type Adopter interface {
	Near(prefix string) (string, error)
	// Adopt renames dir to key (a folder), never over one there
	// (ErrExists).
	Adopt(ctx context.Context, dir, key string) error
}

// Object is what a repository says of one object.
type Object struct {
	Key         string
	Size        int64
	ModTime     time.Time
	VersionID   string    // S3, where versioning is on
	RetainUntil time.Time // S3 Object Lock retention, zero when none
	LockMode    string
}

// Errors to test for with errors.Is.
var (
	ErrNotFound = errors.New("no such object")
	ErrExists   = errors.New("an object is there already")
)

// LockedError: the object is under retention until Until.
type LockedError struct {
	Key   string
	Until time.Time
	Mode  string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is locked until %s (%s retention)", e.Key, e.Until.UTC().Format(time.DateOnly), strings.ToLower(e.Mode))
}

// Parse reads a repository's location: file:///abs/path (or a plain
// folder path), or s3://BUCKET[/PREFIX]. It opens nothing.
func Parse(s string) (Location, error) {
	switch {
	case strings.HasPrefix(s, "s3://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return Location{}, fmt.Errorf("%q is not an S3 repository (want s3://BUCKET/PREFIX, without credentials)", redactURL(s))
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: strings.Trim(path.Clean("/"+u.Path), "/")}, nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("%q is not a folder repository (want file:///absolute/path)", s)
		}
		return Location{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case strings.Contains(s, "://"):
		return Location{}, fmt.Errorf("%q: pgattest keeps archives in a folder (file://) or an S3 bucket (s3://)", redactURL(s))
	case s == "":
		return Location{}, errors.New("no repository given")
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Location{}, err
	}
	return Location{Scheme: "file", Path: abs}, nil
}

// Location is where a repository is, without credentials.
type Location struct {
	Scheme string // "file" or "s3"
	Path   string // file: the folder
	Bucket string // s3
	Prefix string // s3: keys start with Prefix/ ("" for the bucket's root)
}

// URL renders the location as Parse reads it.
func (l Location) URL() string {
	if l.Scheme == "s3" {
		if l.Prefix == "" {
			return "s3://" + l.Bucket
		}
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return (&url.URL{Scheme: "file", Path: l.Path}).String()
}

// redactURL drops a user and password from a URL-like string for an error.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	if i := strings.Index(s, "://"); i >= 0 {
		if at := strings.LastIndexByte(s[i+3:], '@'); at >= 0 {
			return s[:i+3] + s[i+3+at+1:]
		}
	}
	return s
}

// cleanKey checks a key: relative, slash-separated, no "..", no empty
// part.
func cleanKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || path.Clean(key) != key {
		return fmt.Errorf("bad object key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == ".." || part == "." {
			return fmt.Errorf("bad object key %q", key)
		}
	}
	return nil
}
