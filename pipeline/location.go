package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/verify"
)

// location is where a record's archive lives, as one repository and key:
// a folder on this machine or a bucket, read the same way (repo.Repo).
// locate is the one reader of a record's location fields for reading an
// archive back.
type location struct {
	repo    repo.Repo
	key     string // the archive's; a directory-format archive's ends in "/"
	version string // the stored version the record names ("" where the store keeps none)
	display string // the archive as the record shows it
	// manifest is the key of the manifest beside the archive ("" when the
	// record names none there: a manifest elsewhere is not the archive's).
	manifest string
}

// locate maps a record to its location.
func locate(rec *catalog.Record) (location, error) {
	a := rec.Archive
	if a.Store != nil {
		s, err := storeOf(rec)
		if err != nil {
			return location{}, err
		}
		return location{repo: s, key: a.Store.Key, version: a.Store.VersionID, display: a.Path, manifest: a.Store.ManifestKey}, nil
	}
	if !filepath.IsAbs(a.Path) {
		return location{}, fmt.Errorf("the record of %s names no absolute archive path (%q)", rec.ID, a.Path)
	}
	key := filepath.Base(a.Path)
	if a.Format == verify.FormatDirectory {
		key += "/"
	}
	l := location{repo: &repo.Local{Root: filepath.Dir(a.Path)}, key: key, display: a.Path}
	if m := a.Manifest; m != "" && filepath.Dir(m) == filepath.Dir(a.Path) {
		l.manifest = filepath.Base(m)
	}
	return l, nil
}

// open streams the archive's stored bytes (a custom-format file), the
// version the record names: a *verify.MissingError when it is gone.
func (l location) open(ctx context.Context) (io.ReadCloser, error) {
	if local, ok := l.repo.(*repo.Local); ok { // say what is there instead
		if fi, err := os.Lstat(filepath.Join(local.Root, l.key)); err == nil && !fi.Mode().IsRegular() {
			return nil, &verify.NotArchiveError{Path: l.display, Want: "a custom-format file", Found: verify.Describe(fi)}
		}
	}
	body, err := l.repo.Open(ctx, l.key, l.version)
	if errors.Is(err, repo.ErrNotFound) {
		return nil, &verify.MissingError{Path: l.display, Err: errors.New("no such file or object")}
	}
	if err != nil {
		return nil, &verify.MissingError{Path: l.display, Err: err}
	}
	return body, nil
}

// files lists a directory-format archive's files, as keys below it.
func (l location) files(ctx context.Context) ([]repo.Object, error) {
	if local, ok := l.repo.(*repo.Local); ok {
		// The listing leaves out what is not a regular file; a folder
		// holding a link (pg_restore by hand would follow a NNNN.dat
		// planted beside NNNN.dat.gz) is not one pgattest wrote.
		if err := onlyFiles(filepath.Join(local.Root, filepath.FromSlash(strings.TrimSuffix(l.key, "/"))), l.display); err != nil {
			return nil, err
		}
	}
	objs, err := l.repo.List(ctx, l.key)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, &verify.MissingError{Path: l.display, Err: errors.New("no files under it")}
	}
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, l.key)
	}
	return objs, nil
}

// onlyFiles: the folder at dir holds folders and regular files alone,
// links not followed.
func onlyFiles(dir, display string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone: the listing says so
			}
			return err
		}
		if p == dir && d.Type()&fs.ModeSymlink != 0 {
			return &verify.NotArchiveError{Path: display, Want: "a folder", Found: "a symbolic link"}
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			return &verify.NotArchiveError{Path: display, Want: "a folder of pg_dump's files", Found: fmt.Sprintf("%q in it, %s", filepath.ToSlash(rel), describeEntry(d))}
		}
		return nil
	})
}

func describeEntry(d fs.DirEntry) string {
	if fi, err := d.Info(); err == nil {
		return verify.Describe(fi)
	}
	return "not a regular file"
}

// absence is why an archive is not there whole; the zero value is "it is".
type absence struct {
	kind absenceKind
	why  string // in words, for a record's event and prune's output
}

type absenceKind int

const (
	isThere   absenceKind = iota
	isGone                // no file, object or version (or toc.dat): nothing there
	isNotFile             // something else in its place (a link, a folder)
	isResized             // there, of another size, or a directory archive not whole
)

