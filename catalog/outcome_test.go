package catalog

import "testing"

// The one rule: only a passed restore proof makes a backup verified.
func TestOutcome(t *testing.T) {
	restore := func(status string) *Proof { return &Proof{Mode: "restore", Status: status} }
	read := func(status string) *Proof { return &Proof{Mode: "read", Status: status} }
	hash := func(status string) *Proof { return &Proof{Mode: "hash", Status: status} }
	tests := []struct {
		name        string
		prior       string
		proof       *Proof
		status, kin string
	}{
		{"new, no proof (--verify none)", "", nil, StatusUnverified, KindRecorded},
		{"new, restore passed", "", restore(ProofPassed), StatusVerified, KindRecorded},
		{"new, read passed (--verify read)", "", read(ProofPassed), StatusUnverified, KindRecorded},
		{"new, restore failed", "", restore(ProofFailed), StatusFailed, KindRecorded},
		{"new, read failed", "", read(ProofFailed), StatusFailed, KindRecorded},
		{"new, proof could not run", "", restore(ProofError), StatusUnverified, KindRecorded},
		{"unverified, restore passed", StatusUnverified, restore(ProofPassed), StatusVerified, KindProved},
		{"unverified, hash passed", StatusUnverified, hash(ProofPassed), StatusUnverified, KindProved},
		{"verified, hash passed", StatusVerified, hash(ProofPassed), StatusVerified, KindProved},
		{"verified, hash failed", StatusVerified, hash(ProofFailed), StatusFailed, KindProofFailed},
		{"failed, hash passed: still failed", StatusFailed, hash(ProofPassed), StatusFailed, KindProved},
		{"failed, restore passed", StatusFailed, restore(ProofPassed), StatusVerified, KindProved},
		{"verified, could not run: nothing recorded", StatusVerified, restore(ProofError), StatusVerified, ""},
		{"pruned, restore passed: stays pruned", StatusPruned, restore(ProofPassed), StatusPruned, KindProved},
		{"pruned, hash failed: stays pruned", StatusPruned, hash(ProofFailed), StatusPruned, KindProofFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, kind := Outcome(tt.prior, tt.proof)
			if status != tt.status || kind != tt.kin {
				t.Errorf("Outcome(%q, %+v) = %q, %q; want %q, %q", tt.prior, tt.proof, status, kind, tt.status, tt.kin)
			}
			r := &Record{Status: tt.prior}
			if got := r.Apply(tt.proof); got != tt.kin {
				t.Errorf("Apply kind %q, want %q", got, tt.kin)
			}
			want := 0
			if tt.proof != nil && tt.kin != "" {
				want = 1
			}
			if len(r.Proofs) != want || (tt.kin != "" && r.Status != tt.status) {
				t.Errorf("after Apply: status %q with %d proofs", r.Status, len(r.Proofs))
			}
		})
	}
}

// A backup stands proven by its newest decisive proof: a hash check after
// a failed restore does not make it proven; a restore after a failure does.
func TestProvenByProofs(t *testing.T) {
	p := func(mode, status string) Proof { return Proof{Mode: mode, Status: status} }
	for _, tt := range []struct {
		proofs []Proof
		want   bool
	}{
		{nil, false},
		{[]Proof{p("read", ProofPassed)}, false},
		{[]Proof{p("restore", ProofPassed)}, true},
		{[]Proof{p("restore", ProofPassed), p("hash", ProofPassed)}, true},
		{[]Proof{p("restore", ProofPassed), p("hash", ProofFailed)}, false},
		{[]Proof{p("restore", ProofFailed), p("hash", ProofPassed)}, false},
		{[]Proof{p("restore", ProofFailed), p("restore", ProofPassed)}, true},
		{[]Proof{p("restore", ProofPassed), p("restore", ProofError)}, true},
	} {
		if got := ProvenByProofs(tt.proofs); got != tt.want {
			t.Errorf("ProvenByProofs(%v) = %v, want %v", tt.proofs, got, tt.want)
		}
	}
}
