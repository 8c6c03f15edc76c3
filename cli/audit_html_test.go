package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// chromium finds the real headless browser the HTML tests open the report
// in (Debian's chromium, installed by .ci/ensure-deps; PGATTEST_CHROMIUM
// names another). Missing, it fails under PGATTEST_REQUIRE_PG=1.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PGATTEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(pgtest.RequirePGEnv) == "1" {
		t.Fatal("no chromium: install Debian's chromium package (.ci/ensure-deps does)")
	}
	t.Skip("skipping: no chromium")
	return ""
}

// openInChromium loads the file in headless Chromium with every request
// beyond it refused, and returns the DOM as it rendered; with shot, it
// also writes a screenshot there.
func openInChromium(t *testing.T, file, shot string) string {
	t.Helper()
	bin := chromium(t)
	profile := t.TempDir()
	args := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND", "--user-data-dir=" + profile,
		"--window-size=1600,1200", "--virtual-time-budget=2000"}
	run := func(extra ...string) []byte {
		cmd := exec.Command(bin, append(append(args, extra...), "file://"+file)...)
		cmd.Env = append(os.Environ(), "HOME="+profile)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, stderr.String())
		}
		return out
	}
	dom := string(run("--dump-dom"))
	if shot != "" {
		run("--screenshot=" + shot)
		b, err := os.ReadFile(shot)
		if err != nil || len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("no screenshot at %s (%d bytes, %v)", shot, len(b), err)
		}
	}
	return dom
}

var cellRE = regexp.MustCompile(`<td class="d [^"]*" data-day="([0-9-]+)" data-name="([^"]+)" data-status="(proven|failed|none)"`)

// TestAuditHTMLCalendar: audit --format html writes one file that asks
// for nothing outside itself; opened in a real headless Chromium, its DOM
// holds a cell per name and day whose status is the report's (proven,
// failed, none), and a screenshot is made.
func TestAuditHTMLCalendar(t *testing.T) {
	w := newWorkdir(t)
	oct := time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC)
	seed(t, w, append(nightly("shop", oct, 31, func(d int) string {
		switch d + 1 {
		case 14, 15:
			return ""
		case 20:
			return catalog.StatusFailed
		}
		return catalog.StatusVerified
	}), nightly("billing <b>&", oct.AddDate(0, 0, 10), 21, func(int) string { return catalog.StatusVerified })...)...)
	audit := func(format string) (int, string) {
		code, out, _ := run(t, "--catalog", w.catalog, "audit", "--from", "2026-10-01", "--to", "2026-10-31", "--format", format)
		return code, out
	}
	code, page := audit("html")
	if code != exitProofFailed {
		t.Errorf("exit %d, want 3 (days without a proven backup)", code)
	}
	_, js := audit("json")
	var rep catalog.AuditReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"http:", "https:", "//", "src=", "@import", "url(", "<script", "<link", "<img"} {
		if i := strings.Index(page, bad); i >= 0 && !(bad == "//" && strings.Contains(page[max(0, i-6):i], "file:")) {
			t.Errorf("the page holds %q (near %q): it must ask for nothing outside itself", bad, page[max(0, i-40):min(len(page), i+40)])
		}
	}
	if strings.Contains(page, "billing <b>&") {
		t.Errorf("a name went into the page unescaped")
	}
	file := filepath.Join(t.TempDir(), "audit.html")
	os.WriteFile(file, []byte(page), 0o600)
	dom := openInChromium(t, file, filepath.Join(t.TempDir(), "audit.png"))

	want := map[string]string{}
	for _, na := range rep.Names {
		for _, d := range na.Days {
			st := "none"
			switch {
			case d.Covered:
				st = "proven"
			case d.Backups > 0:
				st = "failed"
			}
			want[na.Name+" "+d.Date] = st
		}
	}
	cells := cellRE.FindAllStringSubmatch(dom, -1)
	if len(cells) != 62 {
		t.Fatalf("the rendered page holds %d day cells, want 2 names × 31 days", len(cells))
	}
	got := map[string]string{}
	for _, c := range cells {
		name := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(c[2])
		got[name+" "+c[1]] = c[3]
	}
	for k, st := range want {
		if got[k] != st {
			t.Errorf("%s: the page says %q, the report %q", k, got[k], st)
		}
	}
	for _, k := range []string{"shop 2026-10-14", "shop 2026-10-20", "billing <b>& 2026-10-05"} {
		if got[k] == "proven" {
			t.Errorf("%s is shown proven", k)
		}
	}
	if !strings.Contains(dom, `id="verdict">FAILED`) || !strings.Contains(dom, rep.Chain.Head) {
		t.Errorf("the rendered page lacks the verdict or the chain head")
	}
	// A click (no script) lists each day's backups too: a proven day's
	// backup, and every backup of a day not proven, with its digest, are in
	// a database's "Each day's backup".
	var lists strings.Builder
	for _, part := range strings.Split(dom, `<details class="days">`)[1:] {
		lists.WriteString(html.UnescapeString(strings.SplitN(part, "</details>", 2)[0]))
	}
	proven, failed := 0, 0
	for _, na := range rep.Names {
		for _, da := range na.Days {
			if da.Covered {
				proven++
				if !strings.Contains(lists.String(), da.BackupID) || !strings.Contains(lists.String(), da.BLAKE3) {
					t.Errorf("%s %s: its backup %s is not in the page's list of each day", na.Name, da.Date, da.BackupID)
				}
			} else if da.Backups > 0 {
				failed++
			}
			if want := map[bool]int{true: 0, false: da.Backups}[da.Covered]; len(da.Each) != want {
				t.Errorf("%s %s (covered %v): the report lists %d of the day's %d backups, want %d", na.Name, da.Date, da.Covered, len(da.Each), da.Backups, want)
			}
			for _, b := range da.Each {
				if !strings.Contains(lists.String(), b.ID) || !strings.Contains(lists.String(), b.BLAKE3) {
					t.Errorf("%s %s: backup %s (%s) is not in the page's list of each day", na.Name, da.Date, b.ID, b.Status)
				}
			}
		}
	}
	if proven == 0 || failed == 0 || lists.Len() == 0 {
		t.Errorf("the days listed: %d proven, %d failed; want both", proven, failed)
	}
}

