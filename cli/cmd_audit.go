package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/receipt"
)

func auditCommand(e *env) *ucli.Command {
	var o auditOptions
	return &ucli.Command{
		Name:      "audit",
		Usage:     "report, day by day, whether each database has a proven backup",
		ArgsUsage: " ",
		Description: `For every day from --from to --to (UTC) and every name in the catalog: was a
backup started that day whose newest proof passed? A backup pruned since
still counts (its record keeps the proof). Also reports every proof run on
those backups and each failure, the longest gap between proven backups, and
whether the catalog's chain is intact. With --rehash every archive still on
disk is re-hashed and must match its digest, or it does not count.

A name is counted from the day of its first backup when that is later than
--from; days after today are not counted. --name NAME counts the whole range.

Examples:
   pgattest audit --from 2026-07-01 --to 2026-09-30
   pgattest audit --from 2026-11-01 --to 2026-11-30 --name shop-prod --format markdown > audit.md
   pgattest audit --from 2026-11-01 --to 2026-11-24 --rehash --format csv > november.csv
   pgattest audit --from 2026-07-01 --to 2026-09-30 --format html --trust-key sign.pub.pem > q3.html

Exit codes: 0 every day covered and the chain intact; 1 the catalog cannot
be read; 2 bad flags; 3 a day without a proven backup, a broken chain, or
(with --rehash) an archive that no longer matches its digest. The report is
printed either way, so a CI job can both attach it and alert on the code.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "from", Usage: "first day (a date, or RFC 3339: its day counts)", Destination: &o.from},
			&ucli.StringFlag{Name: "to", Usage: "last day, included (a date, or RFC 3339: its day counts; default today)", Destination: &o.to},
			listFlag(&o.names, "name", "only this name; repeatable"),
			&ucli.StringFlag{Name: "format", Usage: "text, json, csv, markdown or html (one self-contained file: a calendar per database)", Value: "text", Destination: &o.format},
			&ucli.BoolFlag{Name: "rehash", Usage: "re-hash every archive on disk against its recorded digest", Destination: &o.rehash},
			signKeyFlag(&o.signKey, "with --format json, also sign the report with this ed25519 private key `FILE`: a DSSE envelope over its exact bytes, written to --receipt-out, checked offline with the public key (pgattest receipt verify, or openssl); never read from PGATTEST_SIGN_KEY", false),
			&ucli.StringFlag{Name: "receipt-out", Usage: "where --sign-key writes the report's signed envelope (`FILE`, made 0644, never over a file there)", Destination: &o.receiptOut},
			trustKeyFlag(&o.trustKeys, "count as signed only the backups whose receipt this public key `FILE` (SPKI PEM) checks; repeatable"),
		},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "audit", "for example: pgattest audit --from 2026-11-01 --to 2026-11-30"); err != nil {
				return err
			}
			return runAudit(c.Context, e, o)
		},
	}
}

// auditOptions are audit's flags.
type auditOptions struct {
	from, to            string
	names               []string
	format              string
	rehash              bool
	signKey, receiptOut string
	trustKeys           []string
}

// query checks the flags and makes the catalog's query, the report's
// format and its signer of them.
func (o auditOptions) query(ctx context.Context, e *env) (q catalog.AuditQuery, format string, signer *receipt.Signer, err error) {
	if o.from == "" {
		return q, "", nil, usageErrorf("for example: pgattest audit --from 2026-11-01 --to 2026-11-30", "audit needs --from (and --to, which is today when left out)")
	}
	from, err := parseTime("from", o.from, true)
	if err != nil {
		return q, "", nil, err
	}
	toFlag := o.to
	if toFlag == "" {
		toFlag = "today"
	}
	to, err := parseTime("to", toFlag, false)
	if err != nil {
		return q, "", nil, err
	}
	if to.Before(from) {
		return q, "", nil, usageErrorf("--from is the first day, --to the last", "--to %s is before --from %s", o.to, o.from)
	}
	format = o.format
	if e.json {
		format = "json"
	}
	switch format {
	case "text", "json", "csv", "markdown", "html":
	default:
		return q, "", nil, usageErrorf("use text, json, csv, markdown or html", "--format %q is not a report format", format)
	}
	q = catalog.AuditQuery{From: from, To: to, Names: o.names, Whole: format == "html"}
	if q.Receipt, err = pipeline.ReceiptChecker(o.trustKeys); err != nil {
		return q, "", nil, err
	}
	if o.rehash {
		q.Check = func(r *catalog.Record) string {
			if _, err := pipeline.HashStored(ctx, r); err != nil {
				return err.Error()
			}
			return ""
		}
	}
	if (o.signKey != "") != (o.receiptOut != "") || (o.signKey != "" && format != "json") {
		return q, "", nil, usageErrorf("pgattest audit --from 2026-07-01 --format json --sign-key sign.pem --receipt-out q3.audit.dsse.json > q3.json",
			"--sign-key and --receipt-out go together, with --format json")
	}
	if o.signKey != "" {
		s, err := receipt.LoadSigner(o.signKey)
		var ke *receipt.KeyError
		if errors.As(err, &ke) {
			return q, "", nil, usageErrorf(ke.Hint(), "%v", err)
		}
		if err != nil {
			return q, "", nil, err
		}
		signer = s
	}
	return q, format, signer, nil
}

func runAudit(ctx context.Context, e *env, o auditOptions) error {
	q, format, signer, err := o.query(ctx, e)
	if err != nil {
		return err
	}
	return auditReport(ctx, e, q, format, signer, o.receiptOut)
}

// auditReport reads the catalog and writes the report.
func auditReport(ctx context.Context, e *env, q catalog.AuditQuery, format string, signer *receipt.Signer, receiptOut string) error {
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	data, err := cat.ReadAudit(q)
	cat.Close() // --rehash can take long: backups must not wait for the catalog meanwhile
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // interrupted: a --rehash stopped midway is no finding
	}
	rep := data.Report()
	switch format {
	case "json":
		e.json = true // exact JSON: no terminal escaping (termsafe.go)
		if signer == nil {
			err = writeJSON(e.stdout, rep)
			break
		}
		// The envelope signs the very bytes written: the report as
		// printed, which a script keeps beside it.
		var buf bytes.Buffer
		if err = writeJSON(&buf, rep); err != nil {
			break
		}
		env, _ := json.Marshal(signer.Sign(receipt.AuditPayloadType, buf.Bytes()))
		if err = writeNewFile(receiptOut, env); err != nil {
			break
		}
		_, err = e.stdout.Write(buf.Bytes())
	case "csv":
		err = auditCSV(e.stdout, rep)
	case "markdown":
		auditMarkdown(e.stdout, rep, e.catalogPath)
	case "html": // html/template escapes markup; the terminal's control bytes are escaped as in text
		err = auditHTML(e.stdout, rep, e.catalogPath)
	default:
		auditText(e.stdout, rep, e.catalogPath)
	}
	if err != nil {
		return err
	}
	if rep.OK {
		return nil
	}
	var why []string
	for _, na := range rep.Names {
		if n := na.DaysInRange - na.DaysCovered; n > 0 {
			why = append(why, fmt.Sprintf("%s has %d of %d days without a proven backup", safe(na.Name), n, na.DaysInRange))
		}
	}
	if !rep.Chain.OK {
		why = append(why, "the catalog's chain is broken")
	}
	if n := mismatched(rep); n > 0 {
		why = append(why, fmt.Sprintf("%d archives no longer match their digest", n))
	}
	return proofErrorf("the report above lists the days and backups concerned", "audit failed: %s", strings.Join(why, "; "))
}

func mismatched(rep *catalog.AuditReport) int {
	n := 0
	for _, na := range rep.Names {
		n += len(na.Mismatched)
	}
	return n
}

// coverage is the report's total: days, or with several databases, the days
// of each added up.
func coverage(rep *catalog.AuditReport) string {
	unit := "days"
	if len(rep.Names) > 1 {
		unit = fmt.Sprintf("database-days (%d databases)", len(rep.Names))
	}
	return fmt.Sprintf("%d of %d %s covered by a proven backup (%s)", rep.DaysCovered, rep.DaysInRange, unit, percent(rep.DaysCovered, rep.DaysInRange))
}

func percent(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func gapText(g catalog.Gap) string {
	if g.Hours == 0 {
		return "-"
	}
	m := int(time.Duration(g.Hours * float64(time.Hour)).Round(time.Minute).Minutes())
	return fmt.Sprintf("%dd %dh %02dm (%s → %s)", m/(24*60), m/60%24, m%60, g.From.Format("2006-01-02 15:04"), g.To.Format("2006-01-02 15:04"))
}

func chainText(c catalog.ChainSummary) string {
	if c.OK {
		return fmt.Sprintf("intact, %d events, head event %d %s", c.Events, c.HeadSeq, c.Head)
	}
	return "BROKEN: " + c.Broken.Error()
}

// calendar draws one line per month: + a proven backup, x backups but none
// proven, . none; days outside the counted range are blank.
func calendar(w io.Writer, na catalog.NameAudit) {
	var month string
	var line []byte
	flush := func() {
		if month != "" {
			fmt.Fprintf(w, "    %s  %s\n", month, strings.TrimRight(string(line), " "))
		}
	}
	for _, d := range na.Days {
		if d.Date[:7] != month {
			flush()
			month, line = d.Date[:7], []byte(strings.Repeat(" ", 31))
		}
		n, _ := strconv.Atoi(d.Date[8:])
		c := byte('.')
		switch {
		case d.Covered:
			c = '+'
		case d.Backups > 0:
			c = 'x'
		}
		line[n-1] = c
	}
	flush()
}

// receiptsText says how many of the range's backups have a signed
// receipt, and whether the signatures were checked.
func receiptsText(rep *catalog.AuditReport) string {
	backups := 0
	for _, na := range rep.Names {
		backups += na.Backups
	}
	if rep.ReceiptsChecked {
		return fmt.Sprintf("%d of %d backups have a receipt signed by a trusted key", rep.Signed, backups)
	}
	return "not counted (--trust-key PUB.pem checks and counts the backups' signed receipts)"
}

func auditText(w io.Writer, rep *catalog.AuditReport, path string) {
	fmt.Fprintf(w, "audit of %s, %s to %s (UTC)\n", path, rep.From.Format(time.DateOnly), rep.To.Format(time.DateOnly))
	verdict := "PASSED"
	if !rep.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "  result   %s: %s\n", verdict, coverage(rep))
	fmt.Fprintf(w, "  chain    %s\n", chainText(rep.Chain))
	if rep.Rehashed {
		fmt.Fprintf(w, "  archives re-hashed: %d no longer match\n", mismatched(rep))
	}
	fmt.Fprintf(w, "  receipts %s\n", receiptsText(rep))
	if len(rep.Names) == 0 {
		fmt.Fprintln(w, "  no backups in the catalog up to the range's end")
	}
	for _, na := range rep.Names {
		fmt.Fprintf(w, "\n%s: %d of %d days covered", safe(na.Name), na.DaysCovered, na.DaysInRange)
		if na.TrackedFrom != rep.From.Format(time.DateOnly) {
			fmt.Fprintf(w, " (counted from its first backup, %s)", na.TrackedFrom)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  backups\t%d: %d proven, %d failed, %d never proven; %d pruned since\n", na.Backups, na.Proven, na.Failed, na.Unverified, na.Pruned)
		fmt.Fprintf(tw, "  proofs\t%d run: %d passed, %d failed\n", na.ProofsRun, na.ProofsOK, na.ProofsBad)
		fmt.Fprintf(tw, "  longest gap\t%s\n", gapText(na.LongestGap))
		if len(na.Uncovered) > 0 {
			fmt.Fprintf(tw, "  not covered\t%s\n", strings.Join(na.Uncovered, ", "))
		}
		tw.Flush()
		calendar(w, na)
		for _, f := range na.Failures {
			fmt.Fprintf(w, "  failed %s of %s on %s: %s\n", f.What, f.BackupID, f.At.UTC().Format("2006-01-02 15:04"), safeText(f.Error))
		}
	}
	fmt.Fprintln(w, "\n(+ proven backup, x backups but none proven, . no backup)")
}

func auditCSV(w io.Writer, rep *catalog.AuditReport) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"date", "name", "covered", "backup_id", "blake3", "status", "backups", "proofs_passed", "proofs_failed", "archive_check"})
	for _, na := range rep.Names {
		for _, d := range na.Days {
			cw.Write([]string{d.Date, na.Name, strconv.FormatBool(d.Covered), d.BackupID, d.BLAKE3, d.Status,
				strconv.Itoa(d.Backups), strconv.Itoa(d.ProofsOK), strconv.Itoa(d.ProofsBad), d.Check})
		}
	}
	cw.Flush()
	return cw.Error()
}

// mdCell escapes what would break a markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`).Replace(safe(s))
}

