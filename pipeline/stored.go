package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// A backup writes to its repository (a folder or an S3 bucket) through
// repo.Repo alone: the dump's tee sends the archive to an upload claimed
// at its key (a folder's partial file, or a multipart upload with at most
// two parts in its staging folder; head keeps the bytes up to the end of
// the table of contents), the proof restores the same bytes as they pass,
// and the record stage completes the upload, stores the manifest beside it
// and records both. An upload not completed is aborted: nothing is visible.

// chooseRepo reads --dir, --repo, --lock-days and --lock-mode, and opens
// the repository (asking it nothing yet).
func (r *run) chooseRepo() error {
	switch mode := strings.ToUpper(r.o.LockMode); mode {
	case "":
		r.o.LockMode = "GOVERNANCE"
	case "GOVERNANCE", "COMPLIANCE":
		r.o.LockMode = mode
	default:
		return &UsageError{Err: fmt.Errorf("lock mode %q is not governance or compliance", r.o.LockMode),
			hint: "governance (the default): only a user allowed to bypass retention may delete early; compliance: no one can, the root account included"}
	}
	if r.o.LockDays < 0 || r.o.LockDays > 36500 {
		return &UsageError{Err: fmt.Errorf("%d days of retention is out of range", r.o.LockDays), hint: "give 1 to 36500 days"}
	}
	if r.o.Repo == "" {
		return r.openFolder()
	}
	loc, err := repo.Parse(r.o.Repo)
	if err != nil {
		return &UsageError{Err: err, hint: "write s3://BUCKET/PREFIX or file:///absolute/path; S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), never the URL"}
	}
	if loc.Scheme == "file" {
		r.o.Dir = loc.Path
		return r.openFolder()
	}
	if r.o.Verify == verify.ModeRead {
		return &UsageError{Err: errors.New("a read-through proof needs the archive on this machine, and an S3 backup keeps none"),
			hint: "prove an S3 backup by restoring it (the default), or record it unproven"}
	}
	if r.repo, err = openRepo(loc, ""); err != nil {
		return err
	}
	return nil
}

// openFolder takes --dir as the repository.
func (r *run) openFolder() error {
	if r.o.LockDays > 0 {
		return &UsageError{Err: errors.New("retention needs an S3 repository: a folder cannot lock its files"),
			hint: "back up to a bucket made with Object Lock enabled: s3://BUCKET/PREFIX"}
	}
	root, err := filepath.Abs(r.o.Dir)
	if err != nil {
		return &DirError{Dir: r.o.Dir, Err: err}
	}
	r.repo, err = openRepo(repo.Location{Scheme: "file", Path: root}, "")
	return err
}

// prepareRepo aborts what killed runs of this name left in the
// repository, picks a key no backup has taken, and makes the staging
// folder (the proof's scratch files; a directory-format archive as pg_dump
// writes it): beside the key where the repository adopts folders by a
// rename, else in the temporary folder.
func (r *run) prepareRepo(ctx context.Context, name string) error {
	n, err := r.repo.AbortStale(ctx, name+"/")
	if err != nil {
		return writeErrOf(r.repo, err)
	}
	if n > 0 {
		r.log("preflight", fmt.Sprintf("aborted %d unfinished upload(s) of killed runs in %s", n, showKey(r.repo, name+"/")))
	}
	if err := r.setAsideOrphans(ctx, name); err != nil {
		return writeErrOf(r.repo, err)
	}
	r.stem, r.keyDir = r.base, name
	if err := r.pickKey(ctx, 1); err != nil {
		return err
	}
	if r.o.LockDays > 0 {
		r.retainUntil = time.Now().UTC().Truncate(time.Second).AddDate(0, 0, r.o.LockDays)
	}
	if a, ok := r.repo.(repo.Adopter); ok {
		dir, err := a.Near(name + "/")
		if err != nil {
			return writeErrOf(r.repo, err)
		}
		if removed, _ := testenv.SweepScratch(dir, stagingPrefix, nil); len(removed) > 0 {
			r.log("preflight", fmt.Sprintf("removed %d leftover staging folder(s) of killed runs in %s", len(removed), dir))
		}
		if r.staging, err = testenv.NewScratch(dir, stagingPrefix); err != nil {
			return writeErrOf(r.repo, err)
		}
		return nil
	}
	if r.staging, err = testenv.NewTempScratch("pgattest-backup-"); err != nil {
		return err
	}
	return nil
}

