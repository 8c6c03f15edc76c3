package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/testenv"
)

// TestRedactionNeverCorruptsOutput: passwords that are also ordinary words
// and numbers (a schema's name, a year, a digit, a letter, a status) leave
// pgattest's own output as it is: the JSON of a backup is the same as with
// a long random password, IDs and times aside; list, show and an audit's
// CSV keep their words and digests; nothing of it was rewritten.
func TestRedactionNeverCorruptsOutput(t *testing.T) {
	const long = "Long-random-0d1f9c27e84b5a63"
	src := shop(t, testenv.Options{TCP: true, Password: long})
	w := newWorkdir(t)
	backupWith := func(pw string) map[string]any {
		t.Helper()
		exec1(t, src, "postgres", "ALTER ROLE postgres PASSWORD "+quoteSQL(pw))
		src.Password = pw
		code, out, errOut := w.backup(t, "--json", "--db", src.URL("shop", testenv.Superuser, pw), "--name", "shop")
		if code != 0 {
			t.Fatalf("password %q: exit %d\n%s", pw, code, errOut)
		}
		if strings.Contains(out+errOut, "[REDACTED]") {
			t.Errorf("password %q: output rewritten:\n%s%s", pw, out, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return normalized(m)
	}
	want := backupWith(long)
	for _, pw := range []string{"public", "2026", "1", "a", "verified"} {
		got := backupWith(pw)
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.MarshalIndent(got, "", " ")
			wj, _ := json.MarshalIndent(want, "", " ")
			t.Errorf("password %q: the backup's JSON differs from the one with a long password:\n%s\nwant:\n%s", pw, gj, wj)
		}
		for _, args := range [][]string{{"list"}, {"audit", "--from", "2020-01-01", "--format", "csv"}} {
			t.Setenv("PGPASSWORD", pw)
			_, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
			t.Setenv("PGPASSWORD", "")
			_, plain, _ := run(t, append([]string{"--catalog", w.catalog}, args...)...)
			if out != plain || strings.Contains(errOut, "[REDACTED]") {
				t.Errorf("PGPASSWORD=%s: %s printed otherwise than without it:\n%s\nwant:\n%s", pw, args[0], out, plain)
			}
		}
	}
}

// normalized drops what differs from run to run: IDs, times, durations,
// paths (they hold the time), digests and sizes (pg_dump writes the time
// into the archive).
func normalized(v any) map[string]any {
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, val := range x {
				switch k {
				case "id", "started_at", "finished_at", "duration_ms", "path", "manifest", "blake3", "size",
					"created_at", "stages", "restore_role", "server_started":
					continue
				}
				out[k] = walk(val)
			}
			return out
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
			return x
		}
		return v
	}
	return walk(v).(map[string]any)
}
