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

// DescendantWith returns the pid of a process below this one (a child, a
// child's child …) whose command line holds every one of words (the
// server's backends show their role, database and command there:
// "postgres: pgattest_restore_… pgattest_proof [local] COPY"), or 0. Only
// descendants: tests of other packages run at the same time.
func DescendantWith(words ...string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	parent := map[int]int{}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var pid, ppid int
		var state string
		fmt.Sscanf(s, "%d", &pid)
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		parent[pid] = ppid
	}
	self := os.Getpid()
	below := func(pid int) bool {
		for n := 0; pid > 1 && n < 64; n++ {
			if pid = parent[pid]; pid == self {
				return true
			}
		}
		return false
	}
	for pid := range parent {
		if !below(pid) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return pid
		}
	}
	return 0
}