// setAsideOrphans finds archives under NAME/ without a manifest that a
// killed run of this machine left (its HoldKey mark is free), says so, and
// moves them to NAME/.pgattest-unrecorded/: nothing a killed run left stays
// under a final name without a manifest. Any other archive without a
// manifest (a live run's, another machine's, or one whose manifest a writer
// of the bucket hid behind a delete marker) is said and left; one under
// retention stays where it is.
func (r *run) setAsideOrphans(ctx context.Context, name string) error {
	objs, err := r.repo.List(ctx, name+"/")
	if err != nil {
		return err
	}
	manifests := map[string]bool{}
	archives := map[string][]repo.Object{} // base → its objects
	var bases []string
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, name+"/")
		base := ""
		switch {
		case strings.HasPrefix(rel, "."): // set aside, staging folders, partials: not archives
			continue
		case strings.HasSuffix(rel, ".manifest.json"):
			manifests[strings.TrimSuffix(rel, ".manifest.json")] = true
			continue
		case strings.Contains(rel, ".dir/"):
			base = rel[:strings.Index(rel, ".dir/")]
		case strings.HasSuffix(rel, ".dump"+seal.Ext):
			base = strings.TrimSuffix(rel, ".dump"+seal.Ext)
		case strings.HasSuffix(rel, ".dump"):
			base = strings.TrimSuffix(rel, ".dump")
		default:
			continue
		}
		if archives[base] == nil {
			bases = append(bases, base)
		}
		archives[base] = append(archives[base], o)
	}
	for _, base := range bases {
		if manifests[base] {
			continue
		}
		group := archives[base]
		key := group[0].Key
		if strings.Contains(key, ".dir/") {
			key = key[:strings.Index(key, ".dir/")+len(".dir/")]
		}
		_, dead, done := r.repo.KeyState(key)
		if !dead {
			// Another run's (live, or another machine's), or one whose
			// manifest a writer of the bucket hid: said, never moved.
			done(false)
			r.log("preflight", fmt.Sprintf("%s has no manifest, and no run of this machine was completing it: left where it is (another machine's run, or a manifest hidden or deleted in the store)", showKey(r.repo, key)))
			continue
		}
		moved := 0
		for _, o := range group {
			to := name + "/" + UnrecordedDir + "/" + strings.TrimPrefix(o.Key, name+"/")
			err := r.repo.Move(ctx, o.Key, to)
			var locked *repo.LockedError
			if errors.As(err, &locked) {
				r.log("preflight", fmt.Sprintf("%s has no manifest (a killed run's) but is locked until %s: left in place", showKey(r.repo, o.Key), locked.Until.UTC().Format(time.DateOnly)))
				continue
			}
			if err != nil {
				done(false)
				return fmt.Errorf("set aside %s, which has no manifest: %w", showKey(r.repo, o.Key), err)
			}
			moved++
		}
		done(true)
		if moved > 0 {
			r.log("preflight", fmt.Sprintf("set aside %s: an archive without a manifest (a killed run's), now under %s", showKey(r.repo, key), showKey(r.repo, name+"/"+UnrecordedDir+"/")))
		}
	}
	return nil
}

// holdKey marks r.key as being completed by this run (Repo.HoldKey).
func (r *run) holdKey() error {
	release, err := r.repo.HoldKey(r.key)
	if err != nil {
		return err
	}
	r.releaseKey()
	r.held = release
	return nil
}

// releaseKey lets the mark go: forgotten when the archive is not bare
// under its final name (recorded, with its manifest, taken back or set
// aside); else left for the next run, which finds it dead and sets the
// archive aside, as after a kill.
func (r *run) releaseKey() {
	if r.held != nil {
		r.held(!r.bare)
		r.held = nil
	}
}

// pickKey takes the first key no backup has taken, trying NAME-STAMP-from
// onwards (-1 is NAME-STAMP itself).
func (r *run) pickKey(ctx context.Context, from int) error {
	name := r.keyDir
	err := eachName(r.stem, from, func(b string, i int) (bool, error) {
		taken, err := r.taken(ctx, name+"/"+b)
		if err != nil || taken {
			return false, err
		}
		r.keyTry, r.base, r.key = i, b, name+"/"+b+r.ext()
		if r.format == verify.FormatDirectory {
			r.key += "/" // a folder: one object per file under it
		}
		return true, nil
	})
	if err != nil {
		return writeErrOf(r.repo, err)
	}
	return nil
}

