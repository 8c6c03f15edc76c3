package catalog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditQuery selects what Audit reports on.
type AuditQuery struct {
	From, To time.Time // the days from From's day to To's day, UTC, both included
	Names    []string  // "" or empty: every name in the catalog
	Now      time.Time // days after Now's day are not counted; zero: time.Now()
	// Check, when set, re-examines each backup's archive (not pruned) and
	// returns "" when it still matches its digest, else why not. A backup
	// whose archive fails the check does not cover its day.
	Check func(*Record) string
	// Receipt, when set, says whether a backup has a receipt whose
	// signature a trusted key checks (AuditReport.Signed counts them);
	// without it receipts are not counted.
	Receipt func(*Record) bool
	// Whole reads every record whole, not the time index's summaries:
	// what receipts, rows and proof times need (set by Receipt too).
	Whole bool
}

// AuditReport is the evidence for an auditor: for each name and each day,
// whether a proven backup stands for that day, and the chain's state.
type AuditReport struct {
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"`
	GeneratedAt time.Time    `json:"generated_at"`
	OK          bool         `json:"ok"` // every day covered, chain intact, every archive checked matched
	DaysInRange int          `json:"days_in_range"`
	DaysCovered int          `json:"days_covered"`
	Names       []NameAudit  `json:"names"`
	Chain       ChainSummary `json:"chain"`
	Rehashed    bool         `json:"rehashed"`
	// Signed counts the range's backups with a receipt a trusted key
	// checks, when ReceiptsChecked (audit --trust-key).
	Signed          int  `json:"signed"`
	ReceiptsChecked bool `json:"receipts_checked"`
}

// ChainSummary is VerifyChain's result in a report.
type ChainSummary struct {
	OK      bool        `json:"ok"`
	Events  int         `json:"events"`
	HeadSeq uint64      `json:"head_seq"`
	Head    string      `json:"head"`
	Broken  *BrokenLink `json:"broken,omitempty"`
}

// NameAudit is one name's part of a report.
type NameAudit struct {
	Name string `json:"name"`
	// TrackedFrom is the first day counted: the range's first day, or the
	// day of the name's first backup when that is later.
	TrackedFrom string     `json:"tracked_from"`
	DaysInRange int        `json:"days_in_range"`
	DaysCovered int        `json:"days_covered"`
	Backups     int        `json:"backups"`
	Proven      int        `json:"proven"`
	Failed      int        `json:"failed"`
	Unverified  int        `json:"unverified"`
	Pruned      int        `json:"pruned"`
	Signed      int        `json:"signed"` // backups with a (valid, when checked) signed receipt
	ProofsRun   int        `json:"proofs_run"`
	ProofsOK    int        `json:"proofs_passed"`
	ProofsBad   int        `json:"proofs_failed"`
	LongestGap  Gap        `json:"longest_gap"`
	Uncovered   []string   `json:"uncovered"` // days without a proven backup
	Failures    []Failure  `json:"failures"`  // failed proofs and failed archive checks
	Days        []DayAudit `json:"days"`
	Mismatched  []string   `json:"mismatched,omitempty"` // backups whose archive failed Check
}

// Gap is the longest stretch without a proven backup.
type Gap struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Hours float64   `json:"hours"`
}

// Failure is a failed proof or archive check of one backup.
type Failure struct {
	BackupID string    `json:"backup_id"`
	At       time.Time `json:"at"`
	What     string    `json:"what"` // "proof" or "archive check"
	Error    string    `json:"error"`
}

// DayAudit is one name's evidence for one day.
type DayAudit struct {
	Date      string     `json:"date"` // YYYY-MM-DD, UTC
	Covered   bool       `json:"covered"`
	BackupID  string     `json:"backup_id,omitempty"` // the newest proven backup of the day
	BLAKE3    string     `json:"blake3,omitempty"`
	Status    string     `json:"status,omitempty"` // of that backup: verified or pruned
	Backups   int        `json:"backups"`
	ProofsOK  int        `json:"proofs_passed"`
	ProofsBad int        `json:"proofs_failed"`
	Check     string     `json:"archive_check,omitempty"` // with Check: "match", "pruned" or why not
	ProvedAt  *time.Time `json:"proved_at,omitempty"`     // the standing backup's newest passed proof
	Rows      int64      `json:"rows,omitempty"`          // the rows that proof restored
	Receipt   string     `json:"receipt,omitempty"`       // the SHA-256 of its newest receipt
	// Each is, for a day not proven, every backup that started it,
	// newest first: what a reader of the report looks up. (A proven day
	// names its backup above; listing every backup of every day would
	// grow the report with the backups, not the days.)
	Each []DayBackup `json:"each,omitempty"`
}

// DayBackup is one backup of a day, as the audit saw it.
type DayBackup struct {
	ID     string `json:"id"`
	BLAKE3 string `json:"blake3"`
	Status string `json:"status"`          // the record's: verified, failed, unverified, pruned, missing
	Proof  string `json:"proof,omitempty"` // its newest proof's verdict: passed, failed, error ("" for none)
	// ProvedAt and Rows are its newest proof's start and restored rows.
	ProvedAt *time.Time `json:"proved_at,omitempty"`
	Rows     int64      `json:"rows,omitempty"`
}