// TestAuditHTMLAtScale: 50 databases × 92 days render in Chromium, every
// cell there, the page one file and a screenshot made.
func TestAuditHTMLAtScale(t *testing.T) {
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	rep := &catalog.AuditReport{From: from, To: from.AddDate(0, 0, 91), GeneratedAt: time.Now(), Chain: catalog.ChainSummary{OK: true, Head: strings.Repeat("ab", 32)}}
	for n := 0; n < 50; n++ {
		na := catalog.NameAudit{Name: fmt.Sprintf("db-%02d", n), TrackedFrom: from.Format(time.DateOnly)}
		for d := 0; d < 92; d++ {
			day := from.AddDate(0, 0, d)
			da := catalog.DayAudit{Date: day.Format(time.DateOnly)}
			if (n+d)%17 != 0 {
				at := day.Add(2 * time.Hour)
				da.Covered, da.Backups, da.BackupID, da.BLAKE3, da.ProvedAt, da.Rows = true, 1, fmt.Sprintf("id-%d-%d", n, d), strings.Repeat("0", 64), &at, 1000
				na.DaysCovered++
			}
			na.DaysInRange++
			na.Days = append(na.Days, da)
		}
		rep.Names = append(rep.Names, na)
		rep.DaysInRange += na.DaysInRange
		rep.DaysCovered += na.DaysCovered
	}
	var page bytes.Buffer
	if err := auditHTML(&page, rep, "/srv/catalog.db"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "q3.html")
	os.WriteFile(file, page.Bytes(), 0o600)
	dom := openInChromium(t, file, filepath.Join(t.TempDir(), "q3.png"))
	if n := len(cellRE.FindAllString(dom, -1)); n != 50*92 {
		t.Errorf("%d day cells rendered, want %d", n, 50*92)
	}
	if !strings.Contains(page.String(), "@media print") {
		t.Errorf("no print stylesheet")
	}
}

// TestDayBackupsShowControlsEscaped: a backup's ID or status comes from
// the catalog, which a rebuild fills from manifests anyone who can write
// the storage wrote; in the list of a day's backups a newline in one is
// shown escaped, never a line of its own that reads as another backup.
func TestDayBackupsShowControlsEscaped(t *testing.T) {
	at := time.Date(2026, 10, 20, 2, 0, 0, 0, time.UTC)
	got := dayBackups([]catalog.DayBackup{{ID: "x\nshop-fake verified, proof passed", BLAKE3: strings.Repeat("b", 64), Status: "failed", Proof: "failed", ProvedAt: &at}})
	if lines := strings.Split(strings.TrimPrefix(got, "\n"), "\n"); len(lines) != 1 || !strings.Contains(got, `"x\nshop-fake verified, proof passed" failed`) {
		t.Errorf("a hostile ID makes %d lines:\n%s", len(lines), got)
	}
}
