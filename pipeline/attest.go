package pipeline

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/pipeline/repo"
)

// A rebuild that trusts keys, not files (catalog rebuild --trust-key): a
// manifest's proofs count only where a receipt beside it, signed by a
// trusted key, covers the archive's digest and that very proof. Anything
// else a writer of the repository could have written: its proofs are kept
// as the manifest's claims (UnattestedProofs), counted for nothing, and
// the record is unverified, with why.

// Why a rebuilt record's proofs are not attested.
const (
	AttestUnsigned   = "unsigned"                // no receipt beside the manifest
	AttestUnknownKey = "unknown key"             // signed, by no trusted key
	AttestMismatch   = "receipt does not match"  // altered, or for another archive or proof
	AttestSigned     = "signed by a trusted key" // every proof covered
)

// loadTrusted reads the trusted public keys.
func loadTrusted(paths []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, p := range paths {
		k, err := receipt.LoadPublic(p)
		var ke *receipt.KeyError
		if errors.As(err, &ke) {
			return nil, &UsageError{Err: err, hint: "give the signer's public key (pgattest key public SIGN.pem > PUB.pem)"}
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// attest checks rec (read from the manifest at mkey) against the receipt
// beside it, and keeps in rec.Proofs only the proofs a trusted receipt
// covers; the others go to rec.UnattestedProofs. It returns what it found
// (one of the Attest words), or an error when the store could not say.
func attest(ctx context.Context, r repo.Repo, rec *catalog.Record, mkey string, keys []ed25519.PublicKey) (string, error) {
	rkey := strings.TrimSuffix(mkey, ".manifest.json") + ".receipt.json"
	why, err := attestWith(ctx, r, rec, rkey, keys)
	if err != nil {
		return "", err
	}
	if why != AttestSigned {
		rec.UnattestedProofs = append(rec.UnattestedProofs, rec.Proofs...)
		rec.Proofs = nil
		rec.Receipts = nil
	}
	rec.Attestation = why
	return why, nil
}

func attestWith(ctx context.Context, r repo.Repo, rec *catalog.Record, rkey string, keys []ed25519.PublicKey) (string, error) {
	body, err := r.Open(ctx, rkey, "")
	if errors.Is(err, repo.ErrNotFound) {
		return AttestUnsigned, nil
	}
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(body, 16<<20))
	body.Close()
	if err != nil {
		return "", err
	}
	payload, keyID, err := receipt.Open(b, keys)
	if err != nil {
		return unopened(b, keys), nil
	}
	st, err := receipt.Parse(payload)
	if err != nil {
		return AttestMismatch, nil
	}
	pr, subj := st.Predicate, st.Subject[0]
	a := rec.Archive
	if pr.Backup.ID != rec.ID || pr.Backup.Name != strings.SplitN(rec.Name, "~", 2)[0] || subj.Digest["blake3"] != a.BLAKE3 ||
		(a.SHA256 != "" && subj.Digest["sha256"] != a.SHA256) || pr.Archive.Size != a.Size || pr.Archive.Format != a.Format {
		return AttestMismatch, nil
	}
	// The backup's proof is the one its receipt covers (later proofs by
	// verify are not in manifests): every proof the manifest lists must
	// be it.
	for _, p := range rec.Proofs {
		if !covers(pr.Proof, p) {
			return AttestMismatch, nil
		}
	}
	rec.Receipts = []catalog.Receipt{{SHA256: receipt.Digest(b), KeyID: keyID, Path: location{repo: r}.show(rkey), Envelope: json.RawMessage(b)}}
	return AttestSigned, nil
}

// unopened says why an envelope no trusted key opened failed: a signature
// naming a trusted key's id that does not check is an altered receipt; one
// naming another key is another key's.
func unopened(b []byte, keys []ed25519.PublicKey) string {
	var env receipt.Envelope
	if json.Unmarshal(b, &env) != nil || len(env.Signatures) == 0 {
		return AttestUnsigned
	}
	for _, s := range env.Signatures {
		for _, k := range keys {
			if s.KeyID == receipt.KeyID(k) {
				return AttestMismatch
			}
		}
	}
	return AttestUnknownKey
}

// covers says whether a receipt's proof is the record's proof p: its mode,
// verdict, start, duration, rows and every table's count.
func covers(rp receipt.ProofRef, p catalog.Proof) bool {
	if rp.Mode != p.Mode || rp.Verdict != p.Status || rp.Rows != p.Rows || !rp.StartedAt.Equal(p.StartedAt) ||
		rp.DurationMS != p.DurationMS || len(rp.Tables) != len(p.Tables) {
		return false
	}
	for i, t := range p.Tables {
		if rp.Tables[i] != (receipt.TableRef{Schema: t.Schema, Name: t.Name, Rows: t.Rows}) {
			return false
		}
	}
	return true
}

// ReceiptChecker loads trusted public keys and returns what an audit asks
// of each backup: whether one of its receipts is signed by a trusted key
// and names its archive (the digest) and its backup.
func ReceiptChecker(paths []string) (func(*catalog.Record) bool, error) {
	keys, err := loadTrusted(paths)
	if err != nil || keys == nil {
		return nil, err
	}
	return func(r *catalog.Record) bool {
		for _, rc := range r.Receipts {
			payload, _, err := receipt.Open(rc.Envelope, keys)
			if err != nil {
				continue
			}
			st, err := receipt.Parse(payload)
			if err == nil && st.Predicate.Backup.ID == r.ID && st.Subject[0].Digest["blake3"] == r.Archive.BLAKE3 {
				return true
			}
		}
		return false
	}, nil
}
