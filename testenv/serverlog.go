package testenv

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// The server log of a throwaway cluster carries each message's SQLSTATE
// (log_line_prefix "%m [%p] %e "): the clients pgattest runs (pg_restore)
// print a server's error without it, and what went wrong is told by its
// code, not its words.

// ErrorState returns the SQLSTATE the server logged with an error a client
// reported: msg holds the server's "ERROR:  text" or "FATAL:  text" as the
// client printed it, with whatever the client put before it. It returns ""
// when msg holds no server error or the log does not have it.
func (c *Cluster) ErrorState(msg string) string {
	sev, text := serverMessage(msg)
	if sev == "" {
		return ""
	}
	want := " " + sev + ":  " + text
	state := ""
	c.scanLog(func(line string) {
		i := strings.Index(line, want)
		if i < 0 || !strings.HasSuffix(line, want) {
			return
		}
		f := strings.Fields(line[:i])
		if len(f) > 0 && sqlstateRE.MatchString(f[len(f)-1]) {
			state = f[len(f)-1]
		}
	})
	return state
}

var sqlstateRE = regexp.MustCompile(`^[0-9A-Z]{5}$`)

// serverMessage finds a server's message in a client's line: its severity
// and its first line of text.
func serverMessage(msg string) (severity, text string) {
	for _, sev := range []string{"ERROR", "FATAL", "PANIC"} {
		if _, after, ok := strings.Cut(msg, sev+":  "); ok {
			text, _, _ = strings.Cut(after, "\n")
			return sev, strings.TrimSpace(text)
		}
	}
	return "", ""
}

// Crash returns the last line in which the server reports that one of its
// processes was terminated by a signal ("server process (PID 123) was
// terminated by signal 9: Killed"), with the signal's number; "", 0 when
// none was.
func (c *Cluster) Crash() (line string, signal int) {
	c.scanLog(func(l string) {
		if m := crashRE.FindStringSubmatch(l); m != nil {
			line = strings.TrimSpace(m[1])
			signal, _ = strconv.Atoi(m[2])
		}
	})
	return line, signal
}

var crashRE = regexp.MustCompile(`LOG:  (.* was terminated by signal (\d+).*)$`)

// Exited reports whether the server has stopped (was stopped, or died).
func (c *Cluster) Exited() bool {
	if c.exited == nil {
		return false
	}
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// scanLog calls fn on every line of the server log. The log may be large
// (the archive's code can log warnings): it is read as it streams, and
// lines past 1 MiB end the scan.
func (c *Cluster) scanLog(fn func(line string)) {
	f, err := os.Open(c.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
}
