package pipeline

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"time"

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
//
// Later proofs (verify --sign-key) are in no manifest: their receipts
// beside it (NAME-STAMP.verify-STAMP.receipt.json) are their only record in
// the repository. Each a trusted key signed, whose statement is the one
// this record makes with that proof, about these very bytes, adds its
// proof and receipt (later: how many), also to a record whose backup was
// not signed.
func attest(ctx context.Context, r repo.Repo, rec *catalog.Record, asked, mkey, archiveKey string, entries []catalog.TOCEntry, keys []ed25519.PublicKey) (why string, later, unread int, err error) {
	base := strings.TrimSuffix(mkey, ".manifest.json")
	stored := storedOnce(ctx, rec)
	why, err = attestWith(ctx, r, rec, asked, base+".receipt.json", archiveKey, entries, keys, stored)
	if err != nil {
		return "", 0, 0, err
	}
	if why != AttestSigned {
		rec.UnattestedProofs = append(rec.UnattestedProofs, rec.Proofs...)
		rec.Proofs = nil
		rec.Receipts = nil
	}
	rec.Attestation = why
	later, unread, err = laterProofs(ctx, r, rec, asked, base, archiveKey, entries, keys, stored)
	return why, later, unread, err
}

// storedBytes are an archive's digests, from its bytes read whole; a
// folder's blake3 is over its files, each in files with its SHA-256.
type storedBytes struct {
	blake3, sha256 string
	segments       []string
	size           int64
	files          []verify.FileDigest
}

// storedOnce reads rec's archive whole the first time it is asked, and
// gives the same digests after (a *verify.MissingError when it is gone).
func storedOnce(ctx context.Context, rec *catalog.Record) func() (storedBytes, error) {
	var sb storedBytes
	var err error
	read := false
	return func() (storedBytes, error) {
		if !read {
			read = true
			sb, err = storedDigests(ctx, rec)
		}
		return sb, err
	}
}

// signedAs checks that st is the statement rec makes with proof p, about
// the archive named archiveKey, and that the stored bytes are its
// subject; then rec takes the bytes' SHA-256 and segment digests. ok is
// false for a statement that is not (err: the store could not say).
func signedAs(st *receipt.Statement, rec *catalog.Record, p *catalog.Proof, asked, archiveKey string, entries []catalog.TOCEntry, stored func() (storedBytes, error)) (ok bool, err error) {
	want := *rec
	want.Name = asked
	if entries != nil {
		if want.TOC.EntriesBLAKE3, err = catalog.EntriesDigest(entries); err != nil {
			return false, err
		}
	}
	name := path.Base(strings.TrimSuffix(archiveKey, "/"))
	subjects := st.Subject // a folder's files: checked against the bytes below
	if want.Archive.Format != verify.FormatDirectory {
		if want.Archive.SHA256 == "" {
			want.Archive.SHA256 = st.Subject[0].Digest["sha256"] // checked against the bytes below
		}
		subjects = receipt.FileSubject(name, want.Archive)
	} else if folder, err := st.Folder(); err != nil || folder != name {
		return false, nil
	}
	pr := st.Predicate
	mine, err := receipt.For(&want, p, subjects, pr.PreviousReceipt, pr.CatalogHead, pr.MadeAt)
	if err != nil {
		return false, nil
	}
	a, _ := json.Marshal(mine)
	s, _ := json.Marshal(st)
	if !bytes.Equal(a, s) {
		return false, nil
	}
	// The archive's bytes, read whole: what the receipt names, and what a
	// restore will check each segment of.
	sb, err := stored()
	if err != nil {
		if errors.Is(err, verify.ErrMissing) { // gone, or not what pgattest wrote
			return false, nil
		}
		return false, err
	}
	if rec.Archive.Format == verify.FormatDirectory {
		// The folder's digest is the record's (the statement names it),
		// and each file is the subject of its name.
		ok := sb.blake3 == rec.Archive.BLAKE3 && sb.size == pr.Archive.Size && st.CheckFiles(ReceiptFiles(sb.files)) == nil
		return ok, nil
	}
	if sb.blake3 != st.Subject[0].Digest["blake3"] || sb.sha256 != st.Subject[0].Digest["sha256"] || sb.size != pr.Archive.Size {
		return false, nil
	}
	rec.Archive.SHA256 = sb.sha256
	rec.Archive.Segments = &catalog.Segments{Size: verify.SegmentSize, BLAKE3: sb.segments}
	return true, nil
}

// maxReceipt is the largest receipt a rebuild reads (one lists every
// table with its rows: a megabyte holds ten thousand tables).
const maxReceipt = 4 << 20