// present asks the store, cheaply (no byte of the archive is read), whether
// the archive the record names is there whole: the recorded version, of
// the recorded size; for a directory archive, files under it with toc.dat
// among them, their sizes adding up to the record's. An error is a store
// (or a folder) that could not say.
func (l location) present(ctx context.Context, rec *catalog.Record) (absence, error) {
	if local, ok := l.repo.(*repo.Local); ok {
		if _, err := os.Stat(local.Root); err != nil { // an unmounted disk is no evidence
			return absence{}, fmt.Errorf("its folder %s cannot be read: %w", local.Root, err)
		}
	}
	if rec.Archive.Format == verify.FormatDirectory {
		objs, err := l.files(ctx)
		var missing *verify.MissingError
		if errors.As(err, &missing) {
			return absence{isGone, missing.Err.Error()}, nil
		}
		if err != nil {
			return absence{}, err
		}
		var size int64
		toc := false
		for _, o := range objs {
			size += o.Size
			toc = toc || o.Key == "toc.dat"
		}
		switch {
		case !toc:
			return absence{isGone, "no toc.dat under it"}, nil
		case size != rec.Archive.Size:
			return absence{isResized, fmt.Sprintf("its files hold %d bytes where the record says %d", size, rec.Archive.Size)}, nil
		}
		return absence{}, nil
	}
	if local, ok := l.repo.(*repo.Local); ok {
		fi, err := os.Lstat(filepath.Join(local.Root, l.key))
		if errors.Is(err, fs.ErrNotExist) {
			return absence{isGone, "no such file"}, nil
		}
		if err != nil {
			return absence{}, err
		}
		if !fi.Mode().IsRegular() {
			return absence{isNotFile, "in its place is " + verify.Describe(fi)}, nil
		}
	}
	o, err := l.repo.Stat(ctx, l.key, l.version)
	if errors.Is(err, repo.ErrNotFound) {
		if l.version != "" {
			return absence{isGone, "no such object version (" + l.version + ")"}, nil
		}
		return absence{isGone, "no such file or object"}, nil
	}
	if err != nil {
		return absence{}, err
	}
	if o.Size != rec.Archive.Size {
		return absence{isResized, fmt.Sprintf("%d bytes where the record says %d", o.Size, rec.Archive.Size)}, nil
	}
	return absence{}, nil
}

// over says what the store holds over the version the record names: a
// delete marker or newer versions a writer of the bucket put there. They
// hide nothing (every read takes the recorded version), but a user should
// know. Nothing where the store keeps no versions.
func (l location) over(ctx context.Context) ([]string, error) {
	if l.version == "" {
		return nil, nil
	}
	vs, err := l.repo.Versions(ctx, l.key)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vs {
		if v.ID == l.version {
			return out, nil
		}
		when := v.ModTime.UTC().Format("2006-01-02 15:04:05Z")
		if v.DeleteMarker {
			out = append(out, fmt.Sprintf("a delete marker (%s, version %s) is over the recorded version: the key looks deleted, the recorded version was read", when, v.ID))
		} else {
			out = append(out, fmt.Sprintf("a newer version (%s, %d bytes, version %s) is over the recorded version: the recorded version was read, not it", when, v.Size, v.ID))
		}
	}
	return append(out, "the recorded version "+l.version+" is not among the key's versions"), nil
}

// storeNotes is over for a record: what a check should report of its
// archive's key, or nothing when the store cannot say.
func storeNotes(ctx context.Context, rec *catalog.Record) []string {
	l, err := locate(rec)
	if err != nil {
		return nil
	}
	notes, err := l.over(ctx)
	if err != nil {
		return []string{"could not list the versions of " + l.display + ": " + err.Error()}
	}
	return notes
}

