package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// Sandbox keeps a child process off the network: it starts in a network
// namespace of its own, which has a loopback interface (down) and nothing
// else, so code that runs there (in the proof's server, or pg_restore)
// cannot reach any host, this one included, except through the Unix sockets
// of the file system. As root the kernel makes the namespace directly; an
// ordinary user needs unprivileged user namespaces (the child then also
// gets a user namespace that maps its own user only, and no capabilities).
// Where the kernel allows neither, the sandbox is off and Network says why.
type Sandbox struct {
	flags uintptr
	user  bool // also a user namespace (not root)
	why   string
}

var (
	sandboxOnce sync.Once
	sandboxVal  Sandbox
)

// NetworkSandbox returns the sandbox this machine allows, probing it once
// per process by starting probe (a program that exits at once, such as
// "postgres --version") in it.
func NetworkSandbox(probe string, args ...string) Sandbox {
	sandboxOnce.Do(func() { sandboxVal = probeSandbox(probe, args) })
	return sandboxVal
}

func probeSandbox(probe string, args []string) Sandbox {
	if os.Getenv("PGATTEST_NO_SANDBOX") == "1" {
		return Sandbox{why: "turned off by PGATTEST_NO_SANDBOX=1"}
	}
	s := Sandbox{flags: syscall.CLONE_NEWNET}
	if os.Geteuid() != 0 {
		s.flags |= syscall.CLONE_NEWUSER
		s.user = true
	}
	cmd := exec.Command(probe, args...)
	cmd.Env = ToolEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	s.Apply(cmd.SysProcAttr)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			return Sandbox{why: fmt.Sprintf("could not probe for network namespaces: %v", err)}
		}
		if errors.As(err, &ee) {
			return Sandbox{why: fmt.Sprintf("the probe %s %v failed in a network namespace: %v", probe, args, err)}
		}
		how := "a network namespace"
		if s.user {
			how = "unprivileged user and network namespaces"
		}
		return Sandbox{why: fmt.Sprintf("the kernel refused %s: %v", how, err)}
	}
	return s
}

// On reports whether children started with Apply get no network.
func (s Sandbox) On() bool { return s.flags != 0 }

// Network describes the network a sandboxed child has, for the record.
func (s Sandbox) Network() string {
	if s.On() {
		return "none (a network namespace of its own)"
	}
	return "the host's: " + s.why
}

// Apply sets the namespaces on a child's attributes (a no-op when off). An
// attribute's Credential (root handing the child to the server user) is
// kept: the namespace is made first, then the user switched.
func (s Sandbox) Apply(a *syscall.SysProcAttr) {
	if !s.On() {
		return
	}
	a.Cloneflags |= s.flags
	if s.user {
		uid, gid := os.Getuid(), os.Getgid()
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
}