// laterProofs adds the proofs of the later receipts beside the manifest
// (base.verify-*.receipt.json) that a trusted key signed for rec (see
// attest), in the order the proofs ran, each signed statement once: a
// copy or a re-encoding of one taken, the backup's own statement under a
// later name, a statement of no proof add nothing. A receipt that cannot
// be read (or is larger than any pgattest writes) is left out and counted
// in unread: a planted object never stops the rebuild of a genuine backup.
func laterProofs(ctx context.Context, r repo.Repo, rec *catalog.Record, asked, base, archiveKey string, entries []catalog.TOCEntry, keys []ed25519.PublicKey, stored func() (storedBytes, error)) (n, unread int, err error) {
	prefix := base + ".verify-"
	objs, err := r.List(ctx, prefix)
	if err != nil {
		return 0, 0, err
	}
	seen := map[string]bool{} // signed statements taken, by the SHA-256 of the payload
	own := [][]byte{}
	for _, rc := range rec.Receipts {
		own = append(own, rc.Envelope)
	}
	if b, err := readSmall(ctx, r, base+".receipt.json"); err == nil {
		own = append(own, b) // the backup's own, also when it did not check
	}
	for _, b := range own {
		if payload, _, err := receipt.Open(b, keys); err == nil {
			seen[receipt.Digest(payload)] = true
		}
	}
	type later struct {
		p  catalog.Proof
		rc catalog.Receipt
		at time.Time
	}
	var found []later
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".receipt.json") || strings.Contains(strings.TrimPrefix(o.Key, prefix), "/") {
			continue
		}
		if o.Size > maxReceipt {
			unread++
			continue
		}
		b, err := readSmall(ctx, r, o.Key)
		if err != nil {
			unread++ // gone since the listing, unreadable: not evidence either way
			continue
		}
		payload, keyID, err := receipt.Open(b, keys)
		if err != nil {
			continue // unsigned, another key's, altered
		}
		statement := receipt.Digest(payload)
		if seen[statement] {
			continue // one taken already
		}
		st, err := receipt.Parse(payload)
		if err != nil || st.Predicate.Backup.ID != rec.ID || st.Predicate.Proof.Mode == "none" {
			continue
		}
		p := proofOf(st)
		ok, err := signedAs(st, rec, &p, asked, archiveKey, entries, stored)
		if err != nil {
			return 0, unread, err
		}
		if !ok {
			continue
		}
		seen[statement] = true
		found = append(found, later{p: p, at: st.Predicate.MadeAt,
			rc: catalog.Receipt{SHA256: receipt.Digest(b), KeyID: keyID, Path: location{repo: r}.show(o.Key), Envelope: json.RawMessage(b)}})
	}
	// In the order they ran, whatever the objects are called: the last
	// proof decides a record's status.
	slices.SortStableFunc(found, func(a, b later) int {
		if c := a.p.StartedAt.Compare(b.p.StartedAt); c != 0 {
			return c
		}
		return a.at.Compare(b.at)
	})
	for _, l := range found {
		rec.Proofs = append(rec.Proofs, l.p)
		rec.Receipts = append(rec.Receipts, l.rc)
	}
	slices.SortStableFunc(rec.Proofs, func(a, b catalog.Proof) int { return a.StartedAt.Compare(b.StartedAt) })
	return len(found), unread, nil
}

// proofOf is the proof a receipt signed, as a record keeps it: what the
// statement says (the tools that ran it among them), and digest_checked
// (its subject is the bytes' digest).
func proofOf(st *receipt.Statement) catalog.Proof {
	pr := st.Predicate.Proof
	p := catalog.Proof{Mode: pr.Mode, Status: pr.Verdict, StartedAt: pr.StartedAt, DurationMS: pr.DurationMS,
		Error: pr.Error, Rows: pr.Rows, DigestChecked: true, Skipped: pr.Skipped, Tables: []catalog.TableCount{},
		ServerVersion: st.Predicate.Tools.ProofServer, RestoreTool: st.Predicate.Tools.PgRestore}
	if len(p.Skipped) == 0 {
		p.Skipped = nil
	}
	for _, t := range pr.Tables {
		p.Tables = append(p.Tables, catalog.TableCount{Schema: t.Schema, Name: t.Name, Rows: t.Rows})
	}
	return p
}

// readSmall reads a receipt-sized object (at most maxReceipt bytes).
func readSmall(ctx context.Context, r repo.Repo, key string) ([]byte, error) {
	body, err := r.Open(ctx, key, "")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(io.LimitReader(body, maxReceipt))
}

func attestWith(ctx context.Context, r repo.Repo, rec *catalog.Record, asked, rkey, archiveKey string, entries []catalog.TOCEntry, keys []ed25519.PublicKey, stored func() (storedBytes, error)) (string, error) {
	b, err := readSmall(ctx, r, rkey)
	if errors.Is(err, repo.ErrNotFound) {
		return AttestUnsigned, nil
	}
	if err != nil {
		return "", err
	}
	payload, keyID, err := receipt.Open(b, keys)
	if err != nil {
		return unopened(b, keys), nil
	}
	st, err := receipt.Parse(payload)
	if err != nil || len(rec.Proofs) > 1 {
		return AttestMismatch, nil // a manifest holds the backup's proof alone
	}
	// The signed statement must be the one this record makes, field by
	// field: backup, source, tools, times, TOC (its entries' digest from
	// the manifest's entries), archive, proof; and its subject the bytes.
	var proof *catalog.Proof
	if len(rec.Proofs) == 1 {
		proof = &rec.Proofs[0]
	}
	ok, err := signedAs(st, rec, proof, asked, archiveKey, entries, stored)
	if err != nil || !ok {
		return AttestMismatch, err
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
			if err == nil && st.Predicate.Backup.ID == r.ID && namesArchive(st, r.Archive) {
				return true
			}
		}
		return false
	}, nil
}

// namesArchive: the statement's digest of the archive is the record's (a
// file's subject; a folder's digest over its files).
func namesArchive(st *receipt.Statement, a catalog.Archive) bool {
	if a.Format == verify.FormatDirectory {
		return st.Predicate.Archive.Format == verify.FormatDirectory && st.Predicate.Archive.BLAKE3 == a.BLAKE3
	}
	return st.Predicate.Archive.Format != verify.FormatDirectory && st.Subject[0].Digest["blake3"] == a.BLAKE3
}
