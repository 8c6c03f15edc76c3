package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ChildProcess returns the pid of a process named comm whose parent is pid,
// or 0: for tests that kill or watch a tool pgattest started.
func ChildProcess(pid int, comm string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.HasSuffix(s[:i+1], " ("+comm+")") {
			continue
		}
		var state string
		var ppid, self int
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		fmt.Sscanf(s, "%d", &self)
		if ppid == pid {
			return self
		}
	}
	return 0
}

// WaitGone waits up to d for pid to exit (a zombie counts as gone) and
// reports whether it did.
func WaitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if s := string(b); strings.Contains(s[strings.LastIndexByte(s, ')'):], ") Z") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ProcessWith returns the pid of a process whose command line holds every
// one of words (the server's backends show their role, database and
// command there: "postgres: pgattest_restore_… pgattest_proof [local]
// COPY"), or 0.
func ProcessWith(words ...string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	self := os.Getpid()
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		var pid int
		fmt.Sscanf(strings.TrimPrefix(p, "/proc/"), "%d", &pid)
		if all && pid != self {
			return pid
		}
	}
	return 0
}
