package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// ServerUserName is the system user that runs throwaway servers when
// pgattest runs as root (initdb and postgres refuse root). It is pgattest's
// own, created on first use if missing, and owns nothing but those
// clusters: not "postgres", whose files include the host's real clusters.
// PGATTEST_SERVER_USER names another.
const ServerUserName = "pgattest"

// runAs is the system user that runs initdb and postgres when this process is
// root (both refuse to run as root). Nil means "this process's own user".
type runAs struct {
	name     string
	uid, gid int
}

var (
	serverUserOnce sync.Once
	serverUserVal  *runAs
	serverUserErr  error
)

// serverUser returns who runs the server: nil when not root, else
// pgattest's system user (PGATTEST_SERVER_USER overrides the name), which is
// created when missing.
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("PGATTEST_SERVER_USER")
	if name != "" {
		return lookupServerUser(name, false)
	}
	serverUserOnce.Do(func() { serverUserVal, serverUserErr = lookupServerUser(ServerUserName, true) })
	return serverUserVal, serverUserErr
}

func lookupServerUser(name string, create bool) (*runAs, error) {
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && create {
		if err = createSystemUser(name); err == nil {
			u, err = user.Lookup(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, throwaway servers run as the %q system user, but: %w "+
			"(create it with: useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin %s; or run as an ordinary user)",
			name, err, name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("throwaway servers cannot run as %q: it is root (PGATTEST_SERVER_USER must name an ordinary user)", name)
	}
	return &runAs{name: name, uid: uid, gid: gid}, nil
}

// createSystemUser adds a system user and group of that name, without a
// home or a login shell. Another process adding it at the same moment is
// not an error.
func createSystemUser(name string) error {
	var tries [][]string
	if p, err := exec.LookPath("useradd"); err == nil {
		tries = append(tries, []string{p, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--comment", "pgattest throwaway PostgreSQL servers", name})
	}
	if p, err := exec.LookPath("adduser"); err == nil { // BusyBox, Alpine
		tries = append(tries, []string{p, "-S", "-D", "-H", "-h", "/nonexistent", "-s", "/sbin/nologin", name})
	}
	if len(tries) == 0 {
		return fmt.Errorf("user %q does not exist and neither useradd nor adduser is installed", name)
	}
	var last error
	for _, argv := range tries {
		var out bytes.Buffer
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = ToolEnv()
		cmd.Stdout, cmd.Stderr = &out, &out
		if last = cmd.Run(); last == nil {
			return nil
		}
		if _, err := user.Lookup(name); err == nil {
			return nil // made by a concurrent run
		}
		last = fmt.Errorf("%s: %v: %s", argv[0], last, bytes.TrimSpace(out.Bytes()))
	}
	return fmt.Errorf("create system user %q: %w", name, last)
}

// attr returns the process attributes for a server-side child: its own
// process group (a Ctrl-C at the terminal reaches pgattest, which then shuts
// the server down in order, not the server directly), the server user when
// root, and a parent-death signal so a server never outlives a killed owner.
func (r *runAs) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if r != nil {
		a.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: []uint32{}}
	}
	return a
}

// Name is the system user's name ("" for nil: this process's user).
func (r *runAs) Name() string {
	if r == nil {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return strconv.Itoa(os.Getuid())
	}
	return r.name
}

// own gives path to the server user (no-op when not root).
func (r *runAs) own(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Lchown(path, r.uid, r.gid); err != nil {
		return fmt.Errorf("give %q to user %s: %w", path, r.name, err)
	}
	return nil
}

// env returns the environment for a server-side child: HOME and USER fit the
// user that runs it, and no PG* variable of ours leaks into the server.
func (r *runAs) env() []string {
	env := []string{"LC_ALL=C", "LANG=C", "PATH=" + os.Getenv("PATH")}
	if r != nil {
		env = append(env, "HOME=/", "USER="+r.name)
	} else {
		env = append(env, "HOME="+os.Getenv("HOME"), "USER="+os.Getenv("USER"))
	}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// SystemUser is who runs a throwaway server's processes: pgattest's system
// user when this process is root, else this process's own user. Helpers
// that start other servers beside a cluster (a pooler in tests) run them
// the same way.
type SystemUser struct{ r *runAs }

// ServerSystemUser returns the user throwaway servers run as (creating
// pgattest's system user when root and it is missing).
func ServerSystemUser() (SystemUser, error) {
	r, err := serverUser()
	return SystemUser{r}, err
}

// Name is the user's name.
func (u SystemUser) Name() string { return u.r.Name() }

// Own gives path to the user (nothing to do when not root).
func (u SystemUser) Own(path string) error { return u.r.own(path) }

// ProcAttr returns the attributes to start a process as the user: its own
// process group, the user when root, a parent-death signal.
func (u SystemUser) ProcAttr() *syscall.SysProcAttr { return u.r.attr() }

// Env returns the environment for such a process.
func (u SystemUser) Env() []string { return u.r.env() }

// reachable reports whether the server user can enter dir: every folder on
// the way is searchable by others, or its own.
func (a *runAs) reachable(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return false
		}
		if st.Mode&0o001 == 0 && int(st.Uid) != a.uid && !(int(st.Gid) == a.gid && st.Mode&0o010 != 0) {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// clusterParent is where a cluster's folder goes: parent, unless the
// server user cannot reach it (a private TMPDIR of root's), then /tmp.
func clusterParent(parent string, as *runAs) (string, error) {
	if as == nil || as.reachable(parent) {
		return parent, nil
	}
	if as.reachable("/tmp") {
		return "/tmp", nil
	}
	return "", fmt.Errorf("the throwaway server runs as %q, which cannot reach %s (nor /tmp): set TMPDIR to a folder it can enter", as.name, parent)
}

// toolVars are the caller's variables a child of pgattest may see: where
// programs and libraries are, whose home it is (libpq's ~/.postgresql
// certificates), the temp folder, the time zone and Kerberos' ticket cache.
// Nothing else passes: no PG* variable (a child connects to what pgattest
// resolved and checked, given whole on its command line), no DATABASE_URL,
// no credential of the object store, no variable of pgattest's own.
var toolVars = []string{"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LD_LIBRARY_PATH", "KRB5CCNAME", "KRB5_CONFIG"}

// ToolEnv is the environment for a program pgattest runs: toolVars from
// the caller's, messages in English (they are parsed), then extra (a
// password for the one child that connects with it).
func ToolEnv(extra ...string) []string {
	var env []string
	for _, k := range toolVars {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, "LC_ALL=C", "LANG=C", "LANGUAGE=C")
	return append(env, extra...)
}
