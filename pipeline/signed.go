package pipeline

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/verify"
)

// Signed receipts (--sign-key): a DSSE envelope around an in-toto
// statement about the stored archive (pipeline/receipt), one per proof,
// stored beside the archive (NAME-STAMP.receipt.json for the backup's
// proof, NAME-STAMP.verify-STAMP.receipt.json for a later one; the
// archive's retention) and in the record, which the catalog's chain covers. Receipts of a name
// chain: each names the SHA-256 of the one before.

// subjectsOf names the stored archive at key as a statement does: the
// file, or each of the folder's files (their digests as read).
func subjectsOf(rec *catalog.Record, key string, files []verify.FileDigest) []receipt.Subject {
	name := path.Base(strings.TrimSuffix(key, "/"))
	if rec.Archive.Format != verify.FormatDirectory {
		return receipt.FileSubject(name, rec.Archive)
	}
	return receipt.FolderSubjects(name, ReceiptFiles(files))
}

// ReceiptFiles are a folder's file digests (with their SHA-256s) as a
// statement's subjects name them.
func ReceiptFiles(files []verify.FileDigest) []receipt.File {
	fs := make([]receipt.File, len(files))
	for i, f := range files {
		fs[i] = receipt.File{Path: f.Path, SHA256: f.SHA256, BLAKE3: f.BLAKE3}
	}
	return fs
}

// previousReceipt is the SHA-256 of the newest receipt of name in the
// catalog ("" when there is none).
func previousReceipt(cat *catalog.Catalog, name string) (string, error) {
	recs, err := cat.List(catalog.Query{Name: name})
	if err != nil {
		return "", err
	}
	var newest catalog.Receipt
	var at time.Time
	for _, r := range recs {
		for _, rc := range r.Receipts {
			if st, err := receiptTime(rc); err == nil && !st.Before(at) {
				newest, at = rc, st
			}
		}
	}
	return newest.SHA256, nil
}

// receiptTime is when a receipt of the catalog's was made (its statement's
// made_at; the envelope is the catalog's own, checked by the chain).
func receiptTime(rc catalog.Receipt) (time.Time, error) {
	st, err := receipt.Unverified(rc.Envelope)
	if err != nil {
		return time.Time{}, err
	}
	return st.Predicate.MadeAt, nil
}

// storeReceipt makes the receipt of the backup's proof, stores it beside
// the archive and adds it to the record.
func (r *run) storeReceipt(ctx context.Context, cat *catalog.Catalog, entries []catalog.TOCEntry) error {
	rec := r.rec
	if entries != nil { // as AddWithTOC will record it: the receipt names the same
		d, err := catalog.EntriesDigest(entries)
		if err != nil {
			return err
		}
		rec.TOC.EntriesBLAKE3 = d
	}
	prev, err := previousReceipt(cat, rec.Name)
	if err != nil {
		return err
	}
	_, head, err := cat.Head()
	if err != nil {
		return err
	}
	st, err := receipt.For(rec, rec.LastProof(), subjectsOf(rec, r.key, r.files), prev, head, time.Now())
	if err != nil {
		return err
	}
	env, sum, err := r.signer.Seal(st)
	if err != nil {
		return err
	}
	key := r.keyDir + "/" + r.base + ".receipt.json"
	if err := putObject(ctx, r.repo, key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode, Exclusive: true}, env); err != nil {
		return writeErrOf(r.repo, err)
	}
	rec.Receipts = append(rec.Receipts, catalog.Receipt{SHA256: sum, KeyID: r.signer.KeyID, Path: showKey(r.repo, key), Envelope: env})
	return nil
}

// signProof signs a receipt of a later proof p of rec (verify --sign-key),
// stores it beside the archive and adds it to the record (the caller
// records it). A record without the archive's SHA-256 (made unsigned) gets
// it from one more read, checked against its BLAKE3 in the same pass.
func signProof(ctx context.Context, cat *catalog.Catalog, rec *catalog.Record, p *catalog.Proof, s *receipt.Signer) error {
	var files []verify.FileDigest
	if rec.Archive.Format == verify.FormatDirectory {
		// Each file's SHA-256, from one more read of the folder, its
		// files checked against the record's digest in the same pass.
		var err error
		if files, err = folderDigests(ctx, rec); err != nil {
			return err
		}
	} else if rec.Archive.SHA256 == "" {
		_, sum, err := hashStored(ctx, rec, true)
		if err != nil {
			return err
		}
		rec.Archive.SHA256 = sum
	}
	l, err := locate(rec)
	if err != nil {
		return err
	}
	prev, err := previousReceipt(cat, rec.Name)
	if err != nil {
		return err
	}
	_, head, err := cat.Head()
	if err != nil {
		return err
	}
	name := path.Base(strings.TrimSuffix(l.key, "/"))
	st, err := receipt.For(rec, p, subjectsOf(rec, l.key, files), prev, head, time.Now())
	if err != nil {
		return err
	}
	env, sum, err := s.Seal(st)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(name, extOf(rec.Archive))
	key := path.Join(path.Dir(strings.TrimSuffix(l.key, "/")), base+".verify-"+time.Now().UTC().Format(catalog.StampLayout)+".receipt.json")
	until, mode := retention(rec)
	if err := putObject(ctx, l.repo, key, repo.CreateOptions{RetainUntil: until, LockMode: mode, Exclusive: true}, env); err != nil {
		return storeErrOf(l.repo, err)
	}
	rec.Receipts = append(rec.Receipts, catalog.Receipt{SHA256: sum, KeyID: s.KeyID, Path: l.show(key), Envelope: env})
	return nil
}
