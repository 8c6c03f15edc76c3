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
