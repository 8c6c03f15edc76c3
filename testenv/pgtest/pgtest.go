// Package pgtest is what pgattest's tests use to run the real thing:
// throwaway clusters for a test (New) that skip when Postgres is missing
// and fail instead under PGATTEST_REQUIRE_PG=1 (Require), a real PgBouncer
// in front of one (NewBouncer), generated databases for benchmarks
// (Generate), server binaries with extra extensions (WithExtensions), the
// test binary re-run as "nobody" for the ordinary user's path
// (RunAsNobody), and helpers to watch child processes. testenv, which the
// pgattest binary links, is the runtime the proof uses; this package, and
// the testing package, stay out of the binary.
package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgattest/pgattest/testenv"
)

// RequirePGEnv is the environment variable that turns a missing Postgres
// into a test failure instead of a skip. CI sets it to 1.
const RequirePGEnv = "PGATTEST_REQUIRE_PG"

// Require returns the toolchain a test needs, or skips the test when none is
// installed — unless PGATTEST_REQUIRE_PG=1, where it fails instead.
func Require(tb testing.TB, w testenv.Want) testenv.Toolchain {
	tb.Helper()
	tc, err := testenv.Find(w)
	if err == nil {
		return tc
	}
	if errors.Is(err, testenv.ErrNotFound) && os.Getenv(RequirePGEnv) != "1" {
		tb.Skipf("skipping: %v (install the postgresql package; set %s=1 to fail instead)", err, RequirePGEnv)
	}
	tb.Fatalf("find postgres binaries: %v", err)
	return testenv.Toolchain{}
}

// New starts a throwaway cluster for a test and stops it when the test ends.
// It skips (or, under PGATTEST_REQUIRE_PG=1, fails) when Postgres is missing.
func New(tb testing.TB, opts ...testenv.Options) *testenv.Cluster {
	tb.Helper()
	var o testenv.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Toolchain.Dir == "" {
		o.Toolchain = Require(tb, testenv.Want{Tools: testenv.ServerTools, MinMajor: o.MinMajor, Dirs: o.BinDirs})
	}
	if o.Superuser == "" && o.Data == "" {
		o.Superuser = testenv.Superuser // a source as on a stock server
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testenv.Start(ctx, o)
	if err != nil {
		tb.Fatalf("start throwaway cluster: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			tb.Errorf("stop throwaway cluster: %v", err)
		}
	})
	return c
}

// NewBouncer starts PgBouncer in pool mode mode in front of c for a test and
// stops it when the test ends. A missing pgbouncer skips the test, or fails
// it under PGATTEST_REQUIRE_PG=1 (CI installs the package).
func NewBouncer(tb testing.TB, c *testenv.Cluster, mode string) *Bouncer {
	tb.Helper()
	if _, err := FindPgBouncer(); err != nil {
		if os.Getenv(RequirePGEnv) != "1" {
			tb.Skipf("skipping: %v; set %s=1 to fail instead", err, RequirePGEnv)
		}
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := StartBouncer(ctx, c, mode)
	if err != nil {
		tb.Fatalf("start pgbouncer: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Stop(); err != nil {
			tb.Errorf("stop pgbouncer: %v", err)
		}
	})
	return b
}

// NewExtensionToolchain returns a copy of the installed server binaries
// with extra extension files (see [WithExtensions]), removed when the test
// ends. It skips (or fails under PGATTEST_REQUIRE_PG=1) when Postgres or
// its pg_config is missing.
func NewExtensionToolchain(tb testing.TB, files map[string]string) testenv.Toolchain {
	tb.Helper()
	tc := Require(tb, testenv.Want{Tools: append([]string{"pg_config"}, testenv.ServerTools...)})
	root, err := os.MkdirTemp("", "pgattest-tree-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	ext, err := WithExtensions(tc, root, files)
	if err != nil {
		tb.Fatalf("copy the server binaries with extension files: %v", err)
	}
	return ext
}

// RunAsNobody runs this test binary again as the "nobody" user (a copy of
// it that nobody may execute, in a folder of its own), with args and env
// plus PATH, HOME, TMPDIR and XDG_CACHE_HOME set to a private folder of
// nobody's, which it returns with the combined output. Tests of the path an
// ordinary user takes use it when they run as root. It skips when there is
// no user nobody.
func RunAsNobody(tb testing.TB, args, env []string) (home string, out []byte, err error) {
	tb.Helper()
	nobody, lerr := user.Lookup("nobody")
	if lerr != nil {
		tb.Skipf("no user nobody to run the non-root path as: %v", lerr)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, derr := os.MkdirTemp("", "pgattest-nobody-")
	if derr != nil {
		tb.Fatal(derr)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, serr := os.Executable()
	if serr != nil {
		tb.Fatal(serr)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := testenv.CopyFile(bin, self, 0o755); err != nil {
		tb.Fatal(err)
	}
	home = filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	os.Chown(home, uid, gid)
	cmd := exec.Command(bin, args...)
	cmd.Dir = home
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + home,
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"), "LANG=C"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		Pdeathsig: syscall.SIGKILL}
	out, err = cmd.CombinedOutput()
	return home, out, err
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lastLines returns the last n non-empty lines of s, indented.
func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			keep = append(keep, "    "+l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}
