package cli

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
)

// auditHTML writes the report as one self-contained HTML file: no script,
// no font, no image, no request of any kind (it opens from a mail
// attachment). Every name and message goes through html/template's
// escaping. Each day is a cell with data-day, data-name and data-status
// (proven, failed or none), coloured and marked (✓ ✗ ·) so that it reads in
// black and white; hovering a cell (its title) says the day's backups, and
// each database's "Each day's backup" (a details element: a click, no
// script) lists the same for every day with a backup.
func auditHTML(w io.Writer, rep *catalog.AuditReport, path string) error {
	type cell struct {
		Day, Status, Mark, Title, Month string
		First                           bool // the first day of a month: a rule before it
	}
	type row struct {
		Name      string
		Covered   string
		Stats     string
		Gap       string
		Cells     []cell
		Failures  []string
		Uncovered string
		Days      []string // each day with a backup, as its cell's title says it: for a click, and for print
	}
	type month struct {
		Label string
		Span  int
	}
	var rows []row
	var months []month
	for i, na := range rep.Names {
		r := row{Name: na.Name, Covered: fmt.Sprintf("%d / %d days", na.DaysCovered, na.DaysInRange),
			Stats: fmt.Sprintf("%d backups: %d proven, %d failed, %d never proven; proofs %d passed, %d failed; %d with a signed receipt", na.Backups, na.Proven, na.Failed, na.Unverified, na.ProofsOK, na.ProofsBad, na.Signed),
			Gap:   gapText(na.LongestGap), Uncovered: strings.Join(na.Uncovered, ", ")}
		if !rep.ReceiptsChecked {
			r.Stats = strings.TrimSuffix(r.Stats, fmt.Sprintf("; %d with a signed receipt", na.Signed))
		}
		byDay := map[string]catalog.DayAudit{}
		for _, d := range na.Days {
			byDay[d.Date] = d
		}
		// Every name over the whole range, so that the columns line up: a
		// day before a name was tracked is "none".
		for d := day0(rep.From); !d.After(day0(rep.To)); d = d.AddDate(0, 0, 1) {
			k := d.Format(time.DateOnly)
			c := cell{Day: k, First: d.Day() == 1 && !d.Equal(day0(rep.From))}
			da, ok := byDay[k]
			switch {
			case ok && da.Covered:
				c.Status, c.Mark = "proven", "✓"
				c.Title = fmt.Sprintf("%s %s: proven by %s\nBLAKE3 %s", na.Name, k, safe(da.BackupID), safe(da.BLAKE3))
				if da.ProvedAt != nil {
					c.Title += fmt.Sprintf("\nrestored %s UTC, %d rows", da.ProvedAt.UTC().Format("2006-01-02 15:04"), da.Rows)
				}
				if da.Receipt != "" {
					c.Title += "\nreceipt sha256 " + da.Receipt
					if !rep.ReceiptsChecked {
						c.Title += " (signature not checked: audit --trust-key checks it)"
					}
				}
				if da.Backups > 1 {
					c.Title += fmt.Sprintf("\n%d backups that day", da.Backups)
				}
			case ok && da.Backups > 0:
				c.Status, c.Mark = "failed", "✗"
				c.Title = fmt.Sprintf("%s %s: %d backups, none proven (%d proofs failed)", na.Name, k, da.Backups, da.ProofsBad)
				if da.Check != "" {
					c.Title += "\n" + firstLineOf(da.Check)
				}
				c.Title += dayBackups(da.Each)
			default:
				c.Status, c.Mark = "none", "·"
				c.Title = fmt.Sprintf("%s %s: no backup", na.Name, k)
				if ok { // tracked: a day without a proven backup
					c.Title += " (a day without a proven backup)"
				}
			}
			r.Cells = append(r.Cells, c)
			if c.Status != "none" {
				r.Days = append(r.Days, c.Title)
			}
			if i == 0 {
				label := d.Format("Jan 2006")
				if len(months) == 0 || months[len(months)-1].Label != label {
					months = append(months, month{Label: label})
				}
				months[len(months)-1].Span++
			}
		}
		for _, f := range na.Failures {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: failed %s of %s: %s", f.At.UTC().Format("2006-01-02 15:04"), f.What, f.BackupID, firstLineOf(f.Error)))
		}
		rows = append(rows, r)
	}
	verdict := "PASSED"
	if !rep.OK {
		verdict = "FAILED"
	}
	data := map[string]any{
		"From": rep.From.Format(time.DateOnly), "To": rep.To.Format(time.DateOnly), "Verdict": verdict, "OK": rep.OK,
		"Coverage": coverage(rep), "Chain": chainText(rep.Chain), "Head": rep.Chain.Head, "Receipts": receiptsText(rep),
		"Catalog": path, "Version": Version, "Generated": rep.GeneratedAt.UTC().Format(time.RFC3339),
		"Rows": rows, "Months": months, "Rehashed": rep.Rehashed, "Mismatched": mismatched(rep),
	}
	return auditTemplate.Execute(w, data)
}

