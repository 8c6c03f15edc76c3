package testenv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The server log of a throwaway cluster is written by its logging
// collector in CSV (log_destination csvlog): every message with its
// severity and SQLSTATE in fields of their own. The clients pgattest runs
// (pg_restore) print a server's error without its SQLSTATE, and what went
// wrong is told by its code, not its words. CSV quotes what a message
// holds, so the archive's code, which may put any text, newlines included,
// into a message (RAISE WARNING, a value in an error), cannot forge a line
// of the log.

// csvLog is where the logging collector writes (fastSettings).
const csvLog = "log/postgresql.csv"

// CSV log fields, 0-based, the same in PostgreSQL 14 to 18.
const (
	csvUser        = 1
	csvSeverity    = 11
	csvState       = 12
	csvMessage     = 13
	csvContext     = 18
	csvLocation    = 21 // with log_error_verbosity verbose: "function, file.c:line"
	csvBackendType = 23
)

// LogError is an error the server logged, from its own fields.
type LogError struct {
	Severity string // ERROR, FATAL, PANIC
	State    string // SQLSTATE
	Message  string
	Context  string // the CONTEXT, one frame per line, innermost first
	// Location is where in the server the error was raised, "function,
	// file.c:line": a PL/pgSQL RAISE is exec_stmt_raise in pl_exec.c.
	Location string
}

// LastError returns the last error the server logged for sessions of
// user: the session's own user, which no code can change, so another
// session's, or a message's text, cannot stand in for it. With pg_restore
// --exit-on-error, the error that stopped it.
func (c *Cluster) LastError(user string) (LogError, bool) {
	var e LogError
	found := false
	c.scanLog(func(rec []string) {
		if len(rec) <= csvLocation || rec[csvUser] != user {
			return
		}
		switch rec[csvSeverity] {
		case "ERROR", "FATAL", "PANIC":
			e = LogError{Severity: rec[csvSeverity], State: rec[csvState], Message: rec[csvMessage], Context: rec[csvContext], Location: rec[csvLocation]}
			found = true
		}
	})
	return e, found
}

// Crash returns the last message in which the postmaster reports that one
// of its processes was terminated by a signal ("server process (PID 123) was
// terminated by signal 9: Killed"), with the signal's number; "", 0 when
// none was.
func (c *Cluster) Crash() (line string, signal int) {
	c.scanLog(func(rec []string) {
		// The postmaster's own: a backend's code may RAISE LOG any text.
		if rec[csvSeverity] != "LOG" || len(rec) <= csvBackendType || rec[csvBackendType] != "postmaster" {
			return
		}
		if m := crashRE.FindStringSubmatch(rec[csvMessage]); m != nil {
			line = rec[csvMessage]
			signal, _ = strconv.Atoi(m[1])
		}
	})
	return line, signal
}

var crashRE = regexp.MustCompile(`^[a-z ]+process \(PID \d+\) was terminated by signal (\d+)`)

// PanicState returns the SQLSTATE of the last PANIC the server logged (a
// process that could not write its WAL to a full disk, say), or "". No
// code of a database's can raise a PANIC.
func (c *Cluster) PanicState() string {
	state := ""
	c.scanLog(func(rec []string) {
		if rec[csvSeverity] == "PANIC" {
			state = rec[csvState]
		}
	})
	return state
}

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

// scanLog calls fn on every record of the server's CSV log. The log may be
// large (the archive's code can log warnings): it is read as it streams.
func (c *Cluster) scanLog(fn func(rec []string)) {
	f, err := os.Open(filepath.Join(c.DataDir, csvLog))
	if err != nil {
		return
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				continue // a line cut short by a full disk, say
			}
			return
		}
		if len(rec) > csvMessage {
			fn(rec)
		}
	}
}

// csvTail is the last n messages of the CSV log, "SEVERITY:  message".
func (c *Cluster) csvTail(n int) string {
	var last []string
	c.scanLog(func(rec []string) {
		last = append(last, fmt.Sprintf("%s:  %s", rec[csvSeverity], rec[csvMessage]))
		if len(last) > n {
			last = last[1:]
		}
	})
	return lastLines(strings.Join(last, "\n"), n)
}