func auditMarkdown(w io.Writer, rep *catalog.AuditReport, path string) {
	verdict := "**PASSED**"
	if !rep.OK {
		verdict = "**FAILED**"
	}
	fmt.Fprintf(w, "# Backup audit, %s to %s\n\n", rep.From.Format(time.DateOnly), rep.To.Format(time.DateOnly))
	fmt.Fprintf(w, "- Result: %s — %s\n", verdict, coverage(rep))
	fmt.Fprintf(w, "- Catalog: `%s`\n", path)
	fmt.Fprintf(w, "- Event chain: %s\n", mdCell(chainText(rep.Chain)))
	if rep.Rehashed {
		fmt.Fprintf(w, "- Archives re-hashed with BLAKE3 against the catalog: %d no longer match\n", mismatched(rep))
	} else {
		fmt.Fprintf(w, "- Archives were not re-hashed for this report (`--rehash` does)\n")
	}
	fmt.Fprintf(w, "- Signed receipts: %s\n", receiptsText(rep))
	fmt.Fprintf(w, "- Generated by pgattest %s at %s\n\n", Version, rep.GeneratedAt.Format(time.RFC3339))
	fmt.Fprintln(w, "A day is covered when a backup started that day (UTC) and its newest proof passed: the archive was restored into a throwaway PostgreSQL and every table's rows counted, or re-hashed and found unchanged since such a restore.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Summary")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Database | Days covered | Backups | Proofs passed | Proofs failed | Longest gap |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, na := range rep.Names {
		fmt.Fprintf(w, "| %s | %d / %d | %d | %d | %d | %s |\n", mdCell(na.Name), na.DaysCovered, na.DaysInRange, na.Backups, na.ProofsOK, na.ProofsBad, mdCell(gapText(na.LongestGap)))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Exceptions")
	fmt.Fprintln(w)
	listed := false
	for _, na := range rep.Names {
		for _, d := range na.Uncovered {
			fmt.Fprintf(w, "- %s: **no proven backup on %s**\n", mdCell(na.Name), d)
			listed = true
		}
		for _, f := range na.Failures {
			fmt.Fprintf(w, "- %s: failed %s of `%s` on %s: %s\n", mdCell(na.Name), f.What, f.BackupID, f.At.UTC().Format("2006-01-02 15:04"), mdCell(f.Error))
			listed = true
		}
	}
	if !rep.Chain.OK {
		fmt.Fprintf(w, "- The catalog's event chain is broken: %s\n", mdCell(rep.Chain.Broken.Error()))
		listed = true
	}
	if !listed {
		fmt.Fprintln(w, "None.")
	}
	for _, na := range rep.Names {
		fmt.Fprintf(w, "\n## %s, day by day\n\n", mdCell(na.Name))
		fmt.Fprintln(w, "| Date | Proven backup | BLAKE3 | Backups | Proofs passed | Proofs failed |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, d := range na.Days {
			id, digest := "**none**", ""
			if d.Covered {
				id, digest = "`"+d.BackupID+"`", "`"+d.BLAKE3+"`"
				if d.Status == catalog.StatusPruned {
					id += " (pruned since)"
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d |\n", d.Date, id, digest, d.Backups, d.ProofsOK, d.ProofsBad)
		}
	}
}

// writeNewFile writes b to a new file at path (never over one there, no
// link followed), 0644: a signed envelope holds nothing secret.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