func (r *run) taken(ctx context.Context, base string) (bool, error) {
	for _, key := range []string{base + ".manifest.json", base + ".dump", base + ".dump" + seal.Ext} {
		_, err := r.repo.Stat(ctx, key, "")
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, repo.ErrNotFound) {
			return false, err
		}
	}
	files, err := r.repo.List(ctx, base+".dir/")
	return len(files) > 0, err
}

// storeArchive completes the archive's upload (a directory-format one is
// stored file by file, or adopted by a rename, its key claimed as it goes)
// and stores the manifest beside it, the record's location set to both.
// From the archive's completion until the caller releases the key, it is
// marked held: a run after a kill finds the archive without a manifest and
// sets it aside (setAsideOrphans). A manifest that cannot be stored takes
// the archive back: nothing is stored without a manifest.
func (r *run) storeArchive(ctx context.Context, entries []catalog.TOCEntry) error {
	rec := r.rec
	var stored []string // keys to take back should the manifest fail
	var obj repo.Object
	if r.format == verify.FormatDirectory {
		var err error
		if stored, err = r.uploadFolder(ctx); err != nil {
			return writeErrOf(r.repo, err)
		}
	} else {
		if err := r.holdKey(); err != nil { // a file of this machine's temp folder, not the repository's
			return fmt.Errorf("mark %s as being completed (in %s): %w", showKey(r.repo, r.key), os.TempDir(), err)
		}
		var err error
		if obj, err = r.upload.Commit(ctx); err != nil {
			return writeErrOf(r.repo, fmt.Errorf("complete the upload of %s: %w", showKey(r.repo, r.key), err))
		}
		r.upload = nil
		stored = []string{r.key}
	}
	r.bare = true // under its final name, without a manifest yet
	stepHook("archive completed")
	l := location{repo: r.repo, key: r.key, manifest: r.keyDir + "/" + r.base + ".manifest.json"}
	l.display = l.show(l.key)
	l.place(rec, obj)
	if !r.retainUntil.IsZero() {
		placeRetention(rec, r.retainUntil, r.o.LockMode)
	}
	if err := r.storeManifest(ctx, l.manifest, rec, entries); err != nil {
		if keepsUnrecorded(r.repo) { // a proven archive is kept, set aside for catalog import
			return &manifestFailed{err}
		}
		if derr := r.deleteKeys(ctx, stored); derr != nil {
			return writeErrOf(r.repo, fmt.Errorf("store the manifest: %w (and the archive %s, stored without it, could not be removed: %v; the next backup of the name sets it aside)", err, rec.Archive.Path, derr))
		}
		r.bare = false
		return writeErrOf(r.repo, fmt.Errorf("store the manifest: %w (the archive was removed again: nothing recorded)", err))
	}
	r.bare = false
	stepHook("manifest stored")
	return nil
}

// manifestFailed: the archive is stored and its manifest could not be;
// where the repository keeps such runs, record sets the archive aside.
type manifestFailed struct{ err error }

func (e *manifestFailed) Error() string { return "store the manifest: " + e.err.Error() }
func (e *manifestFailed) Unwrap() error { return e.err }

// stepHook is called at each step of a backup's completion: nothing, but
// in the fault tests (SetStepHook).
var stepHook = func(step string) {}

// notRecorded deals with an archive the catalog did not take (it could
// not be opened, or its chain not checked): where the repository keeps
// such runs (keepsUnrecorded), the archive and its manifest are stored and
// set aside for catalog import; else the upload is aborted.
func (r *run) notRecorded(ctx context.Context, entries []catalog.TOCEntry, cause error) error {
	if !keepsUnrecorded(r.repo) {
		return r.notStored(cause)
	}
	err := r.storeArchive(ctx, entries)
	var mf *manifestFailed
	if err != nil && !errors.As(err, &mf) {
		return &NotRecordedError{Archive: showKey(r.repo, r.key), Err: cause, KeepErr: err}
	}
	return r.setAsideUnrecorded(ctx, entries, cause)
}

// storedNotRecorded: the archive and its manifest are stored, and the
// catalog failed to take the record. Where the repository keeps such runs
// they are set aside for catalog import (nothing under a final name
// without a record); in a bucket they stay for catalog rebuild.
func (r *run) storedNotRecorded(ctx context.Context, entries []catalog.TOCEntry, cause error) error {
	if !keepsUnrecorded(r.repo) {
		return &StoredNotRecordedError{Archive: r.rec.Archive.Path, Repo: r.repo.URL(), Err: cause}
	}
	return r.setAsideUnrecorded(ctx, entries, cause)
}