// remove deletes the archive (the version the record names) and its
// manifest, and only what looks like what pgattest wrote there: a regular
// file for a custom archive; for a directory archive, plain files with a
// toc.dat, in a folder that holds nothing else. An archive already gone is
// a note, not an error; one under retention a *repo.LockedError (nothing
// deleted).
func (l location) remove(ctx context.Context, rec *catalog.Record) (note string, err error) {
	var keys []string
	if local, ok := l.repo.(*repo.Local); ok && rec.Archive.Format == verify.FormatDirectory {
		// A folder goes as one: RemoveAll works from the folder it opened
		// (a symbolic link swapped in for it midway is not followed).
		dir := filepath.Join(local.Root, strings.TrimSuffix(l.key, "/"))
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			note = "the archive was already gone"
		case err != nil:
			return "", err
		default:
			if err := checkDumpDir(dir, fi); err != nil {
				return "", err
			}
			if err := os.RemoveAll(dir); err != nil {
				return "", err
			}
		}
	} else if rec.Archive.Format == verify.FormatDirectory {
		objs, err := l.repo.List(ctx, l.key)
		if err != nil {
			return "", err
		}
		for _, o := range objs {
			if strings.Contains(strings.TrimPrefix(o.Key, l.key), "/") {
				return "", fmt.Errorf("%s holds %s, which pg_dump does not write; nothing deleted", l.display, o.Key)
			}
			keys = append(keys, o.Key)
		}
		if len(keys) == 0 {
			note = "the archive was already gone"
		}
	} else {
		a, err := l.present(ctx, rec)
		switch {
		case err != nil:
			return "", err
		case a.kind == isGone:
			note = "the archive was already gone"
		case a.kind == isNotFile:
			return "", fmt.Errorf("%s is not a regular file (%s); nothing deleted", l.display, a.why)
		default: // there (of another size too: it goes, as the record does)
			keys = []string{l.key}
		}
	}
	for _, k := range keys {
		if err := l.repo.Delete(ctx, k, l.version); err != nil {
			return "", err
		}
	}
	if l.manifest != "" {
		if err := l.repo.Delete(ctx, l.manifest, ""); err != nil {
			return "", err
		}
	}
	return note, nil
}

// beside is the location of another archive in the same repository and
// folder as l's, named base+ext, with its manifest base.manifest.json.
func (l location) beside(base, ext string) location {
	dir := path.Dir(strings.TrimSuffix(l.key, "/"))
	n := location{repo: l.repo, key: path.Join(dir, base+ext), manifest: path.Join(dir, base+".manifest.json")}
	n.display = l.show(n.key)
	return n
}

// show is a key of l's repository as a record shows it: an s3:// URL, or
// a path on this machine.
func (l location) show(key string) string {
	if r, ok := l.repo.(*repo.Local); ok {
		return filepath.Join(r.Root, filepath.FromSlash(key))
	}
	return strings.TrimSuffix(l.repo.URL(), "/") + "/" + key
}

// place writes l into a record's location fields (the one writer of them
// besides the backup's first record): the archive and manifest as shown,
// and in a bucket the store's key, manifest key and the version stored.
// Retention is not carried over: a new object has its own.
func (l location) place(rec *catalog.Record, stored repo.Object) {
	l.placing(rec, stored, false)
}

// placeKeeping is place for a record whose archive is the one it
// recorded (a rebuild): its retention stays.
func (l location) placeKeeping(rec *catalog.Record, stored repo.Object) {
	l.placing(rec, stored, true)
}

func (l location) placing(rec *catalog.Record, stored repo.Object, keepRetention bool) {
	a := &rec.Archive
	a.Path, a.Manifest = l.display, l.show(l.manifest)
	if _, ok := l.repo.(*repo.Local); ok { // a path of this machine says it all
		a.Store = nil
		return
	}
	st := &catalog.Store{}
	if a.Store != nil {
		*st = *a.Store
	}
	st.Repo, st.Endpoint, st.Bucket = l.repo.URL(), "", ""
	if b, ok := l.repo.(interface {
		EndpointURL() string
		Bucket() string
	}); ok {
		st.Endpoint, st.Bucket = b.EndpointURL(), b.Bucket()
	}
	st.Key, st.ManifestKey, st.VersionID = l.key, l.manifest, stored.VersionID
	if !keepRetention {
		st.RetainUntil, st.LockMode = nil, ""
	}
	a.Store = st
}

// placeRetention records the retention the store keeps the archive
// under (a bucket's Object Lock; a folder has none).
func placeRetention(rec *catalog.Record, until time.Time, mode string) {
	if st := rec.Archive.Store; st != nil {
		st.RetainUntil, st.LockMode = &until, mode
	}
}

// storeErrOf says a repository's error as its backend does (an S3 error
// with what to check).
func storeErrOf(r repo.Repo, err error) error {
	if s, ok := r.(*repo.S3); ok {
		return storeErr(s, err)
	}
	var se *StoreError
	if _, ok := r.(*repo.Local); ok || err == nil || errors.As(err, &se) {
		return err
	}
	return &StoreError{Repo: r.URL(), Err: err}
}

