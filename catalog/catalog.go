package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// Bucket names.
var (
	bucketBackups = []byte("backups")  // id → record JSON
	bucketByTime  = []byte("by_time")  // name 0x00 BE start-nanos id → nothing
	bucketByStart = []byte("by_start") // BE start-nanos id → nothing (all names)
	bucketEvents  = []byte("events")   // BE seq → event JSON
	bucketMeta    = []byte("meta")     // "schema", "head", "head_seq"
	bucketTOCs    = []byte("tocs")     // id → JSON array of TOC entries
)

// SchemaVersion is the layout of the buckets above.
const SchemaVersion = 1

// DefaultTimeout is how long Open waits for another pgattest to let go of
// the catalog before it gives up.
const DefaultTimeout = 30 * time.Second

// Catalog is an open catalog file. It holds an exclusive lock on the file
// while open (read-only opens share a lock), so keep it open briefly.
type Catalog struct {
	db   *bolt.DB
	path string
}

// Options for Open.
type Options struct {
	Timeout  time.Duration // wait this long for the lock; 0 = DefaultTimeout
	ReadOnly bool          // shared lock; the file must exist
	// OnWait, when set, is called once when another process has held the
	// lock for a second, with its pid (0 when unknown), so the caller can
	// say why nothing happens.
	OnWait func(pid int)
}

// Open opens the catalog at path, creating it (mode 0600, folder 0700) unless
// ReadOnly. A file that exists but is empty or not a catalog is an error and
// is never overwritten.
func Open(path string, o Options) (*Catalog, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, &Error{Path: path, Err: ErrNotCatalog, Detail: "it is a folder"}
	case err == nil && fi.Size() == 0:
		return nil, &Error{Path: path, Err: ErrNotCatalog, Detail: "the file is empty"}
	case errors.Is(err, fs.ErrNotExist):
		if o.ReadOnly {
			return nil, &Error{Path: path, Err: ErrNoCatalog}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, &Error{Path: path, Err: err, Detail: "cannot create its folder"}
		}
	case err != nil:
		return nil, &Error{Path: path, Err: err}
	}
	if err == nil && !o.ReadOnly {
		// A writable open reads the free-page list at once: look at the
		// file read-only first, so a truncated one is refused, not read.
		c, err := Open(path, Options{Timeout: o.Timeout, ReadOnly: true, OnWait: o.OnWait})
		if err != nil {
			return nil, err
		}
		c.Close()
	}
	// 16 KiB pages for a new file: a record is about 2 KiB of JSON, and
	// bbolt's default of 4 KiB would hold one per page.
	bo := &bolt.Options{Timeout: o.Timeout, ReadOnly: o.ReadOnly, PageSize: 16 << 10}
	if o.OnWait != nil && o.Timeout > time.Second {
		bo.Timeout = time.Second
	}
	db, err := openBolt(path, bo)
	if errors.Is(err, berrors.ErrTimeout) && bo.Timeout < o.Timeout {
		o.OnWait(lockHolder(path))
		bo.Timeout = o.Timeout - bo.Timeout
		db, err = openBolt(path, bo)
	}
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, &Error{Path: path, Err: ErrBusy, PID: lockHolder(path)}
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
			errors.Is(err, berrors.ErrChecksum), strings.Contains(err.Error(), "file size too small"),
			strings.Contains(err.Error(), "invalid"):
			return nil, &Error{Path: path, Err: ErrNotCatalog, Detail: err.Error()}
		}
		if !o.ReadOnly && (errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
			return nil, &Error{Path: path, Err: ErrReadOnly, Detail: err.Error()}
		}
		return nil, &Error{Path: path, Err: err}
	}
	c := &Catalog{db: db, path: path}
	if err := c.checkSize(); err != nil {
		db.Close()
		return nil, err
	}
	if !o.ReadOnly {
		if err := c.init(); err != nil {
			db.Close()
			return nil, err
		}
	} else if err := c.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func (c *Catalog) init() error {
	err := c.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBackups, bucketByTime, bucketByStart, bucketEvents, bucketMeta, bucketTOCs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v == nil {
			return meta.Put([]byte("schema"), []byte(strconv.Itoa(SchemaVersion)))
		}
		return nil
	})
	if err != nil {
		return &Error{Path: c.path, Err: err, Detail: "cannot initialize"}
	}
	return c.checkSchema()
}

