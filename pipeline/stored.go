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

// A backup to an S3 repository: the dump's tee sends the archive to a
// multipart upload (no copy of it on this machine: the upload's staging
// folder holds at most two parts, and head the bytes up to the end of the
// table of contents), the proof restores the same bytes as they pass, and
// the record stage completes the upload, stores the manifest beside it and
// records both. An upload not completed is aborted: nothing is visible.

// chooseRepo reads --repo, --lock-days and --lock-mode, and opens an S3
// repository (asking the store nothing yet).
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
		return r.lockNeedsS3()
	}
	loc, err := repo.Parse(r.o.Repo)
	if err != nil {
		return &UsageError{Err: err, hint: "write s3://BUCKET/PREFIX or file:///absolute/path; S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), never the URL"}
	}
	if loc.Scheme == "file" {
		r.o.Dir = loc.Path
		return r.lockNeedsS3()
	}
	if r.o.Verify == verify.ModeRead {
		return &UsageError{Err: errors.New("a read-through proof needs the archive on this machine, and an S3 backup keeps none"),
			hint: "prove an S3 backup by restoring it (the default), or record it unproven"}
	}
	if r.store, err = OpenS3(loc, ""); err != nil {
		return err
	}
	return nil
}

func (r *run) lockNeedsS3() error {
	if r.o.LockDays > 0 {
		return &UsageError{Err: errors.New("retention needs an S3 repository: a folder cannot lock its files"),
			hint: "back up to a bucket made with Object Lock enabled: s3://BUCKET/PREFIX"}
	}
	return nil
}

// prepareStore aborts what killed runs of this name left in the bucket,
// picks a key no backup has taken, and makes the local staging folder (the
// proof's scratch files and the archive's head).
func (r *run) prepareStore(ctx context.Context, name string) error {
	n, err := r.store.AbortStale(ctx, name+"/")
	if err != nil {
		return storeErr(r.store, err)
	}
	if n > 0 {
		r.log("preflight", fmt.Sprintf("aborted %d unfinished upload(s) of killed runs in %s", n, objectURL(r.store, name+"/")))
	}
	if err := r.setAsideOrphans(ctx, name); err != nil {
		return storeErr(r.store, err)
	}
	r.stem, r.keyDir = r.base, name
	if err := r.pickKey(ctx, 1); err != nil {
		return err
	}
	if r.o.LockDays > 0 {
		r.retainUntil = time.Now().UTC().Truncate(time.Second).AddDate(0, 0, r.o.LockDays)
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
	objs, err := r.store.List(ctx, name+"/")
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
		case strings.HasPrefix(rel, UnrecordedDir+"/"):
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
		_, dead, done := r.store.KeyState(key)
		if !dead {
			// Another run's (live, or another machine's), or one whose
			// manifest a writer of the bucket hid: said, never moved.
			done(false)
			r.log("preflight", fmt.Sprintf("%s has no manifest, and no run of this machine was completing it: left where it is (another machine's run, or a manifest hidden or deleted in the bucket)", objectURL(r.store, key)))
			continue
		}
		moved := 0
		for _, o := range group {
			to := name + "/" + UnrecordedDir + "/" + strings.TrimPrefix(o.Key, name+"/")
			err := r.store.Move(ctx, o.Key, to)
			var locked *repo.LockedError
			if errors.As(err, &locked) {
				r.log("preflight", fmt.Sprintf("%s has no manifest (a killed run's) but is locked until %s: left in place", objectURL(r.store, o.Key), locked.Until.UTC().Format(time.DateOnly)))
				continue
			}
			if err != nil {
				done(false)
				return fmt.Errorf("set aside %s, which has no manifest: %w", objectURL(r.store, o.Key), err)
			}
			moved++
		}
		done(true)
		if moved > 0 {
			r.log("preflight", fmt.Sprintf("set aside %s: an archive without a manifest (a killed run's), now under %s", objectURL(r.store, key), objectURL(r.store, name+"/"+UnrecordedDir+"/")))
		}
	}
	return nil
}

// holdKey marks r.key as being completed by this run (repo.S3.HoldKey).
func (r *run) holdKey() error {
	release, err := r.store.HoldKey(r.key)
	if err != nil {
		return err
	}
	r.releaseKey()
	r.held = release
	return nil
}

// releaseKey forgets the mark: the archive is recorded, or taken back.
func (r *run) releaseKey() {
	if r.held != nil {
		r.held()
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
		return storeErr(r.store, err)
	}
	return nil
}

func (r *run) taken(ctx context.Context, base string) (bool, error) {
	for _, key := range []string{base + ".manifest.json", base + ".dump", base + ".dump" + seal.Ext} {
		_, err := r.store.Stat(ctx, key, "")
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, repo.ErrNotFound) {
			return false, err
		}
	}
	files, err := r.store.List(ctx, base+".dir/")
	return len(files) > 0, err
}

