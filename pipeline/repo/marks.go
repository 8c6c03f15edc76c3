package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// keyMarks are the files of this machine that say a process is completing
// a key (an archive whose manifest is not stored yet): flock-ed by that
// process while it lives, left free when it is killed. One folder per user
// serves every repository; ns (the repository) keeps their keys apart.
type keyMarks struct {
	dir string // 0700, this user's
	ns  string
}

func (m keyMarks) path(key string) string {
	sum := sha256.Sum256([]byte(m.ns + "\x00" + key))
	return filepath.Join(m.dir, "complete-"+hex.EncodeToString(sum[:12])+".lock")
}

// hold marks key as being completed by this process until release, which
// forgets it.
func (m keyMarks) hold(key string) (release func(), err error) {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	p := m.path(key)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("hold %s: %w", key, err)
	}
	return func() { os.Remove(p); f.Close() }, nil
}

// state says whether a process of this machine is completing key now
// (live), or was and died (dead); neither when none here held it. A dead
// mark is taken over by the caller until done, which forgets it when the
// caller dealt with the key (else the next run finds it again).
func (m keyMarks) state(key string) (live, dead bool, done func(forget bool)) {
	p := m.path(key)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return false, false, func(bool) {}
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		f.Close()
		return true, false, func(bool) {}
	}
	return false, true, func(forget bool) {
		if forget {
			os.Remove(p)
		}
		f.Close()
	}
}
