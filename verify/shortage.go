package verify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgattest/pgattest/testenv"
)

// A proof that stops because the machine ran short is no verdict on the
// archive. A failed proof is evidence (it tells an auditor that the archive
// does not restore, and exits 3), so a full disk, exhausted memory, too
// many connections (SQLSTATE class 53), a server shut down or killed, or a
// process of the proof killed by a signal must not be one: the proof could
// not run, the backup stays unverified, and the error says what ran short
// and where.

// ErrShortage is reported by a *ShortageError.
var ErrShortage = errors.New("the proof could not run to its end")

// Shortage kinds.
const (
	ShortDisk        = "disk"        // 53100, ENOSPC, EDQUOT
	ShortMemory      = "memory"      // 53200
	ShortConnections = "connections" // 53300
	ShortLimit       = "limit"       // 53400: a configuration limit
	ShortKilled      = "killed"      // a process of the proof was killed, or its server shut down
	ShortIO          = "io"          // 58030: the disk failed to read or write
)

// ShortageError: the proof stopped for a reason of the machine's, not the
// archive's. It is not evidence (ProofFailed false).
type ShortageError struct {
	Kind     string // ShortDisk, …
	SQLState string // the server's code, when it gave one
	// Folder is where the proof's files are: the throwaway cluster's
	// parent folder (the temp folder), or the folder pgattest's own write
	// failed in; Temp says it is where throwaway clusters live.
	Folder string
	Temp   bool
	// Free is the room left in Folder when the proof stopped and Size the
	// size of its disk (-1: not known); Need about what a proof of the
	// archive needs there (the source's size at backup; 0: not known).
	Free, Size, Need int64
	Err              error
}

func (e *ShortageError) Error() string {
	what := map[string]string{
		ShortDisk:        "the disk is full",
		ShortMemory:      "the proof's server ran out of memory",
		ShortConnections: "the proof's server had too many connections",
		ShortLimit:       "the proof's server reached a configured limit",
		ShortKilled:      "a process of the proof was stopped from outside",
		ShortIO:          "the disk failed to read or write",
	}[e.Kind]
	if e.Kind == ShortDisk && e.Folder != "" {
		what = fmt.Sprintf("the disk of %s is full", e.Folder)
	}
	return fmt.Sprintf("%s: %v", what, e.Err)
}
func (e *ShortageError) Unwrap() error     { return e.Err }
func (e *ShortageError) Is(t error) bool   { return t == ErrShortage }
func (e *ShortageError) ProofFailed() bool { return false }

// Hint says which folder filled, how much a proof needs, and how to give it
// room; or what else ran short.
func (e *ShortageError) Hint() string {
	switch e.Kind {
	case ShortDisk:
		var b strings.Builder
		if !e.Temp {
			fmt.Fprintf(&b, "the disk of %s is full", e.Folder)
			if e.Size >= 0 {
				fmt.Fprintf(&b, " (%s, %s free when the proof stopped)", sizeText(e.Size), sizeText(e.Free))
			}
			b.WriteString(": free space there. This is no verdict on the archive")
			return b.String()
		}
		fmt.Fprintf(&b, "the proof's throwaway Postgres keeps its data in %s (PGATTEST_PROOF_DIR, else the temp folder)", e.Folder)
		if e.Size >= 0 {
			fmt.Fprintf(&b, " (on a disk of %s, %s free when the proof stopped)", sizeText(e.Size), sizeText(e.Free))
		}
		if e.Need > 0 {
			fmt.Fprintf(&b, "; a proof of this archive needs more than %s there (the source database's size at backup, and ~50 MiB for the server itself)", sizeText(e.Need))
		}
		b.WriteString("; free space there, or set PGATTEST_PROOF_DIR (or TMPDIR) to a folder on a disk with room. This is no verdict on the archive")
		return b.String()
	case ShortMemory:
		return "free memory on this machine (or prove on one with more); this is no verdict on the archive"
	case ShortConnections, ShortLimit:
		return "something else used the proof's server, or its limits are too low for this archive; this is no verdict on the archive"
	case ShortIO:
		return "check the disk that holds the temp folder (dmesg, SMART); this is no verdict on the archive"
	default:
		return "something stopped the proof (an operator, a service manager, the kernel's out-of-memory killer: see dmesg); this is no verdict on the archive"
	}
}

