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
// (MarksHome: it outlives a reboot) serves every repository; ns (the
// repository) keeps their keys apart.
type keyMarks struct {
	dir string // 0700, this user's
	ns  string
}

// MarksHome is this user's folder of key marks: $XDG_STATE_HOME/pgattest/marks,
// else ~/.local/state/pgattest/marks (state that must outlive a reboot: a
// mark in the temp folder, which a reboot may empty, would leave the archive
// of a run killed at completion said but not set aside), else, with no home,
// pgattest-marks-UID in the temp folder.
func MarksHome() string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "pgattest", "marks")
	}
	if h, err := os.UserHomeDir(); err == nil && filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "pgattest", "marks")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pgattest-marks-%d", os.Getuid()))
}

func (m keyMarks) path(key string) string {
	sum := sha256.Sum256([]byte(m.ns + "\x00" + key))
	return filepath.Join(m.dir, "complete-"+hex.EncodeToString(sum[:12])+".lock")
}

// own makes the marks folder (0700) and checks it is this user's own: a
// folder another user made first (in a shared /tmp), or a link, would let
// them hold or plant marks.
func (m keyMarks) own() error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(m.dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("the folder of this machine's key marks, %s, is not this user's own 0700 folder (%s, mode %04o): remove it, or set XDG_STATE_HOME elsewhere", m.dir, describeMode(fi), fi.Mode().Perm())
	}
	return nil
}

func describeMode(fi os.FileInfo) string {
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return "a link"
	case !fi.IsDir():
		return "not a folder"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("owned by uid %d", st.Uid)
	}
	return "a folder"
}

// hold marks key as being completed by this process until release:
// release(true) forgets it; release(false) lets it go as a killed
// process would (the next run's KeyState finds it dead).
func (m keyMarks) hold(key string) (release func(done bool), err error) {
	if err := m.own(); err != nil {
		return nil, err
	}
	p := m.path(key)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("hold %s: %w", key, err)
	}
	return func(done bool) {
		if done {
			os.Remove(p)
		}
		f.Close()
	}, nil
}

// state says whether a process of this machine is completing key now
// (live), or was and died (dead); neither when none here held it. A dead
// mark is taken over by the caller until done, which forgets it when the
// caller dealt with the key (else the next run finds it again).
func (m keyMarks) state(key string) (live, dead bool, done func(forget bool)) {
	if m.own() != nil {
		return false, false, func(bool) {}
	}
	p := m.path(key)
	f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW, 0)
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
