package catalog

// The catalog owns one rule: what a record's status becomes, and which
// event records it, when a proof is added. Backup, verify and every later
// writer call it; nothing else decides a status.
//
// "verified" means a passed restore proof and nothing else: the archive's
// bytes were restored into a fresh Postgres and every table counted. A
// passed read or hash-only proof shows the bytes are readable or unchanged,
// which makes a new backup "unverified" and leaves a proven one proven. A
// failed proof of any kind makes the backup "failed". A proof that could
// not run (no server binaries, a cluster that did not start) says nothing
// about the archive: the status stays as it was ("unverified" for a new
// backup). A pruned backup stays pruned whatever a later proof finds; a
// missing one (prune found its archive gone) takes the status its proofs
// give once a proof reads the archive again.

// ProofError is the status of a proof that could not run: it is recorded
// (at backup) but is no verdict on the archive.
const ProofError = "error"

// Outcome is the status prior takes when proof p is added ("" for a new
// record; p nil for a backup made without any proof, --verify none), and
// the kind of event that records the change: KindRecorded for a new record,
// KindProved or KindProofFailed for a later proof, "" when a later proof
// that could not run changes nothing and is not recorded.
func Outcome(prior string, p *Proof) (status, kind string) {
	status = prior
	if prior == "" {
		status = StatusUnverified
	}
	switch {
	case p == nil:
	case prior == StatusPruned:
	case p.Status == ProofFailed:
		status = StatusFailed
	case p.Status == ProofPassed && p.Mode == "restore":
		status = StatusVerified
	}
	switch {
	case prior == "":
		kind = KindRecorded
	case p == nil, p.Status == ProofError:
	case p.Status == ProofPassed:
		kind = KindProved
	default:
		kind = KindProofFailed
	}
	return status, kind
}

// Apply adds proof p to r, sets the status Outcome gives, and returns the
// event kind to record ("" when nothing is to be recorded). A new record
// (Status "") takes its first proof, or none when p is nil.
func (r *Record) Apply(p *Proof) string {
	prior := r.Status
	if prior == StatusMissing && p != nil && p.Status == ProofPassed {
		// The archive is back (a proof read it): the status its proofs
		// give, as if it had never gone.
		prior = StatusUnverified
		if ProvenByProofs(r.Proofs) {
			prior = StatusVerified
		}
	}
	status, kind := Outcome(prior, p)
	if kind == "" {
		return ""
	}
	if r.Proofs == nil {
		r.Proofs = []Proof{}
	}
	if p != nil {
		r.Proofs = append(r.Proofs, *p)
	}
	r.Status = status
	return kind
}

// StatusByProofs is the status a record's proofs give it, applied in
// order to a new record ("unverified" when none decides).
func StatusByProofs(proofs []Proof) string {
	status := ""
	for i := range proofs {
		status, _ = Outcome(status, &proofs[i])
	}
	if status == "" {
		status = StatusUnverified
	}
	return status
}

// ProvenByProofs reports whether a list of proofs, applied in order to a
// new record, leaves it verified: its newest decisive proof (a restore, or
// any that failed) passed. An audit counts a pruned backup's day by it.
func ProvenByProofs(proofs []Proof) bool {
	status := ""
	for i := range proofs {
		status, _ = Outcome(status, &proofs[i])
	}
	return status == StatusVerified
}

// LastRestore returns the newest passed restore proof (the rows it counted
// are what list and show report), or nil.
func (r *Record) LastRestore() *Proof {
	for i := len(r.Proofs) - 1; i >= 0; i-- {
		if p := &r.Proofs[i]; p.Mode == "restore" && p.Status == ProofPassed {
			return p
		}
	}
	return nil
}
