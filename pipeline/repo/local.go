package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Local is a repository in a folder of this machine. An object being
// written is a partial file beside its key (".NAME.partial-RANDOM"), 0600,
// flock-ed by its writer; Commit renames it to the key without ever
// replacing a file there, and syncs the folder.
type Local struct {
	Root string // absolute
}

var (
	_ Repo    = (*Local)(nil)
	_ Adopter = (*Local)(nil)
)

// NewLocal opens (and makes, 0700) a folder repository.
func NewLocal(root string) (*Local, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Local{Root: root}, nil
}

// URL is file:///ROOT.
func (l *Local) URL() string { return Location{Scheme: "file", Path: l.Root}.URL() }

// path is key's file below Root. No folder between Root and the file may
// be a link: a writer of the folder who makes NAME/ (or its unrecorded
// folder) a link to elsewhere would have archives written, moved and
// deleted outside the repository. (A folder not made yet is made by the
// writer, 0700.)
func (l *Local) path(key string) (string, error) {
	if err := cleanKey(key); err != nil {
		return "", err
	}
	parts := strings.Split(key, "/")
	dir := l.Root
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s is not a folder (%s): the repository's folders are never links", dir, fi.Mode().Type())
		}
	}
	return filepath.Join(l.Root, filepath.FromSlash(key)), nil
}

const partialMark = ".partial-"

// Create begins a partial file beside key.
func (l *Local) Create(ctx context.Context, key string, o CreateOptions) (Upload, error) {
	if !o.RetainUntil.IsZero() {
		return nil, errors.New("a folder repository cannot lock objects (retention needs S3 Object Lock)")
	}
	final, err := l.path(key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(final); o.Exclusive && err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, key)
	}
	// An exclusive writer's partial has one name per key: the writer that
	// makes it first holds the key (a killed one's stays until AbortStale
	// of the next run); any other writer's has a name of its own.
	suffix := "claim"
	if !o.Exclusive {
		var b [6]byte
		rand.Read(b[:])
		suffix = hex.EncodeToString(b[:])
	}
	partial := filepath.Join(dir, "."+filepath.Base(final)+partialMark+suffix)
	f, err := os.OpenFile(partial, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if o.Exclusive && errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s (another run is writing it)", ErrExists, key)
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		// Another run's AbortStale holds it this instant, to test it: it
		// goes, and this writer steps aside as from a taken key.
		f.Close()
		return nil, fmt.Errorf("%w: %s (another run was checking it)", ErrExists, key)
	}
	// Between the create and the lock, another run's AbortStale may have
	// taken the unlocked file for a dead one and removed it: then this
	// writer holds nothing, and says so rather than write into the void.
	if fi, err := os.Lstat(partial); err != nil || !sameInode(fi, f) {
		f.Close()
		return nil, fmt.Errorf("%w: %s (its partial file was taken away as it was made)", ErrExists, key)
	}
	return &localUpload{l: l, key: key, final: final, partial: partial, f: f}, nil
}

func sameInode(fi os.FileInfo, f *os.File) bool {
	mine, err := f.Stat()
	return err == nil && os.SameFile(fi, mine)
}

// Check makes the folder (0700) if it is not there: before any dump. A
// folder cannot lock its files, so retention (lock) is refused.
func (l *Local) Check(ctx context.Context, lock bool) error {
	if lock {
		return errors.New("a folder repository cannot lock objects (retention needs S3 Object Lock)")
	}
	return os.MkdirAll(l.Root, 0o700)
}

// Move renames the file at from to to, never over a file there
// (ErrExists).
func (l *Local) Move(ctx context.Context, from, to string) error {
	src, err := l.path(from)
	if err != nil {
		return err
	}
	dst, err := l.path(to)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	err = RenameNoReplace(src, dst)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, to)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, from)
	}
	if err != nil {
		return err
	}
	SyncDir(filepath.Dir(dst))
	SyncDir(filepath.Dir(src))
	return nil
}

