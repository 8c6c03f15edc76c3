package pipeline

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/verify"
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

// attest checks rec (read from the manifest at mkey, its archive placed
// at archiveKey) against the receipt beside it, and keeps in rec.Proofs
// only the proofs a trusted receipt covers; the others go to
// rec.UnattestedProofs. The archive's bytes are read whole: the receipt's
// digests must be theirs, and the record's segment digests (what a
// restore checks each piece against) are taken from them, not from the
// manifest. It returns what it found (one of the Attest words), or an
// error when the store could not say.
func attest(ctx context.Context, r repo.Repo, rec *catalog.Record, asked, mkey, archiveKey string, entries []catalog.TOCEntry, keys []ed25519.PublicKey) (string, error) {
	rkey := strings.TrimSuffix(mkey, ".manifest.json") + ".receipt.json"
	why, err := attestWith(ctx, r, rec, asked, rkey, archiveKey, entries, keys)
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

func attestWith(ctx context.Context, r repo.Repo, rec *catalog.Record, asked, rkey, archiveKey string, entries []catalog.TOCEntry, keys []ed25519.PublicKey) (string, error) {
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
	if err != nil || len(rec.Proofs) > 1 || rec.Archive.Format != verify.FormatCustom {
		return AttestMismatch, nil // a manifest holds the backup's proof alone; receipts name one file
	}
	// The signed statement must be the one this record makes, field by
	// field: backup, source, tools, times, TOC (its entries' digest from
	// the manifest's entries), archive, proof.
	want := *rec
	want.Name = asked
	if entries != nil {
		if want.TOC.EntriesBLAKE3, err = catalog.EntriesDigest(entries); err != nil {
			return "", err
		}
	}
	if want.Archive.SHA256 == "" {
		want.Archive.SHA256 = st.Subject[0].Digest["sha256"] // checked against the bytes below
	}
	var proof *catalog.Proof
	if len(rec.Proofs) == 1 {
		proof = &rec.Proofs[0]
	}
	pr := st.Predicate
	mine, err := receipt.For(&want, proof, path.Base(strings.TrimSuffix(archiveKey, "/")), pr.PreviousReceipt, pr.CatalogHead, pr.MadeAt)
	if err != nil {
		return AttestMismatch, nil
	}
	a, _ := json.Marshal(mine)
	s, _ := json.Marshal(st)
	if !bytes.Equal(a, s) {
		return AttestMismatch, nil
	}
	// The archive's bytes, read whole: what the receipt names, and what a
	// restore will check each segment of.
	b3, sha, segs, size, err := storedDigests(ctx, rec)
	if err != nil {
		var missing *verify.MissingError
		if errors.As(err, &missing) {
			return AttestMismatch, nil
		}
		return "", err
	}
	if b3 != st.Subject[0].Digest["blake3"] || sha != st.Subject[0].Digest["sha256"] || size != pr.Archive.Size {
		return AttestMismatch, nil
	}
	rec.Archive.SHA256 = sha
	rec.Archive.Segments = &catalog.Segments{Size: verify.SegmentSize, BLAKE3: segs}
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