// Shortage returns err as a *ShortageError when it says the machine ran
// short: for errors of the proof's that did not come through Prove or a
// Stream (a throwaway cluster that did not start). need is about what a
// proof of the archive needs on disk.
func Shortage(err error, need int64) error { return shortage(err, nil, "", need) }

// shortage returns err as a *ShortageError when it says the machine ran
// short (see the kinds above), else err itself. c is the proof's cluster
// (nil when it never started), restorer the role pg_restore connected as
// (its errors are looked up in c's log), need what a proof of the archive
// needs on disk.
func shortage(err error, c *testenv.Cluster, restorer string, need int64) error {
	var se *ShortageError
	if err == nil || errors.As(err, &se) {
		return err
	}
	kind, state := shortageKind(err, c, restorer)
	if kind == "" {
		return err
	}
	s := &ShortageError{Kind: kind, SQLState: state, Free: -1, Size: -1, Need: need, Err: err}
	if kind == ShortDisk {
		s.Folder, s.Temp = os.TempDir(), true
		if d := os.Getenv("PGATTEST_PROOF_DIR"); d != "" {
			s.Folder = d
		}
		if p, temp := failedPath(err); p != "" {
			s.Folder, s.Temp = p, temp
		} else if c != nil {
			s.Folder = filepath.Dir(c.Dir)
		}
		var st syscall.Statfs_t
		if syscall.Statfs(s.Folder, &st) == nil {
			s.Free, s.Size = int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
		}
	}
	return s
}

// classKinds maps SQLSTATEs and their classes to shortages. Not 57P01
// (terminated by an administrator's command): the archive's own code may
// call pg_terminate_backend(pg_backend_pid()); a server stopped or a
// backend killed from outside is told by the server's log instead.
var classKinds = map[string]string{
	"53100": ShortDisk, "53200": ShortMemory, "53300": ShortConnections, "53400": ShortLimit, "53": ShortLimit,
	"57P03": ShortKilled, "58030": ShortIO,
}

func shortageKind(err error, c *testenv.Cluster, restorer string) (kind, state string) {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return ShortDisk, ""
	case errors.Is(err, syscall.ENOMEM):
		return ShortMemory, ""
	case errors.Is(err, syscall.EIO):
		return ShortIO, ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		state = pe.Code
	}
	var re *RestoreError
	if errors.As(err, &re) {
		if killedBySignal(re.Exit) {
			return ShortKilled, ""
		}
		if c == nil {
			return "", ""
		}
		logged, ok := c.LastError(restorer)
		switch {
		case ok && archiveRaised(logged):
			return "", "" // RAISE … USING ERRCODE = 'disk_full' is the archive's code, not the disk
		case ok:
			state = logged.State
		case diskFullMessage(re): // a full disk may keep the error from the log
			return ShortDisk, ""
		}
	}
	if k := kindOf(state); k != "" {
		return k, state
	}
	// The server went away under pg_restore: killed (the out-of-memory
	// killer's SIGKILL, an operator's signal) or stopped is the machine's
	// doing; a process that crashed on what it was given is not.
	if c != nil && re != nil && lostConnection(re) {
		// Wait for the log's word only when the server logged no error of
		// the restorer's (one that did says why its connection ended).
		return lostServer(c, state == "")
	}
	return "", ""
}

// crashLogWait is how long lostServer waits for the postmaster to log why
// a connection went: pg_restore can see it go before the postmaster has
// reaped the process and its logging collector written the line.
const crashLogWait = 3 * time.Second

// lostServer says why pg_restore's server went away: stopped, a PANIC
// whose code says what ran short, or a process killed by a signal
// (ShortKilled); "" for a process that crashed on what it was given, or
// when the log says nothing (within crashLogWait, when wait).
func lostServer(c *testenv.Cluster, wait bool) (kind, state string) {
	deadline := time.Now()
	if wait {
		deadline = deadline.Add(crashLogWait)
	}
	for ; ; time.Sleep(50 * time.Millisecond) {
		if c.Exited() {
			return ShortKilled, ""
		}
		// A server process that could not write (its WAL, say) PANICs:
		// the PANIC's code says why.
		if state := c.PanicState(); kindOf(state) != "" {
			return kindOf(state), state
		}
		if _, sig := c.Crash(); sig != 0 {
			if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGTERM) || sig == int(syscall.SIGINT) || sig == int(syscall.SIGQUIT) {
				return ShortKilled, ""
			}
			return "", ""
		}
		if time.Now().After(deadline) {
			return "", ""
		}
	}
}

