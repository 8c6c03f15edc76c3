package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestNamesCannotRewriteTheTerminal: any user of the source database
// names a table so that, printed raw, it erases the line above and writes
// "proof passed (fake)" there, another with a newline that starts a line of
// its own, a schema and a role with controls in them. Every human output
// that shows them (backup's progress and result, show, toc, toc --live,
// list, restore --dry-run, audit as text and markdown) holds no control
// byte but newline and tab, and no line starts with the forged words; the
// JSON outputs hold the names exactly.
func TestNamesCannotRewriteTheTerminal(t *testing.T) {
	src := shop(t)
	erase := "\x1b[2K\x1b[1Aproof passed (fake)"
	newline := "x\nproof passed (fake)"
	exec1(t, src, "shop",
		`CREATE SCHEMA "s`+"\x07"+`bell"`,
		`CREATE TABLE shop."`+erase+`" (id int)`,
		`INSERT INTO shop."`+erase+`" VALUES (1)`,
		`CREATE TABLE "s`+"\x07"+`bell"."`+newline+`" (id int)`,
		`INSERT INTO "s`+"\x07"+`bell"."`+newline+`" VALUES (1), (2)`)
	w := newWorkdir(t)
	code, out, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "shop")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, errOut)
	}
	outputs := map[string]string{"backup": out, "backup's progress": errOut}
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	cmds := map[string][]string{
		"show":              {"show", rec.ID},
		"toc":               {"toc", rec.ID},
		"toc --live":        {"toc", "--live", rec.ID},
		"list":              {"list"},
		"restore --dry-run": {"restore", "--id", rec.ID, "--target", src.ConnString("postgres"), "--dry-run", "--table", "shop." + erase},
		"audit":             {"audit", "--from", rec.StartedAt.Format("2006-01-02")},
		"audit markdown":    {"audit", "--format", "markdown", "--from", rec.StartedAt.Format("2006-01-02")},
	}
	for what, args := range cmds {
		code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
		if code != 0 && !strings.HasPrefix(what, "audit") {
			t.Errorf("%s: exit %d\n%s", what, code, errOut)
		}
		outputs[what] = out
		outputs[what+" (stderr)"] = errOut
	}
	for what, text := range outputs {
		for _, b := range []byte(text) {
			if (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f {
				t.Errorf("%s holds the control byte %#x:\n%s", what, b, text)
				break
			}
		}
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "proof passed (fake)") {
				t.Errorf("%s has a line a table name wrote: %q", what, l)
			}
		}
	}
	if !strings.Contains(outputs["show"], `"s\abell.x\nproof passed (fake)"`) || !strings.Contains(outputs["toc"], `"\x1b[2K\x1b[1Aproof passed (fake)"`) {
		t.Errorf("the names are not shown quoted, as they are:\nshow:\n%s\ntoc:\n%s", outputs["show"], outputs["toc"])
	}

	// JSON: the names exactly.
	code, out, _ = run(t, "--catalog", w.catalog, "--json", "show", rec.ID)
	if code != 0 {
		t.Fatalf("show --json: exit %d", code)
	}
	var shown struct {
		Proofs []struct {
			Tables []struct{ Schema, Name string } `json:"tables"`
		} `json:"proofs"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown.Proofs) == 0 {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	found := map[string]bool{}
	for _, tc := range shown.Proofs[len(shown.Proofs)-1].Tables {
		found[tc.Schema+"."+tc.Name] = true
	}
	if !found["shop."+erase] || !found["s\abell."+newline] {
		t.Errorf("show --json does not hold the names exactly: %v", found)
	}
	code, out, _ = run(t, "--catalog", w.catalog, "--json", "toc", rec.ID)
	if code != 0 || !strings.Contains(out, `\u001b[2K\u001b[1Aproof passed (fake)`) || !strings.Contains(out, `x\nproof passed (fake)`) {
		t.Errorf("toc --json: exit %d, names not exact:\n%s", code, out)
	}
}

// TestTermSafeSplitC1: a C1 control (U+009B, which some terminals take
// for ESC [) split across two writes (a buffered writer's flush falls
// between its bytes, where a name's length puts it) is escaped all the
// same, and the text around it, é included, passes as it is.
func TestTermSafeSplitC1(t *testing.T) {
	var b strings.Builder
	w := &termSafe{w: &b}
	w.Write([]byte("café \xc2"))
	w.Write([]byte("\x9b2Kfake\n"))
	w.Write([]byte("end \xc2"))
	w.Flush()
	if got, want := b.String(), "café \\u009b2Kfake\nend \xc2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