// recordStored completes the upload once the catalog is open (and its
// chain checked, when another run held it at preflight), stores the
// manifest beside the archive, and records both. A catalog that cannot be
// opened aborts the upload: nothing is stored without a record.
func (r *run) recordStored(ctx context.Context, entries []catalog.TOCEntry) (catalog.Event, error) {
	rec := r.rec
	cat, err := openCatalog(r.o.CatalogPath, waitingFor(func(s string) { r.note("record", s) }))
	if err != nil {
		return catalog.Event{}, r.notStored(err)
	}
	defer cat.Close()
	if r.checkAtRecord {
		if err := verifiedCatalog(cat); err != nil {
			return catalog.Event{}, r.notStored(err)
		}
	}
	// From the archive's completion until its record is written, its key
	// is marked held: a run after a kill here finds the archive without a
	// manifest and sets it aside (setAsideOrphans).
	defer r.releaseKey()
	var stored []string                     // keys to take back should the manifest fail
	if r.format == verify.FormatDirectory { // its key is claimed as it goes up
		if stored, err = r.uploadFolder(ctx); err != nil {
			return catalog.Event{}, storeErr(r.store, err)
		}
	}
	mkey := r.rec.Name + "/" + r.base + ".manifest.json"
	st := &catalog.Store{Repo: r.store.URL(), Endpoint: r.store.EndpointURL(), Bucket: r.store.Bucket(), Key: r.key, ManifestKey: mkey}
	if !r.retainUntil.IsZero() {
		until := r.retainUntil
		st.RetainUntil, st.LockMode = &until, r.o.LockMode
	}
	rec.Archive.Store = st
	rec.Archive.Path, rec.Archive.Manifest = objectURL(r.store, r.key), objectURL(r.store, mkey)
	if r.format != verify.FormatDirectory {
		if err := r.holdKey(); err != nil {
			return catalog.Event{}, r.notStored(err)
		}
		obj, err := r.upload.Commit(ctx)
		if err != nil {
			return catalog.Event{}, storeErr(r.store, fmt.Errorf("complete the upload of %s: %w", rec.Archive.Path, err))
		}
		r.upload = nil
		st.VersionID = obj.VersionID
		stored = []string{r.key}
	}
	if err := r.storeManifest(ctx, mkey, rec, entries); err != nil {
		if derr := r.deleteKeys(ctx, stored); derr != nil {
			return catalog.Event{}, storeErr(r.store, fmt.Errorf("store the manifest: %w (and the archive %s, stored without it, could not be removed: %v)", err, rec.Archive.Path, derr))
		}
		return catalog.Event{}, storeErr(r.store, fmt.Errorf("store the manifest: %w (the archive was removed again: nothing recorded)", err))
	}
	ev, err := cat.AddWithTOC(rec, entries)
	if err != nil {
		return catalog.Event{}, &StoredNotRecordedError{Archive: rec.Archive.Path, Repo: st.Repo, Err: err}
	}
	return ev, nil
}

// uploadFolder stores a directory-format archive, one object per file
// under its key, with the run's retention; on a failure it takes back what
// it stored. The folder was written by pg_dump's workers on this machine
// (they need a folder), so it is a whole local copy, as with --dir.
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
	// toc.dat goes first and claims the key: a run of the same name in
	// the same second that got there first keeps it, and this one takes
	// the next free -N.
	sort.SliceStable(files, func(i, j int) bool { return files[i] == "toc.dat" && files[j] != "toc.dat" })
	var stored []string
	put := func(rel string) error {
		key := r.key + rel
		f, err := os.Open(filepath.Join(r.archive, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		defer f.Close()
		u, err := r.store.Create(ctx, key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode, Exclusive: true})
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
	for i, rel := range files {
		if i == 0 {
			err = r.holdKey()
		}
		if err == nil {
			err = put(rel)
		}
		for i == 0 && errors.Is(err, repo.ErrExists) && r.keyTry < 1000 {
			r.releaseKey()
			if err = r.pickKey(ctx, r.keyTry+1); err == nil {
				if err = r.holdKey(); err == nil {
					err = put(rel)
				}
			}
		}
		if err != nil {
			break
		}
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
		if err := r.store.Delete(context.WithoutCancel(ctx), k, ""); err != nil {
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
	u, err := r.store.Create(ctx, key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode,
		Metadata: map[string]string{"pgattest-archive-blake3": rec.Archive.BLAKE3}})
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

// NotStoredError: the catalog did not take the record of an S3 backup, so
// its upload was aborted and nothing was stored.
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