// kindOf is the shortage a SQLSTATE or its class says, or "".
func kindOf(state string) string {
	if k, ok := classKinds[state]; ok {
		return k
	}
	return classKinds[state[:min(2, len(state))]]
}

// archiveRaised reports whether an error was raised by the archive's own
// code (a PL/pgSQL RAISE, which may give any SQLSTATE): where in the
// server it was raised says so, which no text of the archive's can change.
func archiveRaised(e testenv.LogError) bool {
	return strings.HasPrefix(e.Location, "exec_stmt_raise,") || strings.Contains(e.Location, "pl_exec.c:")
}

// clientMessage is the server's message as pg_restore printed it, without
// pg_restore's words before it: "could not execute query: " (taken off
// already), or `COPY failed for table "NAME": ` for the table whose data
// it was processing. "" when the message has another shape.
func clientMessage(re *RestoreError) string {
	if !strings.HasPrefix(re.Message, "COPY failed for table ") {
		return re.Message
	}
	// pg_restore says which table's data it processes as SCHEMA.NAME, and
	// names it in the failure by NAME alone: the whole name, so a name
	// that holds `": ` cannot pose as the end of pg_restore's words.
	for i, c := range re.Table {
		if c != '.' {
			continue
		}
		if m, ok := strings.CutPrefix(re.Message, `COPY failed for table "`+re.Table[i+1:]+`": `); ok {
			return m
		}
	}
	return ""
}

// diskFullMessage reports whether the server's error pg_restore printed is
// one Postgres gives for a write that found no room: its own words first
// (no value of the archive's can stand there), then why.
func diskFullMessage(re *RestoreError) bool {
	text, ok := strings.CutPrefix(clientMessage(re), "ERROR:  ")
	if !ok {
		return false
	}
	own := strings.HasPrefix(text, "could not extend file \"") || strings.HasPrefix(text, "could not write ")
	return own && (strings.Contains(text, ": No space left on device") || strings.Contains(text, ": wrote only "))
}

// killedBySignal reports whether a tool's end (RestoreError.Exit) was a
// signal from outside; a crash of its own (SIGSEGV, SIGABRT) is not one.
func killedBySignal(exit string) bool {
	for _, s := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP} {
		if exit == "was killed by "+s.String() {
			return true
		}
	}
	return false
}

// lostConnection reports whether pg_restore lost its connection to the
// server: libpq's words, first in its message.
func lostConnection(re *RestoreError) bool {
	msg := clientMessage(re)
	msg = strings.TrimPrefix(msg, "error returned by PQputCopyData: ")
	msg = strings.TrimPrefix(msg, "error returned by PQputCopyEnd: ")
	for _, s := range []string{"server closed the connection unexpectedly", "no connection to the server",
		"could not receive data from server", "could not send data to server", "SSL SYSCALL error",
		"FATAL:  terminating connection because of crash of another server process", "connection to server on socket"} {
		if strings.HasPrefix(msg, s) {
			return true
		}
	}
	return false
}

// failedPath is the folder of the path an OS error names, where a write of
// pgattest's own found no room: for a file in a throwaway cluster's
// folder, the folder that holds the clusters (temp true).
func failedPath(err error) (folder string, temp bool) {
	var p string
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		p = pe.Path
	case errors.As(err, &le):
		p = le.New
	default:
		return "", false
	}
	if i := strings.Index(p, "/"+testenv.ClusterPrefix); i > 0 {
		return p[:i], true
	}
	return filepath.Dir(p), filepath.Dir(p) == filepath.Clean(os.TempDir())
}

// sizeText is a size for a person: "760 MiB", "3.1 GiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/unit, 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTP"[u])
}
