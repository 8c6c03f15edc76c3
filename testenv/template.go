package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Superuser is the name tests give the superuser of their source clusters,
// as on a stock server. The proof's clusters never use it: each gets a
// random name (Options.Superuser).
const Superuser = "postgres"

// templateSuperuser is the superuser initdb makes in a template; every
// cluster renames it (Options.Superuser).
const templateSuperuser = "pgattest_template"

// CacheDir is where pgattest keeps initdb templates (and benchmarks their
// generated databases): PGATTEST_CACHE_DIR, else $XDG_CACHE_HOME/pgattest
// or ~/.cache/pgattest, else a folder in the temp folder.
func CacheDir() string {
	if d := os.Getenv("PGATTEST_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "pgattest")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pgattest-cache-%d", os.Getuid()))
}

// template returns the folder of an initialized data directory for tc,
// running initdb the first time. Creation is locked, so concurrent callers in
// one or many processes run initdb once and all wait for it.
func template(ctx context.Context, tc Toolchain, cacheDir string, as *runAs) (string, error) {
	sum := sha256.Sum256([]byte(tc.Dir + "\x00" + tc.Version.Raw))
	key := fmt.Sprintf("pg%d-%s-v2", tc.Version.Major, hex.EncodeToString(sum[:6]))
	base := filepath.Join(cacheDir, "templates")
	final := filepath.Join(base, key)
	if isTemplate(final) {
		return final, nil
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("create template cache %q: %w", base, err)
	}
	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isTemplate(final) { // made while we waited
		return final, nil
	}
	os.RemoveAll(final) // half-made by a killed process

	// initdb runs as the server user, who may not be able to enter our
	// cache folder (root's home is 0700): run it in a scratch folder in the
	// temp folder, then copy the result into the cache.
	sc, err := initdbScratch(ctx, tc, as)
	if err != nil {
		return "", err
	}
	defer sc.Remove()
	data := filepath.Join(sc.Dir, "data")
	tmp := final + ".tmp"
	os.RemoveAll(tmp)
	if err := copyTree(filepath.Join(tmp, "data"), data, nil); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("copy new template into cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "ready"), []byte(tc.Version.Raw+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("install template: %w", err)
	}
	return final, nil
}

// initdbScratch runs initdb into SCRATCH/data, a scratch folder of its own
// in the temp folder (which the caller removes), as the server user.
func initdbScratch(ctx context.Context, tc Toolchain, as *runAs) (*Scratch, error) {
	sc, err := NewTempScratch("pgattest-initdb-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Scratch, error) { sc.Remove(); return nil, err }
	if err := os.Chmod(sc.Dir, 0o700); err != nil {
		return fail(err)
	}
	if err := as.own(sc.Dir); err != nil {
		return fail(err)
	}
	data := filepath.Join(sc.Dir, "data")
	args := []string{"-D", data, "-U", templateSuperuser, "-A", "trust", "-E", "UTF8", "--locale=C", "-N"}
	if tc.Version.Major >= 14 {
		args = append(args, "--no-instructions")
	}
	cmd := exec.CommandContext(ctx, tc.Path("initdb"), args...)
	cmd.SysProcAttr = as.attr()
	cmd.Env = as.env()
	cmd.Dir = sc.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fail(fmt.Errorf("initdb (%s) failed: %w\n%s", tc, err, lastLines(out.String(), 8)))
	}
	if err := os.WriteFile(filepath.Join(data, superuserFile), []byte(templateSuperuser+"\n"), 0o600); err != nil {
		return fail(err)
	}
	return sc, nil
}

func isTemplate(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "ready"))
	return err == nil
}

// lockFile takes an exclusive flock on path, polling so ctx can cancel the
// wait. The returned function releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %q: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// copyTree copies the folder src to dst (which must not exist), keeping
// modes, and gives everything to as when not nil. Regular files go through
// io.Copy, which uses copy_file_range on Linux (and so reflinks where the
// file system can).
func copyTree(dst, src string, as *runAs) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := CopyFile(target, p, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets and the like: not part of a data directory
		}
		return as.own(target)
	})
}

// CopyFile copies src to a new file dst with mode perm; it refuses to
// replace a file that exists.
func CopyFile(dst, src string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lastLines returns the last n non-empty lines of s, each indented, for
// quoting a tool's output in an error.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var keep []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	for i := range keep {
		keep[i] = "    " + keep[i]
	}
	return strings.Join(keep, "\n")
}
