package testenv

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// The server's SQLSTATE is found for the error a client printed, whatever
// the client put before it; a crash gives its signal, a PANIC its code;
// text the archive's code put into a message (newlines and all) forges no
// record.
func TestServerLog(t *testing.T) {
	c := &Cluster{DataDir: t.TempDir()}
	os.MkdirAll(filepath.Join(c.DataDir, "log"), 0o700)
	f, err := os.Create(filepath.Join(c.DataDir, csvLog))
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	rec := func(sev, state, msg string) {
		r := make([]string, 26)
		r[0], r[csvSeverity], r[csvState], r[csvMessage] = "2026-12-05 09:16:44.100 UTC", sev, state, msg
		w.Write(r)
	}
	rec("ERROR", "42501", "permission denied for table t")
	rec("WARNING", "01000", "hello\n2026-12-05 09:16:44.100 UTC,,,,,,,,,,,ERROR,53100,\"permission denied for table t2\"\nPANIC")
	rec("ERROR", "53100", `could not extend file "base/16385/16388": wrote only 4096 of 8192 bytes at block 2495`)
	rec("LOG", "00000", "server process (PID 102) was terminated by signal 9: Killed")
	rec("ERROR", "P0001", "server process (PID 103) was terminated by signal 15: Terminated") // an archive's RAISE
	w.Flush()
	f.Close()
	for msg, want := range map[string]string{
		`COPY failed for table "t": ERROR:  could not extend file "base/16385/16388": wrote only 4096 of 8192 bytes at block 2495`: "53100",
		"ERROR:  permission denied for table t":       "42501",
		"ERROR:  permission denied for table t2":      "", // only in a message's text
		"could not extend file \"base/16385/16388\"":  "", // no severity: not a server's error
		"FATAL:  terminating connection due to stuff": "",
	} {
		if got := c.ErrorState(msg); got != want {
			t.Errorf("ErrorState(%q) = %q, want %q", msg, got, want)
		}
	}
	if line, sig := c.Crash(); sig != 9 || line != "server process (PID 102) was terminated by signal 9: Killed" {
		t.Errorf("Crash() = %q, %d", line, sig)
	}
	if got := c.PanicState(); got != "" {
		t.Errorf("PanicState() = %q: a PANIC only in a message's text", got)
	}
}