func (c *Catalog) checkSchema() error {
	return c.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return &Error{Path: c.path, Err: ErrNotCatalog, Detail: "a bbolt file without pgattest's buckets"}
		}
		v, _ := strconv.Atoi(string(meta.Get([]byte("schema"))))
		if v > SchemaVersion {
			return &Error{Path: c.path, Err: ErrNewerSchema, Detail: fmt.Sprintf("schema %d, this pgattest knows %d", v, SchemaVersion)}
		}
		return nil
	})
}

// CheckWritable reports, changing nothing, whether a catalog could be
// written at path: the file when it exists, else the nearest folder that
// does (where it would be made). Commands that record call it before long
// work, so a read-only catalog does not waste a dump.
func CheckWritable(path string) error {
	p := path
	if _, err := os.Stat(p); err != nil {
		for p = filepath.Dir(p); p != filepath.Dir(p); p = filepath.Dir(p) {
			if _, err := os.Stat(p); err == nil {
				break
			}
		}
	}
	if err := unix.Access(p, unix.W_OK); err != nil {
		return &Error{Path: path, Err: ErrReadOnly, Detail: fmt.Sprintf("%s: %v", p, err)}
	}
	return nil
}

// openBolt is bolt.Open with a damaged file (a free-page list that does not
// parse) reported as an error rather than a crash.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &Error{Path: path, Err: ErrDamaged, Detail: fmt.Sprintf("%v", r)}
		}
	}()
	return bolt.Open(path, 0o600, o)
}

// checkSize refuses a file shorter than its header says (truncated by a
// copy that did not finish, a full disk): reading the missing pages would
// crash. The header is the meta page, which a truncated file still has.
func (c *Catalog) checkSize() error {
	fi, err := os.Stat(c.path)
	if err != nil {
		return &Error{Path: c.path, Err: err}
	}
	return c.view(func(tx *bolt.Tx) error {
		if need := tx.Size(); fi.Size() < need {
			return &Error{Path: c.path, Err: ErrDamaged,
				Detail: fmt.Sprintf("truncated: the file has %d bytes, its header says %d", fi.Size(), need)}
		}
		return nil
	})
}

// view runs fn in a read transaction, update in a write transaction. A
// damaged file (a page that faults or does not parse) is an error, not a
// crash; the write transaction is rolled back.
func (c *Catalog) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.damaged(&err)
	return c.db.View(fn)
}

func (c *Catalog) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer c.damaged(&err)
	err = c.db.Update(fn)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		err = &Error{Path: c.path, Err: err, Detail: "the transaction was rolled back"}
	}
	return err
}

func (c *Catalog) damaged(err *error) {
	if r := recover(); r != nil {
		*err = &Error{Path: c.path, Err: ErrDamaged, Detail: fmt.Sprintf("%v", r)}
	}
}

// Path returns the catalog file's path.
func (c *Catalog) Path() string { return c.path }

// ReadOnly reports whether the catalog was opened read-only.
func (c *Catalog) ReadOnly() bool { return c.db.IsReadOnly() }

// Close releases the catalog.
func (c *Catalog) Close() error { return c.db.Close() }

// Add stores a new record and appends a "recorded" event, in one transaction.
func (c *Catalog) Add(r *Record) (Event, error) {
	return c.AddWithTOC(r, nil)
}

// EntriesDigest is the digest a record keeps of its TOC entries
// (TOC.EntriesBLAKE3), as AddWithTOC takes it.
func EntriesDigest(entries []TOCEntry) (string, error) {
	b, err := json.Marshal(entries)
	if err != nil {
		return "", err
	}
	return digest(b), nil
}

