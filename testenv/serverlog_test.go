package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// The server's SQLSTATE is found for the error a client printed, whatever
// the client put before it; a crash line gives its signal.
func TestServerLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "postgres.log")
	os.WriteFile(log, []byte(`2026-12-05 09:16:44.100 UTC [100] 42501 ERROR:  permission denied for table t
2026-12-05 09:16:44.123 UTC [101] 53100 ERROR:  could not extend file "base/16385/16388": wrote only 4096 of 8192 bytes at block 2495
2026-12-05 09:16:44.123 UTC [101] 53100 HINT:  Check free disk space.
2026-12-05 09:16:44.200 UTC [90] 00000 LOG:  server process (PID 102) was terminated by signal 9: Killed
2026-12-05 09:16:44.200 UTC [90] 00000 DETAIL:  Failed process was running: COPY public.t (id) FROM stdin;
`), 0o600)
	c := &Cluster{logPath: log}
	for msg, want := range map[string]string{
		`COPY failed for table "t": ERROR:  could not extend file "base/16385/16388": wrote only 4096 of 8192 bytes at block 2495`: "53100",
		"ERROR:  permission denied for table t":           "42501",
		"ERROR:  permission denied for table t2":          "",
		"could not extend file \"base/16385/16388\"":      "", // no severity: not a server's error
		"FATAL:  terminating connection due to something": "",
	} {
		if got := c.ErrorState(msg); got != want {
			t.Errorf("ErrorState(%q) = %q, want %q", msg, got, want)
		}
	}
	if line, sig := c.Crash(); sig != 9 || line != "server process (PID 102) was terminated by signal 9: Killed" {
		t.Errorf("Crash() = %q, %d", line, sig)
	}
}
