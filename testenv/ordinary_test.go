package testenv_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestOrdinaryUser runs the non-root path for real when the tests run as
// root: a copy of this test binary, run as "nobody", starts and stops a
// cluster with initdb and postgres running as nobody (the test binary's
// helper mode "roundtrip", in TestMain). As an ordinary user it runs the
// helper as itself.
func TestOrdinaryUser(t *testing.T) {
	pgtest.Require(t, testenv.Want{})
	if os.Geteuid() != 0 {
		self, _ := os.Executable()
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), "PGATTEST_TESTENV_HELPER=roundtrip")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		return
	}
	work, out, err := pgtest.RunAsNobody(t, []string{"-test.run=^$"}, []string{"PGATTEST_TESTENV_HELPER=roundtrip"})
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	nobody, _ := user.Lookup("nobody")
	uid, _ := strconv.Atoi(nobody.Uid)
	// The template was made by nobody, in nobody's cache.
	tmpls, _ := filepath.Glob(filepath.Join(work, "cache", "pgattest", "templates", "pg*", "data", "PG_VERSION"))
	if len(tmpls) != 1 {
		t.Fatalf("want one template in nobody's cache, found %v", tmpls)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(tmpls[0], &st); err != nil || int(st.Uid) != uid {
		t.Errorf("template owned by uid %d, want nobody (%d): %v", st.Uid, uid, err)
	}
}