// Near is the folder of prefix (made 0700): a folder made there is
// adopted by a rename (Adopter).
func (l *Local) Near(prefix string) (string, error) {
	p, err := l.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return "", err
	}
	return p, os.MkdirAll(p, 0o700)
}

// Adopt renames the folder dir to key, never over anything there
// (ErrExists).
func (l *Local) Adopt(ctx context.Context, dir, key string) error {
	dst, err := l.path(strings.TrimSuffix(key, "/"))
	if err != nil {
		return err
	}
	err = RenameNoReplace(dir, dst)
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("%w: %s", ErrExists, key)
	}
	if err != nil {
		return err
	}
	SyncDir(filepath.Dir(dst))
	return nil
}

// HoldKey marks key as being completed by this process until release; a
// killed process leaves the mark free for KeyState (keyMarks).
func (l *Local) HoldKey(key string) (release func(done bool), err error) { return l.marks().hold(key) }

// KeyState says whether a process of this machine is completing key now
// (live), or was and died (dead) (keyMarks).
func (l *Local) KeyState(key string) (live, dead bool, done func(forget bool)) {
	return l.marks().state(key)
}

func (l *Local) marks() keyMarks {
	return keyMarks{dir: MarksHome(), ns: l.URL()}
}

type localUpload struct {
	l              *Local
	key            string
	final, partial string
	f              *os.File
	n              int64
	done           bool
}

func (u *localUpload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	u.n += int64(n)
	return n, err
}

// Path is the partial file (OnDisk).
func (u *localUpload) Path() string { return u.partial }

// Reopen opens the file being written, read-only, through its descriptor
// (/proc/self/fd/N): this file, whatever became of its name (OnDisk).
func (u *localUpload) Reopen() (*os.File, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", u.f.Fd()))
	if err != nil { // no /proc: by name, checked to be this file
		if f, err = os.OpenFile(u.partial, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0); err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err != nil || !sameInode(fi, u.f) {
			f.Close()
			return nil, fmt.Errorf("%s was replaced while it was written", u.partial)
		}
	}
	return f, nil
}

// Commit gives the bytes written their key: the file this upload holds
// open is linked under the key (linkat of /proc/self/fd/N, which never
// replaces a file there), so the bytes committed are the bytes written,
// whatever a writer of the folder did to the partial's name meanwhile; the
// partial name goes once it is still this file's. Where /proc is not
// mounted, a rename that never replaces, checked to have moved this file.
func (u *localUpload) Commit(ctx context.Context) (Object, error) {
	if u.done {
		return Object{}, errors.New("upload already finished")
	}
	if err := u.f.Sync(); err != nil {
		return Object{}, err
	}
	fd := fmt.Sprintf("/proc/self/fd/%d", u.f.Fd())
	err := unix.Linkat(unix.AT_FDCWD, fd, unix.AT_FDCWD, u.final, unix.AT_SYMLINK_FOLLOW)
	switch {
	case errors.Is(err, unix.EEXIST):
		u.Abort(ctx) // the bytes go; the object there stays
		return Object{}, fmt.Errorf("%w: %s", ErrExists, u.key)
	case err == nil:
		if fi, err := os.Lstat(u.partial); err == nil && sameInode(fi, u.f) {
			os.Remove(u.partial)
		}
	case errors.Is(err, unix.ENOENT) && procMounted():
		u.Abort(ctx)
		return Object{}, fmt.Errorf("%s: its partial file was removed before it was complete (by another process): nothing stored", u.key)
	default: // no /proc: rename, then check what was renamed
		err := RenameNoReplace(u.partial, u.final)
		if errors.Is(err, fs.ErrExist) {
			u.Abort(ctx)
			return Object{}, fmt.Errorf("%w: %s", ErrExists, u.key)
		}
		if err != nil {
			return Object{}, err
		}
		if fi, err := os.Lstat(u.final); err != nil || !sameInode(fi, u.f) {
			u.done = true
			u.f.Close()
			return Object{}, fmt.Errorf("%s: its partial file was replaced before it was complete (by another process): what is under the key is not what was written", u.key)
		}
	}
	u.done = true
	fi, err := u.f.Stat()
	u.f.Close() // the lock goes with it
	if err != nil {
		return Object{}, err
	}
	SyncDir(filepath.Dir(u.final))
	return Object{Key: u.key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// Abort discards the partial file: its name goes only while it is still
// this upload's file.
func (u *localUpload) Abort(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	defer u.f.Close()
	fi, err := os.Lstat(u.partial)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || !sameInode(fi, u.f) {
		return err
	}
	return os.Remove(u.partial)
}

// Open opens the file at key (a regular file: no link is followed).
// A folder keeps no versions: version is ignored. Only a regular file is
// opened (no symbolic link, no FIFO that would block the reader).
func (l *Local) Open(ctx context.Context, key, version string) (_ io.ReadCloser, err error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file (%s)", key, fi.Mode().Type())
		}
		return nil, err
	}
	return f, nil
}