// Audit reports, for every day in the range and every name, whether a proven
// backup exists: a backup that started that day (UTC) whose newest proof
// passed — including one pruned since, whose archive is gone but whose proof
// stands in the record. A name is counted from the day of its first backup
// if that is later than the range's start; days after today are not counted.
// It is ReadAudit, then Report.
func (c *Catalog) Audit(q AuditQuery) (*AuditReport, error) {
	d, err := c.ReadAudit(q)
	if err != nil {
		return nil, err
	}
	return d.Report(), nil
}

// AuditData is what an audit reads from the catalog. Report turns it into the
// report; call it after closing the catalog when q.Check re-hashes archives,
// which takes long, so that no backup waits for the catalog meanwhile.
type AuditData struct {
	q                AuditQuery
	now, first, last time.Time
	chain            ChainSummary
	names            []nameRecords
}

type nameRecords struct {
	name  string
	start time.Time // the first day counted
	recs  []*Record // newest first
}

// ReadAudit reads the chain's state and the records of every name in the
// query's range.
func (c *Catalog) ReadAudit(q AuditQuery) (*AuditData, error) {
	return c.readAudit(q, true)
}

// readAudit is ReadAudit, with the chain check optional (benchmarks time
// the two apart).
func (c *Catalog) readAudit(q AuditQuery, checkChain bool) (*AuditData, error) {
	d := &AuditData{q: q, now: q.Now}
	if d.now.IsZero() {
		d.now = time.Now()
	}
	d.first, d.last = day(q.From), day(q.To)
	if today := day(d.now); d.last.After(today) {
		d.last = today
	}
	var err error
	if checkChain {
		chain, err := c.VerifyChain()
		if err != nil {
			return nil, err
		}
		d.chain = ChainSummary{OK: chain.OK(), Events: chain.Events, HeadSeq: chain.HeadSeq, Head: chain.Head, Broken: chain.Broken}
	}

	names := q.Names
	if len(names) == 0 {
		if names, err = c.Names(); err != nil {
			return nil, err
		}
	}
	rangeEnd := d.last.Add(24*time.Hour - time.Nanosecond)
	for _, name := range names {
		start := d.first // a name asked for by name is counted over the whole range
		if len(q.Names) == 0 {
			oldest, ok, err := c.firstStart(name)
			if err != nil {
				return nil, err
			}
			if !ok || oldest.After(rangeEnd) {
				continue // nothing of this name up to the range's end: not tracked yet
			}
			if f := day(oldest); f.After(start) {
				start = f
			}
		}
		recs, err := c.auditRecords(name, start, rangeEnd, q.Check != nil, q.Whole || q.Receipt != nil)
		if err != nil {
			return nil, err
		}
		d.names = append(d.names, nameRecords{name: name, start: start, recs: recs})
	}
	sort.Slice(d.names, func(i, j int) bool { return d.names[i].name < d.names[j].name })
	return d, nil
}

