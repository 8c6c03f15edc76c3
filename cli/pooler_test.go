package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// A real PgBouncer in each pool mode in front of a real server: session mode
// is a dedicated server connection and backs up like a direct one; in
// transaction and statement modes pg_dump's snapshot and session settings do
// not hold, so backup refuses before dumping unless --allow-pooled.
func TestPgBouncerModes(t *testing.T) {
	src := pgtest.New(t)
	exec1(t, src, "postgres", "CREATE DATABASE tiny")
	exec1(t, src, "tiny", "CREATE TABLE notes (id int PRIMARY KEY, body text)", "INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 500) g")

	for _, tt := range []struct {
		mode    string
		refused string // "" = backs up
	}{
		{"session", ""},
		{"transaction", "a pooler in transaction mode"},
		{"statement", "PgBouncer in statement pooling mode"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			b := pgtest.NewBouncer(t, src, tt.mode)
			w := newWorkdir(t)
			code, out, errOut := w.backup(t, "--json", "--db", b.URL("tiny"), "--name", "tiny")
			if tt.refused == "" {
				if code != 0 || decodeRecord(t, out).Status != catalog.StatusVerified {
					t.Fatalf("session mode: exit %d\n%s", code, errOut)
				}
				return
			}
			// With --json a failure is one JSON document on stdout: the
			// error, its hint, the exit code.
			var je jsonError
			if err := json.Unmarshal([]byte(out), &je); err != nil || je.ExitCode != code || !strings.Contains(je.Error, "pg_dump needs a direct one") || je.Hint == "" {
				t.Errorf("stdout is not the JSON of the error (%v):\n%s", err, out)
			}
			if code != 1 || !strings.Contains(errOut, tt.refused) || !strings.Contains(errOut, "pg_dump needs a direct one") ||
				!strings.Contains(errOut, "hint: connect to the database directly, not through the pooler, or pass --allow-pooled") {
				t.Fatalf("%s mode: exit %d\nstdout: %s\nstderr: %s", tt.mode, code, out, errOut)
			}
			assertNothingKept(t, w, "tiny")
			if tt.mode == "transaction" {
				// The user may accept it: pg_dump runs its dump in one
				// transaction, which a transaction pooler keeps together.
				code, out, errOut = w.backup(t, "--json", "--db", b.URL("tiny"), "--name", "tiny", "--allow-pooled")
				if code != 0 {
					t.Fatalf("--allow-pooled: exit %d\n%s", code, errOut)
				}
				rec := decodeRecord(t, out)
				if rec.Status != catalog.StatusVerified || rec.Proofs[0].Rows != 500 {
					t.Errorf("--allow-pooled: %s, %d rows", rec.Status, rec.Proofs[0].Rows)
				}
				// A pooled restore target is refused naming the tool that
				// needs a session of its own.
				exec1(t, src, "postgres", "CREATE DATABASE tiny_copy")
				code, _, errOut = run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", b.URL("tiny_copy"))
				if code != 1 || !strings.Contains(errOut, "pg_restore needs a direct one") || !strings.Contains(errOut, "--allow-pooled") {
					t.Errorf("restore through a transaction pooler: exit %d\n%s", code, errOut)
				}
			}
		})
	}
}