// Stat describes the file at key (a folder keeps no versions: version is
// ignored).
func (l *Local) Stat(ctx context.Context, key, version string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return Object{}, err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Object{}, err
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("%s is not a regular file (%s)", key, fi.Mode().Type())
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the file at key (a folder keeps no versions).
func (l *Local) Delete(ctx context.Context, key, version string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	SyncDir(filepath.Dir(p))
	return nil
}

// partialRE is the name of a partial file (Create): ".BASE.partial-claim"
// or ".BASE.partial-" and 12 hex digits. Nothing else is one, whatever it
// holds in its name.
var partialRE = regexp.MustCompile(`^\..+\.partial-(claim|[0-9a-f]{12})$`)

func isPartial(name string) bool { return partialRE.MatchString(name) }

// walk calls fn for the regular files whose keys start with prefix,
// walking from the prefix's folder (NAME/ for NAME/NAME-STAMP), not the
// whole root; links are not followed.
func (l *Local) walk(prefix string, fn func(key, p string, d fs.DirEntry) error) error {
	start := l.Root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		p, err := l.path(prefix[:i])
		if err != nil {
			return err
		}
		start = p
	}
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(l.Root, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		return fn(key, p, d)
	})
}

// List walks the folder for regular files under prefix, partial files left
// out. A backup of one name does not read every name's files.
func (l *Local) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := l.walk(prefix, func(key, p string, d fs.DirEntry) error {
		if isPartial(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// AbortStale removes partial files under prefix whose writer is gone: their
// flock can be taken. Only a regular file named as a partial is one (no
// link is followed, no FIFO opened).
func (l *Local) AbortStale(ctx context.Context, prefix string) (int, error) {
	n := 0
	err := l.walk(prefix, func(key, p string, d fs.DirEntry) error {
		if !isPartial(d.Name()) {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return nil // a live writer holds it
		}
		if fi, err := os.Lstat(p); err != nil || !sameInode(fi, f) {
			return nil // swapped meanwhile: not the file checked
		}
		if os.Remove(p) == nil {
			n++
		}
		return nil
	})
	return n, err
}

// Versions: a folder keeps none.
func (l *Local) Versions(ctx context.Context, key string) ([]Version, error) { return nil, nil }

// Hidden: a folder keeps no versions, so nothing is hidden.
func (l *Local) Hidden(ctx context.Context, prefix string) ([]Object, error) { return nil, nil }

// RenameNoReplace moves src to dst, failing with fs.ErrExist when dst
// exists: the one rename that claims a name in a folder. Where the file
// system cannot rename without replacing, it checks first (a narrow race,
// only there).
func RenameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// SyncDir makes a folder's entries durable (a rename, a removal).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
