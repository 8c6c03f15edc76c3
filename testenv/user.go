package testenv

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// runAs is the system user that runs initdb and postgres when this process is
// root (both refuse to run as root). Nil means "this process's own user".
type runAs struct {
	name     string
	uid, gid int
}

// serverUser returns who runs the server: nil when not root, else the
// "postgres" system user (PGATTEST_SERVER_USER overrides the name).
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("PGATTEST_SERVER_USER")
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, the server must run as the %q system user, but: %w "+
			"(install the postgresql package, which creates it, or run as an ordinary user)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &runAs{name: name, uid: uid, gid: gid}, nil
}

// attr returns the process attributes for a server-side child: its own
// process group (a Ctrl-C at the terminal reaches pgattest, which then shuts
// the server down in order, not the server directly), the server user when
// root, and a parent-death signal so a server never outlives a killed owner.
func (r *runAs) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if r != nil {
		a.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}
	}
	return a
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