// setAsideUnrecorded moves a stored archive to the name's unrecorded
// folder (NAME/.pgattest-unrecorded/, the first free BASE there) with a
// manifest beside it: its final manifest goes first (it promises a
// record), then the archive (its key still held: a kill in between leaves
// it to the next run's setAsideOrphans).
func (r *run) setAsideUnrecorded(ctx context.Context, entries []catalog.TOCEntry, cause error) error {
	ctx = context.WithoutCancel(ctx)
	rec := r.rec
	final := location{repo: r.repo, key: r.key}
	final.display = final.show(r.key)
	if err := r.repo.Delete(ctx, r.keyDir+"/"+r.base+".manifest.json", ""); err != nil {
		return &NotRecordedError{Archive: final.display, Err: cause, KeepErr: err}
	}
	r.bare = true // until it is moved: a failure leaves it to the next run
	dir := r.keyDir + "/" + UnrecordedDir + "/"
	ext := extOf(rec.Archive)
	var kept location
	err := eachName(r.base, 1, func(b string, _ int) (bool, error) {
		if _, err := r.repo.Stat(ctx, dir+b+".manifest.json", ""); err == nil {
			return false, nil
		}
		err := r.repo.Move(ctx, strings.TrimSuffix(r.key, "/"), dir+b+ext)
		if errors.Is(err, repo.ErrExists) {
			return false, nil
		}
		kept = location{repo: r.repo, key: dir + b + ext, manifest: dir + b + ".manifest.json"}
		return err == nil, err
	})
	if err != nil {
		return &NotRecordedError{Archive: final.display, Err: cause, KeepErr: err}
	}
	r.bare = false
	r.releaseKey() // nothing of this run is under a final name now
	kept.display = kept.show(kept.key)
	kept.place(rec, repo.Object{})
	if err := r.storeManifest(ctx, kept.manifest, rec, entries); err != nil {
		return &NotRecordedError{Archive: kept.display, Err: cause, KeepErr: err}
	}
	return &NotRecordedError{Archive: kept.display, Manifest: kept.show(kept.manifest), Err: cause}
}

