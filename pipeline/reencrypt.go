package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
)

// ReencryptOptions configure Reencrypt.
type ReencryptOptions struct {
	CatalogPath    string
	Record         *catalog.Record
	Identities     *seal.Identities // decrypt the archive (none for one stored unencrypted)
	EncryptTo      []string
	EncryptToFiles []string
}

// Reencrypt writes a backup's archive again for other recipients (key
// rotation, or encrypting an archive stored in the clear), beside the old
// one, as a new record that points to it (ReencryptedFrom). The plaintext
// is streamed from the old archive (decrypted), its digest checked against
// the record's, and encrypted to the new recipients; nothing touches the
// disk in the clear. The new record proves nothing new: its proofs are the
// old record's, about the same plaintext, which the digest shows. The new
// archive becomes visible only once whole and checked, then recorded.
func Reencrypt(ctx context.Context, o ReencryptOptions) (*Result, error) {
	old := o.Record
	if err := checkCatalog(o.CatalogPath, false); err != nil {
		return nil, err
	}
	rs, err := seal.ParseRecipients(o.EncryptTo, o.EncryptToFiles)
	if err != nil {
		return nil, &UsageError{Err: err, hint: "give the new recipients' public keys: age1… or SSH ed25519/RSA public keys"}
	}
	switch {
	case old.Status == catalog.StatusPruned:
		return nil, &PrunedError{Record: old}
	case old.Archive.Format == verify.FormatDirectory:
		return nil, &UsageError{Err: errors.New("a directory-format archive cannot be re-encrypted"), hint: "re-encrypt a custom-format (one job) backup"}
	}
	src, err := openStream(ctx, old, o.Identities)
	if err != nil {
		return nil, err
	}
	defer src.Close()

	// The new archive's place: beside the old one.
	stamp := old.StartedAt.Format(catalog.StampLayout)
	base := fmt.Sprintf("%s-%s-re%s", old.Name, stamp, time.Now().UTC().Format(catalog.StampLayout))
	from, err := locate(old)
	if err != nil {
		return nil, err
	}
	to := from.beside(base, ".dump"+seal.Ext)
	r, key, mkey := to.repo, to.key, to.manifest
	u, err := r.Create(ctx, key, repo.CreateOptions{})
	if err != nil {
		return nil, storeErrOf(r, err)
	}
	committed := false
	defer func() {
		if !committed {
			u.Abort(context.WithoutCancel(ctx))
		}
	}()
	stored := verify.NewSegmentedHasher()
	enc, err := rs.Encrypt(io.MultiWriter(u, stored))
	if err != nil {
		return nil, err
	}
	plain := verify.NewHasher()
	if _, err := io.CopyBuffer(io.MultiWriter(enc, plain), src, make([]byte, 1<<20)); err != nil {
		return nil, storeErrOf(r, err) // a mismatch is evidence: exit 3
	}
	if err := enc.Close(); err != nil {
		return nil, storeErrOf(r, err)
	}

	rec, err := derived(old)
	if err != nil {
		return nil, err
	}
	rec.ID = catalog.NewID(old.Name, old.StartedAt)
	rec.ReencryptedFrom = old.ID
	rec.Proofs = plaintextProofs(old.Proofs)
	rec.Archive.Size, rec.Archive.BLAKE3 = stored.Size(), stored.Sum()
	rec.Archive.Segments = &catalog.Segments{Size: verify.SegmentSize, BLAKE3: stored.Segments()}
	rec.Archive.Encryption = &catalog.Encryption{Scheme: seal.Scheme, Recipients: rs.Public, PlaintextBLAKE3: plain.Sum(), PlaintextSize: plain.Size()}
	to.place(rec, repo.Object{})
	cat, err := openCatalog(o.CatalogPath, nil)
	if err != nil {
		return nil, err // the upload is aborted: nothing stored
	}
	defer cat.Close()
	entries, err := cat.Entries(old.ID)
	if err != nil && !errors.Is(err, catalog.ErrNoEntries) {
		return nil, err
	}
	obj, err := u.Commit(ctx)
	if err != nil {
		return nil, storeErrOf(r, fmt.Errorf("store %s: %w", rec.Archive.Path, err))
	}
	committed = true
	to.place(rec, obj)
	b, err := manifestBytes(rec, entries)
	if err == nil {
		var mu repo.Upload
		if mu, err = r.Create(ctx, mkey, repo.CreateOptions{}); err == nil {
			if _, err = mu.Write(b); err == nil {
				_, err = mu.Commit(ctx)
			}
			if err != nil {
				mu.Abort(ctx)
			}
		}
	}
	if err != nil {
		r.Delete(context.WithoutCancel(ctx), key, "")
		return nil, storeErrOf(r, fmt.Errorf("store the manifest: %w (the new archive was removed again)", err))
	}
	ev, err := cat.AddDerived(rec, entries, "re-encrypted from "+old.ID+" for "+strings.Join(rs.Public, ", "))
	if err != nil {
		return nil, &StoredNotRecordedError{Archive: rec.Archive.Path, Repo: r.URL(), Err: err}
	}
	return &Result{Record: rec, Event: ev}, nil
}

// plaintextProofs are the proofs that restored (or failed to restore) the
// plaintext, which the new archive holds too; those about the old stored
// bytes (a hash check, a changed or missing file) say nothing of the new.
func plaintextProofs(ps []catalog.Proof) []catalog.Proof {
	out := []catalog.Proof{}
	for _, p := range ps {
		if p.Mode != string(verify.ModeRestore) {
			continue
		}
		if p.Status != catalog.ProofPassed && (strings.HasPrefix(p.Error, "archive digest does not match") || strings.HasPrefix(p.Error, "archive is missing")) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// derived is a deep copy of a record, to make another from.
func derived(r *catalog.Record) (*catalog.Record, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var out catalog.Record
	return &out, json.Unmarshal(b, &out)
}