// AddWithTOC is Add that also stores the archive's TOC entries. The record
// keeps their digest (TOC.EntriesBLAKE3), so the event chain, which covers
// the record, covers the entries too.
func (c *Catalog) AddWithTOC(r *Record, entries []TOCEntry) (Event, error) {
	evs, err := c.AddMany([]*Record{r}, [][]TOCEntry{entries})
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// Import stores a record brought in from a manifest (catalog import), with
// its TOC entries, and appends a "recorded" event that says where from.
// Its status is the one its proofs give by Outcome, whatever the manifest
// says (a pruned record stays pruned).
func (c *Catalog) Import(r *Record, entries []TOCEntry, from string) (Event, error) {
	return c.AddDerived(r, entries, "imported from "+from)
}

// AddDerived stores a record made from another's evidence (a manifest, a
// re-encrypted archive) with its TOC entries and a "recorded" event whose
// detail says from what. Its status is the one its proofs give by
// Outcome, whatever it says (a pruned record stays pruned).
func (c *Catalog) AddDerived(r *Record, entries []TOCEntry, detail string) (Event, error) {
	if r.Status != StatusPruned {
		r.Status = StatusByProofs(r.Proofs)
	}
	var toc []byte
	r.TOC.EntriesBLAKE3 = ""
	if entries != nil {
		var err error
		if toc, err = json.Marshal(entries); err != nil {
			return Event{}, err
		}
		r.TOC.EntriesBLAKE3 = digest(toc)
	}
	return c.write(r, KindRecorded, detail, true, toc)
}

// Update stores a changed record (a new proof, pruned) and appends an event
// of the given kind, in one transaction.
func (c *Catalog) Update(r *Record, kind, detail string) (Event, error) {
	return c.write(r, kind, detail, false, nil)
}

// Note appends an event about a backup without changing its record (for
// example "restored", with where to in detail).
func (c *Catalog) Note(backupID, kind, detail string) (Event, error) {
	var ev Event
	err := c.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketBackups).Get([]byte(backupID)) == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, backupID)
		}
		var err error
		ev, err = appendEvent(tx, kind, backupID, "", detail)
		return err
	})
	return ev, err
}