// uploadFolder stores a directory-format archive under its key: adopted
// by a rename where the repository can (a folder: the archive was staged
// beside it), else one object per file, with the run's retention. The key
// is claimed as it goes (a run of the same name in the same second that
// got there first keeps it, and this one takes the next free -N) and held
// from then on (holdKey). On a failure it takes back what it stored. The
// folder was written by pg_dump's workers on this machine (they need a
// folder), so it is a whole local copy.
func (r *run) uploadFolder(ctx context.Context) ([]string, error) {
	var files []string
	err := filepath.WalkDir(r.archive, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(r.archive, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// toc.dat goes first and claims the key.
	sort.SliceStable(files, func(i, j int) bool { return files[i] == "toc.dat" && files[j] != "toc.dat" })
	var stored []string
	put := func(rel string) error {
		key := r.key + rel
		f, err := os.Open(filepath.Join(r.archive, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		defer f.Close()
		u, err := r.repo.Create(ctx, key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode, Exclusive: true})
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(u, f, make([]byte, 1<<20)); err != nil {
			u.Abort(ctx)
			return fmt.Errorf("upload %s: %w", key, err)
		}
		if _, err := u.Commit(ctx); err != nil {
			return fmt.Errorf("complete the upload of %s: %w", key, err)
		}
		stored = append(stored, key)
		return nil
	}
	claim := func() error { // the first file, or the whole folder
		if err := r.holdKey(); err != nil {
			return err
		}
		if a, ok := r.repo.(repo.Adopter); ok {
			if err := a.Adopt(ctx, r.archive, r.key); err != nil {
				return err
			}
			for _, rel := range files {
				stored = append(stored, r.key+rel)
			}
			files = nil
			return nil
		}
		if len(files) == 0 {
			return errors.New("pg_dump wrote no file")
		}
		err := put(files[0])
		if err == nil {
			files = files[1:]
		}
		return err
	}
	err = claim()
	for errors.Is(err, repo.ErrExists) && r.keyTry < 1000 {
		r.releaseKey()
		if err = r.pickKey(ctx, r.keyTry+1); err == nil {
			err = claim()
		}
	}
	for _, rel := range files {
		if err != nil {
			break
		}
		err = put(rel)
	}
	if err != nil {
		if derr := r.deleteKeys(ctx, stored); derr != nil {
			return nil, fmt.Errorf("%w (and %d files stored before could not be removed: %v)", err, len(stored), derr)
		}
		return nil, err
	}
	return stored, nil
}

// deleteKeys takes back objects stored by a run that is not recorded.
func (r *run) deleteKeys(ctx context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		if err := r.repo.Delete(context.WithoutCancel(ctx), k, ""); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *run) storeManifest(ctx context.Context, key string, rec *catalog.Record, entries []catalog.TOCEntry) error {
	b, err := manifestBytes(rec, entries)
	if err != nil {
		return err
	}
	return putObject(ctx, r.repo, key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode,
		Metadata: map[string]string{"pgattest-archive-blake3": rec.Archive.BLAKE3}}, b)
}

// putObject stores b whole at key: nothing is there unless all of it is.
func putObject(ctx context.Context, r repo.Repo, key string, o repo.CreateOptions, b []byte) error {
	u, err := r.Create(ctx, key, o)
	if err != nil {
		return err
	}
	if _, err := u.Write(b); err != nil {
		u.Abort(ctx)
		return err
	}
	if _, err := u.Commit(ctx); err != nil {
		u.Abort(ctx)
		return err
	}
	return nil
}

// notStored aborts the upload of a run the catalog did not take.
func (r *run) notStored(cause error) error {
	var aborted error
	if r.upload != nil {
		aborted = r.upload.Abort(context.Background())
		r.upload = nil
	}
	return &NotStoredError{Err: cause, AbortErr: aborted}
}

// NotStoredError: the catalog did not take the record of a backup to a
// bucket, so its upload was aborted and nothing was stored.
type NotStoredError struct {
	Err      error // why the catalog did not take it
	AbortErr error // why the upload could not be aborted (the next run does)
}

func (e *NotStoredError) Error() string {
	if e.AbortErr != nil {
		return fmt.Sprintf("not recorded: %v; the upload was not completed (nothing is visible), and the next backup of this name aborts it (%v)", e.Err, e.AbortErr)
	}
	return fmt.Sprintf("not recorded: %v; the upload was aborted: nothing was stored", e.Err)
}
func (e *NotStoredError) Unwrap() error { return e.Err }

// StoredNotRecordedError: the archive and its manifest are in the bucket,
// but the catalog did not take the record.
type StoredNotRecordedError struct {
	Archive, Repo string
	Err           error
}

func (e *StoredNotRecordedError) Error() string {
	return fmt.Sprintf("archive %s and its manifest were stored, but not recorded: %v", e.Archive, e.Err)
}
func (e *StoredNotRecordedError) Unwrap() error { return e.Err }

// Hint says how to get the record back: the manifest holds it.
func (e *StoredNotRecordedError) Hint() string {
	return "the manifest beside the archive holds the record: pgattest catalog rebuild --repo " + e.Repo + " --catalog NEW.db reads every manifest there into a new catalog"
}

// StoreError is a failure of the object store, with what to do about it.
type StoreError struct {
	Repo string
	Err  error
}

func (e *StoreError) Error() string { return e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Hint names the usual causes of the store's answer.
func (e *StoreError) Hint() string {
	var s3 *repo.S3Error
	var nolock *repo.NoObjectLockError
	switch {
	case errors.As(e.Err, &nolock):
		return "Object Lock is enabled when a bucket is made (aws s3api create-bucket --object-lock-enabled-for-bucket); back up without retention, or to such a bucket"
	case errors.As(e.Err, &s3) && s3.Credentials():
		return "the store refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials), and that they may write to " + e.Repo
	case errors.As(e.Err, &s3) && s3.NoBucket():
		return "make the bucket first, or fix its name in " + e.Repo + "; AWS_ENDPOINT_URL_S3 names the store when it is not AWS"
	case errors.As(e.Err, &s3) && s3.Code == "":
		return "the store did not answer: check AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) and the network"
	}
	return ""
}

func storeErr(s *repo.S3, err error) error {
	var se *StoreError
	if err == nil || errors.As(err, &se) {
		return err
	}
	return &StoreError{Repo: s.URL(), Err: err}
}

// headKeeper keeps an archive's first bytes, up to the end of its table of
// contents (verify.HeadTOC), then ignores the rest: what pg_restore -l and
// the inventory need, while the whole goes to the store.
type headKeeper struct {
	mu   sync.Mutex
	b    []byte
	full bool
}

func (h *headKeeper) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		h.b = append(h.b, p...)
		if toc, err := verify.HeadTOC(h.b); toc != nil || err != nil {
			h.full = true
		}
	}
	return len(p), nil
}

// bytes is the head, for pg_restore -l (on its standard input: no
// plaintext of the archive goes to disk).
func (h *headKeeper) bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.b
}
