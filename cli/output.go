package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printRecords prints the list table: one line per backup, newest first.
func printRecords(w io.Writer, recs []*catalog.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tSTARTED (UTC)\tSIZE\tTABLES\tROWS PROVEN")
	for _, r := range recs {
		rows := "-"
		if p := r.LastRestore(); p != nil && r.Status != catalog.StatusFailed {
			rows = groupDigits(p.Rows)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, safe(r.Name), r.Status,
			r.StartedAt.UTC().Format("2006-01-02 15:04:05"), formatBytes(r.Archive.Size), len(r.TOC.Tables), rows)
	}
	tw.Flush()
}

// maxTablesShown bounds the per-table lines of show; --json has them all.
const maxTablesShown = 20

// printRecord prints one backup for people, as show, backup and demo do.
func printRecord(w io.Writer, r *catalog.Record) {
	fmt.Fprintf(w, "backup %s  %s\n", r.ID, strings.ToUpper(r.Status))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("name", "%s", safe(r.Name))
	src := r.Source
	host := src.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	}
	row("source", "%s@%s:%d/%s (PostgreSQL %s)", safe(src.User), safe(host), src.Port, safe(src.Database), safe(src.ServerVersion))
	row("started", "%s, took %s", formatTime(r.StartedAt), formatDuration(r.FinishedAt.Sub(r.StartedAt)))
	if r.PrunedAt != nil {
		row("pruned", "%s", formatTime(*r.PrunedAt))
	}
	a := r.Archive
	row("archive", "%s", a.Path)
	detail := fmt.Sprintf("%s format, %s, compression %d", a.Format, formatBytes(a.Size), a.Compression)
	if a.Compressor != "" {
		detail += " by " + a.Compressor
	}
	if a.Format == "directory" {
		detail += fmt.Sprintf(", %d files, %d jobs", a.Files, a.Jobs)
	}
	row("", "%s", detail)
	if r.ReencryptedFrom != "" {
		row("", "re-encrypted from backup %s (its proofs are that backup's: the same plaintext)", r.ReencryptedFrom)
	}
	if en := a.Encryption; en != nil {
		row("", "encrypted (%s) to %s; plaintext %s, BLAKE3 %s", en.Scheme, strings.Join(en.Recipients, ", "), formatBytes(en.PlaintextSize), en.PlaintextBLAKE3)
	}
	if where, until, mode := pipeline.Kept(r); where != "" {
		row("", "%s", where)
		if until != nil {
			row("locked", "until %s (%s retention)", formatTime(*until), strings.ToLower(mode))
		}
	}
	row("blake3", "%s", a.BLAKE3)
	if a.SHA256 != "" {
		row("sha256", "%s", a.SHA256)
	}
	for i, rc := range r.Receipts {
		k := "receipt"
		if i > 0 {
			k = ""
		}
		row(k, "%s (sha256 %s), signed by key %s", safe(rc.Path), rc.SHA256, rc.KeyID)
	}
	row("contents", "%s", tocSummary(r.TOC))
	if len(r.Roles) > 0 {
		row("roles", "%s", safeJoin(r.Roles, ", "))
	}
	if len(r.Proofs) == 0 {
		row("proof", "none: the archive was never restored (--verify none)")
	}
	for i, p := range r.Proofs {
		k := "proof"
		if i > 0 {
			k = ""
		}
		row(k, "%s", proofLine(p))
		if p.Error != "" {
			for _, l := range strings.Split(p.Error, "\n") {
				row("", "  %s", safeText(l))
			}
		}
		for _, sk := range p.Skipped {
			row("", "  skipped %s", safeText(sk))
		}
		for _, n := range p.Store {
			row("", "  store: %s", safeText(n))
		}
		if &r.Proofs[i] != r.LastRestore() {
			continue // how the last restore proof ran is enough
		}
		for _, c := range p.Created {
			row("", "  made by pgattest first: %s", safeText(c))
		}
		if iso := p.Isolation; iso != nil {
			row("", "  restored as %s (no superuser); server run by %s; network: %s", iso.RestoreRole, iso.ServerUser, iso.Network)
		}
	}
	var st []string
	for _, s := range r.Stages {
		st = append(st, fmt.Sprintf("%s %s", s.Name, formatDuration(time.Duration(s.DurationMS)*time.Millisecond)))
	}
	row("stages", "%s", strings.Join(st, ", "))
	t := r.Tools
	tools := fmt.Sprintf("pg_dump %s, pg_restore %s", t.PgDump, t.PgRestore)
	if t.ProofServer != "" {
		tools += ", proof server " + t.ProofServer
	}
	row("tools", "%s", tools)
	if len(r.Labels) > 0 {
		var ls []string
		for k, v := range r.Labels {
			ls = append(ls, k+"="+v)
		}
		sort.Strings(ls)
		row("labels", "%s", strings.Join(ls, " "))
	}
	tw.Flush()
	if p := r.LastRestore(); p != nil && len(p.Tables) > 0 {
		fmt.Fprintln(w, "  rows restored by the last restore proof:")
		shown := p.Tables[:min(len(p.Tables), maxTablesShown)]
		width := 0
		names := make([]string, len(shown))
		for i, tc := range shown {
			names[i] = safe(tc.Schema + "." + tc.Name)
			width = max(width, len(names[i]))
		}
		for i, tc := range shown {
			fmt.Fprintf(w, "    %-*s %12s\n", width, names[i], groupDigits(tc.Rows))
		}
		if n := len(p.Tables) - len(shown); n > 0 {
			fmt.Fprintf(w, "    … and %d more tables (--json lists them all)\n", n)
		}
	}
}