func day0(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// dayBackups is a line per backup of a day not proven: ID, status, its
// newest proof, digest. Values from a manifest are whoever wrote it's: a
// control character (a newline would be a line of its own) is shown
// escaped.
func dayBackups(each []catalog.DayBackup) string {
	var b strings.Builder
	for _, d := range each {
		fmt.Fprintf(&b, "\n%s %s", safe(d.ID), safe(d.Status))
		switch {
		case d.Proof == "":
			b.WriteString(", never proven")
		case d.ProvedAt != nil && d.Proof == catalog.ProofPassed:
			fmt.Fprintf(&b, ", proof passed %s UTC, %d rows", d.ProvedAt.UTC().Format("2006-01-02 15:04"), d.Rows)
		case d.ProvedAt != nil:
			fmt.Fprintf(&b, ", proof %s %s UTC", safe(d.Proof), d.ProvedAt.UTC().Format("2006-01-02 15:04"))
		}
		fmt.Fprintf(&b, ", BLAKE3 %s", safe(d.BLAKE3))
	}
	return b.String()
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

var auditTemplate = template.Must(template.New("audit").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Backup audit {{.From}} to {{.To}}: {{.Verdict}}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border: 2px solid; font-weight: bold; }
.verdict.ok { color: #0a5d1f; background: #e3f5e7; }
.verdict.bad { color: #8a0f0f; background: #fbe4e4; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 12px 0; }
dt { color: #555; } dd { margin: 0; word-break: break-all; }
.legend span { margin-right: 16px; }
table.cal { border-collapse: collapse; margin: 12px 0; }
table.cal th, table.cal td { padding: 0; text-align: center; }
table.cal th.name { text-align: left; padding-right: 8px; white-space: nowrap; font-weight: normal; max-width: 16em; overflow: hidden; text-overflow: ellipsis; }
table.cal th.month { font-weight: normal; color: #555; text-align: left; border-left: 1px solid #999; padding-left: 2px; }
td.d { width: 13px; height: 15px; font-size: 10px; border: 1px solid #fff; }
td.d.first { border-left: 1px solid #999; }
td.proven { background: #2e9e4f; color: #fff; }
td.failed { background: #d93a3a; color: #fff; }
td.none { background: #e6e6e6; color: #777; }
td.cov { padding-left: 8px; white-space: nowrap; text-align: left; color: #333; }
section.db { margin: 16px 0; page-break-inside: avoid; }
section.db h2 { font-size: 15px; margin: 0; }
section.db p, section.db ul { margin: 2px 0; }
.small { color: #555; font-size: 12px; }
details.days li { white-space: pre-line; margin-bottom: 4px; font-size: 12px; }
@media print {
  @page { size: landscape; margin: 10mm; }
  body { margin: 0; font-size: 10px; }
  td.d { width: 8px; height: 10px; font-size: 7px; }
  td.d, .verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
</head>
<body>
<h1>Backup audit, {{.From}} to {{.To}} (UTC)</h1>
<p><span class="verdict {{if .OK}}ok{{else}}bad{{end}}" id="verdict">{{.Verdict}}</span> {{.Coverage}}</p>
<dl>
<dt>Event chain</dt><dd>{{.Chain}}</dd>
<dt>Chain head</dt><dd><code>{{.Head}}</code></dd>
<dt>Signed receipts</dt><dd>{{.Receipts}}</dd>
<dt>Archives</dt><dd>{{if .Rehashed}}re-hashed against the catalog: {{.Mismatched}} no longer match{{else}}not re-hashed for this report (--rehash does){{end}}</dd>
<dt>Catalog</dt><dd><code>{{.Catalog}}</code></dd>
<dt>Made</dt><dd>{{.Generated}} by pgattest {{.Version}}</dd>
</dl>
<p class="small">A day is proven when a backup started that day (UTC) and its newest proof passed: the archive was restored into a throwaway PostgreSQL and every table's rows counted. Hover a day for its backup, digest, proof time, rows and receipt, or open "Each day's backup" below the calendar.</p>
<p class="legend"><span>✓ proven</span><span>✗ failed or not proven</span><span>· no backup</span></p>
<table class="cal" id="calendar">
<thead><tr><th></th>{{range .Months}}<th class="month" colspan="{{.Span}}">{{.Label}}</th>{{end}}<th></th></tr></thead>
<tbody>
{{range .Rows}}{{$name := .Name}}<tr><th class="name" scope="row" title="{{.Name}}">{{.Name}}</th>{{range .Cells}}<td class="d {{.Status}}{{if .First}} first{{end}}" data-day="{{.Day}}" data-name="{{$name}}" data-status="{{.Status}}" title="{{.Title}}">{{.Mark}}</td>{{end}}<td class="cov">{{.Covered}}</td></tr>
{{end}}</tbody>
</table>
{{range .Rows}}<section class="db">
<h2>{{.Name}}: {{.Covered}}</h2>
<p>{{.Stats}}</p>
<p>Longest gap between proven backups: {{.Gap}}</p>
{{if .Uncovered}}<p>Days without a proven backup: {{.Uncovered}}</p>{{end}}
{{if .Failures}}<ul>{{range .Failures}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Days}}<details class="days"><summary>Each day's backup ({{len .Days}} days)</summary><ul>{{range .Days}}<li>{{.}}</li>{{end}}</ul></details>{{end}}
</section>
{{end}}
</body>
</html>
`))