// AddMany stores new records, each with its "recorded" event and its TOC
// entries (entries[i], when entries is not nil), in one transaction: all or
// none. It is for bringing many records in at once (an import, a
// benchmark); a backup uses AddWithTOC.
func (c *Catalog) AddMany(recs []*Record, entries [][]TOCEntry) ([]Event, error) {
	if entries != nil && len(entries) != len(recs) {
		return nil, fmt.Errorf("%d entry lists for %d records", len(entries), len(recs))
	}
	bodies := make([][]byte, len(recs))
	tocs := make([][]byte, len(recs))
	for i, r := range recs {
		var err error
		if entries != nil && entries[i] != nil {
			if tocs[i], err = json.Marshal(entries[i]); err != nil {
				return nil, err
			}
			r.TOC.EntriesBLAKE3 = digest(tocs[i])
		}
		if bodies[i], err = encodeRecord(r); err != nil {
			return nil, err
		}
	}
	evs := make([]Event, len(recs))
	err := c.update(func(tx *bolt.Tx) error {
		for i, r := range recs {
			var err error
			if evs[i], err = put(tx, r, bodies[i], KindRecorded, "", true, tocs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

func encodeRecord(r *Record) ([]byte, error) {
	if r.ID == "" || r.Name == "" || r.StartedAt.IsZero() {
		return nil, fmt.Errorf("record needs an id, a name and a start time")
	}
	r.StartedAt = r.StartedAt.UTC()
	r.FinishedAt = r.FinishedAt.UTC()
	return json.Marshal(r)
}

func (c *Catalog) write(r *Record, kind, detail string, isNew bool, tocJSON []byte) (Event, error) {
	body, err := encodeRecord(r)
	if err != nil {
		return Event{}, err
	}
	var ev Event
	err = c.update(func(tx *bolt.Tx) error {
		ev, err = put(tx, r, body, kind, detail, isNew, tocJSON)
		return err
	})
	return ev, err
}

// put stores one record (new, or a change to an existing one) with its
// index entries and TOC entries, and appends its event.
func put(tx *bolt.Tx, r *Record, body []byte, kind, detail string, isNew bool, tocJSON []byte) (Event, error) {
	backups := tx.Bucket(bucketBackups)
	fill(tx)
	id := []byte(r.ID)
	old := backups.Get(id)
	switch {
	case isNew && old != nil:
		return Event{}, fmt.Errorf("record %q already exists", r.ID)
	case !isNew && old == nil:
		return Event{}, fmt.Errorf("%w: %q", ErrNotFound, r.ID)
	}
	if !isNew {
		var prev Record
		if err := json.Unmarshal(old, &prev); err != nil {
			return Event{}, fmt.Errorf("read record %q: %w", r.ID, err)
		}
		if prev.Name != r.Name || !prev.StartedAt.Equal(r.StartedAt) {
			return Event{}, fmt.Errorf("record %q: name and start time cannot change", r.ID)
		}
	}
	if err := backups.Put(id, body); err != nil {
		return Event{}, err
	}
	if err := tx.Bucket(bucketByTime).Put(timeKey(r.Name, r.StartedAt, r.ID), summarize(headOf(r))); err != nil {
		return Event{}, err
	}
	if isNew {
		if err := tx.Bucket(bucketByStart).Put(startKey(r.StartedAt, r.ID), nil); err != nil {
			return Event{}, err
		}
		if tocJSON != nil {
			// Content-addressed: the backups of one database mostly share
			// their entries (same schema, same OIDs), stored once.
			if err := tx.Bucket(bucketTOCs).Put(tocKey(digest(tocJSON)), tocJSON); err != nil {
				return Event{}, err
			}
		}
	}
	return appendEvent(tx, kind, r.ID, digest(body), detail)
}

// fill packs pages fuller than bbolt's default of half: keys mostly arrive
// in order (IDs and event numbers grow with time), so a page that splits
// is seldom written into again.
func fill(tx *bolt.Tx) {
	for _, b := range [][]byte{bucketBackups, bucketByTime, bucketByStart, bucketEvents} {
		tx.Bucket(b).FillPercent = 0.9
	}
}

// tocKey is where entries with the given digest are stored.
func tocKey(digest string) []byte { return []byte("b3:" + digest) }

// tocEntries returns the stored TOC entries of a backup: by their digest
// (shared), or under the backup's ID (catalogs before entries were shared).
func tocEntries(tx *bolt.Tx, id []byte, digest string) (raw []byte, shared bool) {
	b := tx.Bucket(bucketTOCs)
	if b == nil {
		return nil, false
	}
	if digest != "" {
		if raw := b.Get(tocKey(digest)); raw != nil {
			return raw, true
		}
	}
	return b.Get(id), false
}

// Get returns the record with the given ID, or an error matching ErrNotFound.
func (c *Catalog) Get(id string) (*Record, error) {
	var r *Record
	err := c.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBackups).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		var err error
		r, err = decode(v)
		return err
	})
	return r, err
}

// Entries returns the TOC entries stored with a backup, after checking them
// against the digest in its record. A record made before pgattest stored
// entries has none: the error matches ErrNoEntries.
func (c *Catalog) Entries(id string) ([]TOCEntry, error) {
	var out []TOCEntry
	err := c.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBackups).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		r, err := decode(v)
		if err != nil {
			return err
		}
		raw, _ := tocEntries(tx, []byte(id), r.TOC.EntriesBLAKE3)
		switch {
		case r.TOC.EntriesBLAKE3 == "" && raw == nil:
			return fmt.Errorf("%w: backup %s was recorded without them", ErrNoEntries, id)
		case r.TOC.EntriesBLAKE3 == "" || raw == nil || digest(raw) != r.TOC.EntriesBLAKE3:
			return &BrokenLink{BackupID: id, What: "toc entries", Expected: r.TOC.EntriesBLAKE3, Found: digestOrNone(raw)}
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("%w: toc entries of %s: %v", ErrDamagedRecord, id, err)
		}
		return nil
	})
	return out, err
}

func digestOrNone(b []byte) string {
	if b == nil {
		return "none"
	}
	return digest(b)
}

func decode(v []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamagedRecord, err)
	}
	return &r, nil
}

// timeKey is name 0x00 BE(start nanos) id: one name's backups in time order.
func timeKey(name string, t time.Time, id string) []byte {
	k := make([]byte, 0, len(name)+1+8+len(id))
	k = append(k, name...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, nanos(t))
	return append(k, id...)
}

// startKey is BE(start nanos) id: all backups in time order.
func startKey(t time.Time, id string) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), nanos(t))
	return append(k, id...)
}

// nanos maps a time to an unsigned, order-preserving number (times before
// 1970 are not backups; they clamp to 0).
func nanos(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// lockHolder finds the pid holding a flock on path, from /proc/locks (Linux);
// 0 when unknown.
func lockHolder(path string) int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	ino := strconv.FormatUint(st.Ino, 10)
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		// 1: FLOCK  ADVISORY  WRITE 12345 fd:01:131090 0 EOF
		if len(f) >= 6 && f[1] == "FLOCK" {
			parts := strings.Split(f[5], ":")
			if len(parts) == 3 && parts[2] == ino {
				pid, _ := strconv.Atoi(f[4])
				if pid != os.Getpid() {
					return pid
				}
			}
		}
	}
	return 0
}