// safeJoin joins names, each shown safe.
func safeJoin(names []string, sep string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = safe(n)
	}
	return strings.Join(out, sep)
}

func proofLine(p catalog.Proof) string {
	d := formatDuration(time.Duration(p.DurationMS) * time.Millisecond)
	s := fmt.Sprintf("%s by %s on %s in %s", p.Status, p.Mode, formatTime(p.StartedAt), d)
	if p.Status == catalog.ProofPassed && p.Mode == "restore" {
		s += fmt.Sprintf(": %s, %s %s", countOf(len(p.Tables), "table"), groupDigits(p.Rows), map[bool]string{true: "row", false: "rows"}[p.Rows == 1])
		if p.ServerVersion != "" {
			s += " in PostgreSQL " + p.ServerVersion
		}
	}
	if p.FailedEntry != "" {
		s += "; failed at " + p.FailedEntry
	}
	if n := len(p.Skipped); n > 0 {
		s += fmt.Sprintf("; %d left out (below)", n)
	}
	return s
}

// tocSummary reads "141 entries: 9 TABLE, 14 INDEX, …" with the commonest
// kinds first.
func tocSummary(t catalog.TOC) string {
	type kv struct {
		k string
		v int
	}
	var kinds []kv
	for k, v := range t.Counts {
		kinds = append(kinds, kv{k, v})
	}
	sort.Slice(kinds, func(i, j int) bool {
		if kinds[i].v != kinds[j].v {
			return kinds[i].v > kinds[j].v
		}
		return kinds[i].k < kinds[j].k
	})
	var parts []string
	for i, e := range kinds {
		if i == 8 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%d %s", e.v, e.k))
	}
	return fmt.Sprintf("%d entries: %s", t.Entries, strings.Join(parts, ", "))
}

// countOf writes "1 table", "9 tables".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return groupDigits(int64(n)) + " " + noun + "s"
}

// groupDigits writes 185855 as 185,855.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// progress shows the pipeline's stages on stderr: a live line on a
// terminal, one line per finished stage otherwise, tool output with
// --verbose, nothing with --quiet.
type progress struct {
	mu          sync.Mutex
	w           io.Writer // escapes controls (termSafe)
	raw         io.Writer // the same stream as it is, for the live line's own controls
	interactive bool
	verbose     bool
	quiet       bool
	live        bool // a live line is on screen
}

func newProgress(e *env) *progress {
	raw := e.rawStderr
	if raw == nil {
		raw = e.stderr
	}
	return &progress{w: e.stderr, raw: raw, interactive: e.interactive, verbose: e.verbose, quiet: e.quiet}
}

func (p *progress) clear() {
	if p.live {
		fmt.Fprint(p.raw, "\r\033[K")
		p.live = false
	}
}

// line prints a message of the command's own (not an event).
func (p *progress) line(format string, args ...any) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) event(ev pipeline.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Kind {
	case pipeline.StageStart:
		if p.interactive {
			p.clear()
			fmt.Fprintf(p.w, "  %-9s …", ev.Stage)
			p.live = true
		}
	case pipeline.Progress:
		if p.interactive {
			p.clear()
			fmt.Fprintf(p.w, "  %-9s %s %s", ev.Stage, formatBytes(ev.Bytes), ev.Text)
			p.live = true
		}
	case pipeline.StageDone:
		p.clear()
		fmt.Fprintf(p.w, "  %-9s done in %s\n", ev.Stage, formatDuration(ev.Elapsed))
	case pipeline.Note:
		p.clear()
		fmt.Fprintf(p.w, "  %-9s %s\n", ev.Stage, ev.Text)
	case pipeline.Log:
		if p.verbose {
			p.clear()
			fmt.Fprintf(p.w, "    | %s\n", ev.Text)
		}
	}
}

func (p *progress) done() {
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}
