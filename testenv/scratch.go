package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Scratch is a folder that belongs to a live process. It holds an open,
// flock-ed lock file; when the process dies, even by kill -9, the kernel drops
// the lock, and the next SweepScratch in the same parent removes the folder.
// Throwaway clusters and the pipeline's staging folders are Scratch folders,
// so a killed run never leaves anything behind for long and never blocks the
// next one.
type Scratch struct {
	Dir  string
	lock *os.File
}

const scratchLock = ".owner.lock"

// scratchGrace protects a folder that another process is creating right now
// (made, but its lock file not yet in place) from a concurrent sweep.
const scratchGrace = time.Minute

// NewScratch makes a new folder parent/prefix<random>, mode 0700, and locks it
// for this process.
func NewScratch(parent, prefix string) (*Scratch, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create folder %q: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("create scratch folder in %q: %w", parent, err)
	}
	// Lock under a temporary name, then rename: a sweeper only looks at the
	// final name, so it can never grab the lock in the moment between the
	// file's creation and our flock.
	tmp := filepath.Join(dir, scratchLock+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			err = os.Rename(tmp, filepath.Join(dir, scratchLock))
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lock scratch folder %q: %w", dir, err)
	}
	return &Scratch{Dir: dir, lock: f}, nil
}

// NewTempScratch is NewScratch in the temp folder, after removing the
// folders with the same prefix that killed processes left there.
func NewTempScratch(prefix string) (*Scratch, error) {
	SweepScratch(os.TempDir(), prefix, nil)
	return NewScratch(os.TempDir(), prefix)
}

// Remove deletes the folder and everything in it, then drops the lock.
func (s *Scratch) Remove() error {
	if s == nil || s.lock == nil {
		return nil
	}
	err := os.RemoveAll(s.Dir)
	s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("remove %q: %w", s.Dir, err)
	}
	return nil
}

// Release drops the lock and leaves the folder in place: its contents have
// been moved out, or a caller wants to look at them.
func (s *Scratch) Release() {
	if s != nil && s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// SweepScratch removes the folders parent/prefix* whose owner is gone. Before
// a folder is removed, cleanup (if not nil) is called on it, for example to
// stop a server still running there. It returns the folders it removed.
// A missing parent is not an error.
func SweepScratch(parent, prefix string, cleanup func(dir string)) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read folder %q: %w", parent, err)
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		lock, gone := ownerGone(dir)
		if !gone {
			continue
		}
		if cleanup != nil {
			cleanup(dir)
		}
		if err := os.RemoveAll(dir); err == nil {
			removed = append(removed, dir)
		}
		if lock != nil {
			lock.Close()
		}
	}
	return removed, nil
}

// ownerGone reports whether the process that made dir has died. Taking the
// lock proves it; the caller holds the returned lock file (nil for a folder
// that never had one) until the folder is gone, so that two sweepers never
// clean the same folder at once.
func ownerGone(dir string) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, scratchLock), os.O_RDWR, 0)
	if err != nil {
		// No lock file: either being created right now, or made by a
		// process killed before it locked. Only the second grows old.
		fi, serr := os.Stat(dir)
		return nil, errors.Is(err, fs.ErrNotExist) && serr == nil && time.Since(fi.ModTime()) > scratchGrace
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
