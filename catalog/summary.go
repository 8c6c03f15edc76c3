package catalog

import (
	"encoding/binary"
	"encoding/hex"
	"time"
)

// The time index (by_time) keeps, beside each key, a summary of the record:
// its status, its archive's digest and each proof's status and start. An
// audit reads a year of a name from the summaries alone (a record decodes in
// tens of microseconds, a summary in tens of nanoseconds), and decodes the
// record only for what the summary lacks: a failed proof's message, an
// archive to re-hash. catalog verify checks every summary against its
// record, so the chain covers them too. Catalogs written before summaries
// have empty values there, and their records are decoded.

// summaryVersion 2 tells a passed restore proof from a passed read or
// hash-only one (only a restore makes a backup verified); version 1, of
// catalogs before, did not, and such records are decoded for an audit.
const summaryVersion = 2

var statusCodes = map[string]byte{StatusVerified: 1, StatusFailed: 2, StatusUnverified: 3, StatusPruned: 4, StatusMissing: 5}
var statusNames = map[byte]string{1: StatusVerified, 2: StatusFailed, 3: StatusUnverified, 4: StatusPruned, 5: StatusMissing}

// summarize returns the summary of r, or nil when r cannot be summarized
// (an unknown status, a digest that is not 64 hex digits): its record is
// then always decoded.
func summarize(r *recordHead) []byte { return summarizeAs(r, summaryVersion) }

// summarizeAs is summarize in a given version: catalog verify checks a
// stored summary against its record in the version it was written in.
func summarizeAs(r *recordHead, version byte) []byte {
	code, ok := statusCodes[r.Status]
	digest, err := hex.DecodeString(r.Archive.BLAKE3)
	if !ok || err != nil || len(digest) != 32 {
		return nil
	}
	b := make([]byte, 0, 2+32+9*len(r.Proofs))
	b = append(b, version, code)
	b = append(b, digest...)
	for _, p := range r.Proofs {
		var pc byte = 2 // failed, or could not run
		switch {
		case p.Status != ProofPassed:
		case p.Mode == "restore" || version == 1:
			pc = 1
		default: // read or hash-only
			pc = 3
		}
		var at uint64
		if !p.StartedAt.IsZero() {
			at = uint64(p.StartedAt.UnixNano())
		}
		b = binary.BigEndian.AppendUint64(append(b, pc), at)
	}
	return b
}

// fromSummary rebuilds what an audit needs of a record from its summary:
// ID, name, start, status, digest, proofs' status and start. ok is false
// when there is no usable summary, or a proof did not pass (its message is
// only in the record).
func fromSummary(name, id string, started time.Time, s []byte) (*Record, bool) {
	if len(s) < 34 || s[0] != summaryVersion || (len(s)-34)%9 != 0 { // version 1: decode the record
		return nil, false
	}
	status, ok := statusNames[s[1]]
	if !ok {
		return nil, false
	}
	r := &Record{ID: id, Name: name, StartedAt: started, Status: status,
		Archive: Archive{BLAKE3: hex.EncodeToString(s[2:34])}, Proofs: make([]Proof, 0, (len(s)-34)/9)}
	for p := s[34:]; len(p) > 0; p = p[9:] {
		mode := map[byte]string{1: "restore", 3: "hash"}[p[0]] // read or hash: the same to an audit
		if mode == "" {
			return nil, false
		}
		var at time.Time
		if n := binary.BigEndian.Uint64(p[1:9]); n != 0 {
			at = time.Unix(0, int64(n)).UTC()
		}
		r.Proofs = append(r.Proofs, Proof{Mode: mode, Status: ProofPassed, StartedAt: at})
	}
	return r, true
}

// recordHead is the part of a record that the chain check and the summary
// read: decoding it skips the bulk of a record (the tables and their counts).
type recordHead struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	Archive   struct {
		BLAKE3 string `json:"blake3"`
	} `json:"archive"`
	TOC struct {
		EntriesBLAKE3 string `json:"entries_blake3"`
	} `json:"toc"`
	Proofs []struct {
		Mode      string    `json:"mode"`
		Status    string    `json:"status"`
		StartedAt time.Time `json:"started_at"`
	} `json:"proofs"`
}

func headOf(r *Record) *recordHead {
	h := &recordHead{Name: r.Name, Status: r.Status, StartedAt: r.StartedAt}
	h.Archive.BLAKE3 = r.Archive.BLAKE3
	h.TOC.EntriesBLAKE3 = r.TOC.EntriesBLAKE3
	for _, p := range r.Proofs {
		h.Proofs = append(h.Proofs, struct {
			Mode      string    `json:"mode"`
			Status    string    `json:"status"`
			StartedAt time.Time `json:"started_at"`
		}{p.Mode, p.Status, p.StartedAt})
	}
	return h
}
