package catalog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AsOf returns the newest backup of name whose last proof passed (status
// verified) and whose dump started at or before t. It is one cursor seek,
// then a step back over any newer failed or unproven backups. When none
// qualifies, the error matches ErrNotFound and is a *NoneAsOfError that
// names the oldest proven backup, if any.
func (c *Catalog) AsOf(name string, t time.Time) (*Record, error) {
	var found *Record
	var oldest *Record
	err := c.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(name), 0)
		backups := tx.Bucket(bucketBackups)
		cur := tx.Bucket(bucketByTime).Cursor()
		// Seek to the first key after t; everything before it started ≤ t.
		after := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), nanos(t)+1)
		k, _ := cur.Seek(after)
		if k == nil {
			k, _ = cur.Last()
		} else {
			k, _ = cur.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Prev() {
			id := k[len(prefix)+8:]
			r, err := decode(backups.Get(id))
			if err != nil {
				return fmt.Errorf("record %q: %w", id, err)
			}
			if r.StartedAt.After(t) {
				continue // same nanosecond bucket edge: never newer than t
			}
			if r.Proven() {
				found = r
				return nil
			}
		}
		// Nothing at or before t: find the oldest proven one for the message.
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			r, err := decode(backups.Get(k[len(prefix)+8:]))
			if err == nil && r.Proven() {
				oldest = r
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, &NoneAsOfError{Name: name, At: t, Oldest: oldest}
	}
	return found, nil
}

// NoneAsOfError says no proven backup of Name stood at At.
type NoneAsOfError struct {
	Name   string
	At     time.Time
	Oldest *Record // the oldest proven backup of Name, nil if none at all
}

func (e *NoneAsOfError) Error() string {
	if e.Oldest == nil {
		return fmt.Sprintf("no proven backup of %q in the catalog", e.Name)
	}
	return fmt.Sprintf("no proven backup of %q started at or before %s; the oldest proven one is %s from %s",
		e.Name, e.At.UTC().Format(time.RFC3339), e.Oldest.ID, e.Oldest.StartedAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NoneAsOfError) Is(target error) bool { return target == ErrNotFound }

// Query selects records for List. Zero fields do not filter.
type Query struct {
	Name   string
	Since  time.Time // started at or after
	Until  time.Time // started at or before
	Status string
	Limit  int // at most this many, newest first; 0 = all
}

// List returns the records matching q, newest first.
func (c *Catalog) List(q Query) ([]*Record, error) {
	var out []*Record
	err := c.view(func(tx *bolt.Tx) error {
		backups := tx.Bucket(bucketBackups)
		var prefix []byte
		var cur *bolt.Cursor
		if q.Name != "" {
			prefix = append([]byte(q.Name), 0)
			cur = tx.Bucket(bucketByTime).Cursor()
		} else {
			cur = tx.Bucket(bucketByStart).Cursor()
		}
		var k []byte
		if !q.Until.IsZero() {
			k, _ = cur.Seek(binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), nanos(q.Until)+1))
			if k == nil {
				k, _ = cur.Last()
			} else {
				k, _ = cur.Prev()
			}
		} else if prefix != nil {
			// Last key with this prefix: seek past it, step back.
			k, _ = cur.Seek(append(append([]byte(nil), q.Name...), 1))
			if k == nil {
				k, _ = cur.Last()
			} else {
				k, _ = cur.Prev()
			}
		} else {
			k, _ = cur.Last()
		}
		since := uint64(0)
		if !q.Since.IsZero() {
			since = nanos(q.Since)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Prev() {
			ts := binary.BigEndian.Uint64(k[len(prefix):])
			if ts < since {
				break
			}
			r, err := decode(backups.Get(k[len(prefix)+8:]))
			if err != nil {
				return fmt.Errorf("record %q: %w", k[len(prefix)+8:], err)
			}
			if !q.Until.IsZero() && r.StartedAt.After(q.Until) {
				continue
			}
			if q.Status != "" && r.Status != q.Status {
				continue
			}
			out = append(out, r)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// firstStart returns when the oldest backup of name started, read from the
// time index alone.
func (c *Catalog) firstStart(name string) (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := c.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(name), 0)
		k, _ := tx.Bucket(bucketByTime).Cursor().Seek(prefix)
		if k != nil && bytes.HasPrefix(k, prefix) && len(k) >= len(prefix)+8 {
			t, ok = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefix):]))).UTC(), true
		}
		return nil
	})
	return t, ok, err
}

// Names returns every backup name in the catalog, sorted.
func (c *Catalog) Names() ([]string, error) {
	var names []string
	err := c.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketByTime).Cursor()
		for k, _ := cur.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("malformed index key %q", k)
			}
			name := string(k[:i])
			names = append(names, name)
			// Jump past every key of this name.
			k, _ = cur.Seek(append([]byte(name), 1))
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// Resolve returns the record whose ID is id, or else the only record whose ID
// starts with id (as git resolves a short hash). Several matches are an
// error that names a few of them.
func (c *Catalog) Resolve(id string) (*Record, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty ID", ErrNotFound)
	}
	var matches []string
	var r *Record
	err := c.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBackups)
		if v := b.Get([]byte(id)); v != nil {
			var err error
			r, err = decode(v)
			return err
		}
		cur := b.Cursor()
		for k, v := cur.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, v = cur.Next() {
			matches = append(matches, string(k))
			if len(matches) == 1 {
				var err error
				if r, err = decode(v); err != nil {
					return err
				}
			}
			if len(matches) > 3 {
				break
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case len(matches) > 1:
		return nil, fmt.Errorf("%w: %q matches several backups (%s…); give more of the ID", ErrAmbiguous, id, strings.Join(matches[:min(3, len(matches))], ", "))
	case r == nil:
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return r, nil
}