// writeErrOf says a backup's failure to write to its repository as the
// backend does: a folder's as a DirError (a full disk, a read-only one, a
// folder it may not write), a bucket's as a StoreError.
func writeErrOf(r repo.Repo, err error) error {
	if l, ok := r.(*repo.Local); ok {
		var de *DirError
		var ue *UsageError
		if err == nil || errors.As(err, &de) || errors.As(err, &ue) {
			return err
		}
		return &DirError{Dir: l.Root, Err: err}
	}
	return storeErrOf(r, err)
}

// showKey is a key of r as a record shows it (location.show).
func showKey(r repo.Repo, key string) string { return location{repo: r}.show(key) }

// keepsUnrecorded says whether r keeps a run the catalog did not take, set
// aside for catalog import: a folder does (a rename, and import reads
// files); a bucket aborts the upload, or leaves what it stored where it
// is for catalog rebuild (its objects may be locked there).
func keepsUnrecorded(r repo.Repo) bool {
	_, ok := r.(*repo.Local)
	return ok
}

// openRepo opens the repository at loc: the one place a backend is chosen
// (endpoint: the store a record names, when the environment names none).
// A backend is a file of pipeline/repo implementing repo.Repo, and a case
// here; records, display and reads follow from the interface.
func openRepo(loc repo.Location, endpoint string) (repo.Repo, error) {
	switch loc.Scheme {
	case "s3":
		return OpenS3(loc, endpoint)
	case "file":
		return &repo.Local{Root: loc.Path}, nil
	}
	return nil, &UsageError{Err: fmt.Errorf("no backend for %s://", loc.Scheme), hint: "write s3://BUCKET/PREFIX or file:///absolute/path"}
}

// openToRead opens an existing repository to read from it (a rebuild):
// a bucket that answers, or a folder that is there; nothing is made.
func openToRead(ctx context.Context, loc repo.Location) (repo.Repo, error) {
	r, err := openRepo(loc, "")
	if err != nil {
		return nil, err
	}
	if _, ok := r.(*repo.Local); ok {
		if fi, err := os.Stat(loc.Path); err != nil || !fi.IsDir() {
			return nil, &UsageError{Err: fmt.Errorf("%s is not a folder of backups", loc.Path), hint: "give the folder backups were written to (their --dir)"}
		}
		return r, nil
	}
	if err := r.Check(ctx, false); err != nil {
		return nil, storeErrOf(r, err)
	}
	return r, nil
}

// recordedVersion is the stored version a record names ("" where the
// store keeps none).
func recordedVersion(rec *catalog.Record) string {
	if st := rec.Archive.Store; st != nil {
		return st.VersionID
	}
	return ""
}

// hashWholeFirst says whether a restore reads the archive whole, hashing
// it, before anything else: an encrypted file of this machine, cheap to
// read twice, so a changed ciphertext is refused before a connection is
// made (in a bucket, the checked segments stop it before pg_restore sees a
// byte of it).
func hashWholeFirst(rec *catalog.Record) bool {
	return rec.Archive.Encryption != nil && rec.Archive.Store == nil // a file of this machine
}

// storeOf opens the repository a record's archive is kept in.
func storeOf(rec *catalog.Record) (repo.Repo, error) {
	st := rec.Archive.Store
	loc, err := repo.Parse(st.Repo)
	if err != nil || loc.Scheme == "file" { // a folder's record names its path, not a store
		return nil, fmt.Errorf("the record of %s names no store (%q)", rec.ID, st.Repo)
	}
	return openRepo(loc, st.Endpoint)
}

// Kept says, for show, where a record's archive is kept beyond its path:
// the bucket, its endpoint and the version ("" for a folder), and the
// retention the store keeps it under (nil where none).
func Kept(rec *catalog.Record) (where string, until *time.Time, mode string) {
	st := rec.Archive.Store
	if st == nil {
		return "", nil, ""
	}
	where = "in bucket " + st.Bucket + " at " + st.Endpoint
	if st.VersionID != "" {
		where += ", version " + st.VersionID
	}
	return where, st.RetainUntil, st.LockMode
}

// retention is the retention the store keeps rec's archive under, while it
// lasts (zero time when none): what a receipt stored beside it gets.
func retention(rec *catalog.Record) (time.Time, string) {
	if st := rec.Archive.Store; st != nil && st.RetainUntil != nil && st.RetainUntil.After(time.Now()) {
		return *st.RetainUntil, st.LockMode
	}
	return time.Time{}, ""
}