// auditRecords returns the backups of name started in [from, to], newest
// first, as much of each as an audit reads: from the time index's summary
// where it tells all, else (no summary, a proof that did not pass, or an
// archive to re-hash when full is set) the whole record.
func (c *Catalog) auditRecords(name string, from, to time.Time, full, whole bool) ([]*Record, error) {
	var out []*Record
	err := c.view(func(tx *bolt.Tx) error {
		backups := tx.Bucket(bucketBackups)
		prefix := append([]byte(name), 0)
		cur := tx.Bucket(bucketByTime).Cursor()
		k, _ := cur.Seek(binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), nanos(to)+1))
		var v []byte
		if k == nil {
			k, v = cur.Last()
		} else {
			k, v = cur.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) > len(prefix)+8; k, v = cur.Prev() {
			ts := binary.BigEndian.Uint64(k[len(prefix):])
			if ts < nanos(from) {
				break
			}
			id := k[len(prefix)+8:]
			started := time.Unix(0, int64(ts)).UTC()
			r, ok := fromSummary(name, string(id), started, v)
			if !ok || whole || (full && r.Status == StatusVerified) { // full: its archive is to be re-hashed
				var err error
				if r, err = decode(backups.Get(id)); err != nil {
					return fmt.Errorf("record %q: %w", id, err)
				}
			}
			if r.StartedAt.After(to) || r.StartedAt.Before(from) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Report builds the report, running q.Check on the archives if set.
func (d *AuditData) Report() *AuditReport {
	rep := &AuditReport{From: d.q.From.UTC(), To: d.q.To.UTC(), GeneratedAt: d.now.UTC(), Rehashed: d.q.Check != nil, Chain: d.chain,
		ReceiptsChecked: d.q.Receipt != nil}
	end := d.last.Add(24 * time.Hour)
	if end.After(d.now) {
		end = d.now
	}
	rep.OK = rep.Chain.OK
	for _, n := range d.names {
		na := auditName(n.name, n.start, d.last, end, n.recs, d.q.Check, d.q.Receipt)
		rep.Names = append(rep.Names, na)
		rep.Signed += na.Signed
		rep.DaysInRange += na.DaysInRange
		rep.DaysCovered += na.DaysCovered
		rep.OK = rep.OK && len(na.Mismatched) == 0
	}
	rep.OK = rep.OK && rep.DaysCovered == rep.DaysInRange
	return rep
}

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// standsProven reports whether a record stands proven by a restore
// (verified, or pruned after its newest decisive proof passed): the one
// rule of Outcome, applied to its proofs.
func standsProven(r *Record) bool {
	return (r.Status == StatusVerified || r.Status == StatusPruned) && ProvenByProofs(r.Proofs)
}

// auditName audits one name's records over the days first..last; end is
// where the range stops for the longest gap (the last day's end, or now).
func auditName(name string, first, last, end time.Time, recs []*Record, check func(*Record) string, signed func(*Record) bool) NameAudit {
	if signed == nil { // not counted: the summaries hold no receipts
		signed = func(*Record) bool { return false }
	}
	na := NameAudit{Name: name, TrackedFrom: first.Format(time.DateOnly), Uncovered: []string{}, Failures: []Failure{}}
	byDay := map[string][]*Record{}
	for _, r := range recs { // newest first
		k := r.StartedAt.UTC().Format(time.DateOnly)
		byDay[k] = append(byDay[k], r)
	}
	var provenTimes []time.Time
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		k := d.Format(time.DateOnly)
		da := DayAudit{Date: k}
		var each []DayBackup
		for _, r := range byDay[k] {
			da.Backups++
			na.Backups++
			db := DayBackup{ID: r.ID, BLAKE3: r.Archive.BLAKE3, Status: r.Status}
			if p := r.LastProof(); p != nil {
				at := p.StartedAt
				db.Proof, db.ProvedAt, db.Rows = p.Status, &at, p.Rows
			}
			each = append(each, db)
			switch p := r.LastProof(); {
			case standsProven(r):
				na.Proven++
			case p != nil && p.Status == ProofFailed:
				na.Failed++
			default: // never proven by a restore, or its proof could not run
				na.Unverified++
			}
			if r.Status == StatusPruned {
				na.Pruned++
			}
			if signed(r) {
				na.Signed++
			}
			for _, p := range r.Proofs {
				na.ProofsRun++
				if p.Status == ProofPassed {
					na.ProofsOK++
					da.ProofsOK++
				} else {
					na.ProofsBad++
					da.ProofsBad++
					na.Failures = append(na.Failures, Failure{BackupID: r.ID, At: p.StartedAt, What: "proof", Error: firstLine(p.Error)})
				}
			}
			if !standsProven(r) {
				continue
			}
			verdict := ""
			if check != nil {
				verdict = "pruned"
				if r.Status != StatusPruned {
					verdict = "match"
					if why := check(r); why != "" {
						verdict = why
						na.Mismatched = append(na.Mismatched, r.ID)
						na.Failures = append(na.Failures, Failure{BackupID: r.ID, At: r.StartedAt, What: "archive check", Error: why})
						if da.Check == "" {
							da.Check = why
						}
						continue
					}
				}
			}
			provenTimes = append(provenTimes, r.StartedAt)
			if !da.Covered { // the newest proven backup of the day stands for it
				da.Covered, da.BackupID, da.BLAKE3, da.Status, da.Check = true, r.ID, r.Archive.BLAKE3, r.Status, verdict
				for i := len(r.Proofs) - 1; i >= 0; i-- {
					if p := r.Proofs[i]; p.Status == ProofPassed && p.Mode == "restore" {
						at := p.StartedAt
						da.ProvedAt, da.Rows = &at, p.Rows
						break
					}
				}
				if n := len(r.Receipts); n > 0 {
					da.Receipt = r.Receipts[n-1].SHA256
				}
			}
		}
		if da.Covered {
			na.DaysCovered++
		} else {
			na.Uncovered = append(na.Uncovered, k)
			da.Each = each
		}
		na.DaysInRange++
		na.Days = append(na.Days, da)
	}
	sort.Slice(na.Failures, func(i, j int) bool { return na.Failures[i].At.Before(na.Failures[j].At) })
	na.LongestGap = longestGap(first, end, provenTimes)
	return na
}

// longestGap is the longest stretch between consecutive proven backups,
// counting from the first day's start and up to end.
func longestGap(from, to time.Time, times []time.Time) Gap {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	points := append(append([]time.Time{from}, times...), to)
	var g Gap
	for i := 1; i < len(points); i++ {
		if d := points[i].Sub(points[i-1]); d > g.To.Sub(g.From) {
			g.From, g.To = points[i-1].UTC(), points[i].UTC()
		}
	}
	g.Hours = g.To.Sub(g.From).Hours()
	return g
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
