package testenv

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// The last error of one user's sessions is found with its SQLSTATE and
// where it was raised; the postmaster's report of a killed process gives
// its signal; text the archive's code put into a message (newlines and
// all, RAISE LOG) forges no record.
func TestServerLog(t *testing.T) {
	c := &Cluster{DataDir: t.TempDir()}
	os.MkdirAll(filepath.Join(c.DataDir, "log"), 0o700)
	f, err := os.Create(filepath.Join(c.DataDir, csvLog))
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	rec := func(user, sev, state, msg, backend string) {
		r := make([]string, 26)
		r[0], r[csvUser], r[csvSeverity], r[csvState], r[csvMessage], r[csvBackendType] = "2026-12-05 09:16:44.100 UTC", user, sev, state, msg, backend
		r[csvLocation] = "mdextend, md.c:450"
		w.Write(r)
	}
	rec("restorer", "ERROR", "42501", "permission denied for table t", "client backend")
	rec("restorer", "WARNING", "01000", "hello\n2026-12-05 09:16:44.100 UTC,restorer,,,,,,,,,,PANIC,53100,\"x\"", "client backend")
	rec("restorer", "LOG", "00000", "server process (PID 104) was terminated by signal 9: Killed", "client backend") // RAISE LOG
	rec("restorer", "ERROR", "53100", `could not extend file "base/16385/16388": wrote only 4096 of 8192 bytes at block 2495`, "client backend")
	rec("other", "ERROR", "22012", "division by zero", "client backend")
	rec("", "LOG", "00000", "server process (PID 102) was terminated by signal 9: Killed", "postmaster")
	w.Flush()
	f.Close()
	e, ok := c.LastError("restorer")
	if !ok || e.State != "53100" || e.Location != "mdextend, md.c:450" || e.Severity != "ERROR" {
		t.Errorf("LastError(restorer) = %+v, %v: want the disk-full error, not another session's", e, ok)
	}
	if _, ok := c.LastError("nobody"); ok {
		t.Error("LastError of a user with no error found one")
	}
	if line, sig := c.Crash(); sig != 9 || line != "server process (PID 102) was terminated by signal 9: Killed" {
		t.Errorf("Crash() = %q, %d", line, sig)
	}
	if got := c.PanicState(); got != "" {
		t.Errorf("PanicState() = %q: a PANIC only in a message's text", got)
	}
}
