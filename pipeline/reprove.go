package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// ReproveOptions configure a later proof of a recorded backup.
type ReproveOptions struct {
	HashOnly bool     // only re-hash the archive and compare with the record
	Jobs     int      // parallel restore of a directory-format archive
	PGBin    []string // look for binaries here first
	// SkipExtensions may be left out when the proving Postgres lacks them.
	SkipExtensions []string
	Redactor       *Redactor
	Log            func(line string) // pg_restore's output
	// Identities decrypt an encrypted backup for a restore proof; a hash
	// check needs none.
	Identities *seal.Identities
}

// Reprove proves a recorded backup again: the archive is re-hashed and must
// match the record (a missing archive fails), then, unless HashOnly, it is
// restored into a throwaway cluster and its rows counted. The returned proof
// is to be appended to the record; err is for a proof that could not run.
func Reprove(ctx context.Context, rec *catalog.Record, o ReproveOptions) (*catalog.Proof, error) {
	if log := o.Log; log != nil && o.Redactor != nil { // pg_restore's lines are text from outside
		o.Log = func(line string) { log(o.Redactor.String(line)) }
	}
	mode := verify.ModeRestore
	if o.HashOnly {
		mode = verify.ModeHash
	}
	server := recordedServer(rec)
	vo := verify.Options{
		Archive: rec.Archive.Path, Format: rec.Archive.Format, Mode: mode, Digest: rec.Archive.BLAKE3,
		Jobs: max(o.Jobs, 1), Log: o.Log, SkipExtensions: o.SkipExtensions, Need: rec.Source.Size,
	}
	vo.Superusers, vo.Memberships = proofRoles(rec.Source)
	if vo.Format == "" {
		vo.Format = verify.FormatCustom
	}
	if !o.HashOnly {
		var err error
		if vo.Client, err = ChooseTools(server, o.PGBin); err != nil {
			return nil, err
		}
		tc, err := ChooseServer(server, o.PGBin)
		if err != nil {
			return nil, err
		}
		if err := checkProofDir(); err != nil {
			return nil, err
		}
		vo.ClusterOptions = proofClusterOptions(tc)
		scratch, err := proofScratch("pgattest-verify-")
		if err != nil {
			return nil, err
		}
		defer scratch.Remove()
		vo.Scratch = scratch.Dir
	}
	if rec.Archive.Encryption != nil && !o.HashOnly && o.Identities == nil {
		return nil, &IdentityNeededError{ID: rec.ID, Recipients: rec.Archive.Encryption.Recipients}
	}
	// Read back once and checked before use (verified.go): streamed into
	// the proof's restore (decrypted); one that needs a file (a
	// directory-format archive, --jobs) is proven from a private copy
	// made while it was checked.
	started := time.Now().UTC()
	var rep *verify.Report
	var err error
	switch {
	case o.HashOnly:
		if _, err = HashStored(ctx, rec); err == nil {
			rep = &verify.Report{Mode: mode, Passed: true, DigestChecked: true}
		}
	case vo.Jobs <= 1 && vo.Format == verify.FormatCustom:
		rep, err = reproveStream(ctx, rec, vo, o.Identities)
	default:
		if vo.Archive, err = archiveFile(ctx, rec, vo.Scratch, o.Identities); err == nil {
			vo.Digest = ""
			if rep, err = verify.Prove(ctx, vo); err == nil {
				rep.DigestChecked = true
			}
		}
	}
	if verify.ProofFailed(err) { // the archive is not the recorded one
		rep, err = &verify.Report{Mode: mode, Failure: err}, nil
	}
	if err != nil {
		return nil, verify.Shortage(err, rec.Source.Size)
	}
	rep.StartedAt, rep.Duration = started, time.Since(started)
	p := ProofOf(rep, o.Redactor)
	p.Store = storeNotes(ctx, rec)
	return p, nil
}

// reproveStream proves an S3-held archive as the backup did: streamed
// from the bucket into a restore in a throwaway cluster, hashed on the way
// (a mismatch fails the proof, whatever pg_restore made of the bytes).
// Should pg_restore want a block out of the order of the stream, the
// archive is downloaded and proven from the file.
func reproveStream(ctx context.Context, rec *catalog.Record, vo verify.Options, ids *seal.Identities) (*verify.Report, error) {
	failed := func(err error) (*verify.Report, error) {
		if !verify.ProofFailed(err) {
			return nil, err
		}
		return &verify.Report{Mode: verify.ModeRestore, Failure: err}, nil
	}
	co := vo.ClusterOptions
	co.NoNetwork = true
	c, err := testenv.Start(ctx, co)
	if err != nil {
		return nil, fmt.Errorf("start throwaway cluster for the proof: %w", err)
	}
	defer c.Stop(context.Background())
	st, err := openStream(ctx, rec, ids)
	if err != nil {
		return failed(err)
	}
	defer st.Close()
	toc, err := verify.ReadTOCFrom(ctx, vo.Client.Path("pg_restore"), st.head, rec.Archive.Path)
	if err != nil {
		return failed(err)
	}
	s, err := verify.StartStream(ctx, vo, c, toc)
	if err != nil {
		return failed(err)
	}
	if _, err := io.CopyBuffer(s, st, make([]byte, 1<<20)); err != nil && st.err == nil {
		st.rest() // pg_restore stopped: hash the rest, a mismatch is the verdict
	}
	switch {
	case errors.Is(st.err, verify.ErrDigestMismatch):
		s.Abort()
		return failed(st.err)
	case st.err != nil: // the store failed
		s.Abort()
		return nil, st.err
	}
	rep, err := s.Finish(ctx, toc)
	if err != nil {
		return nil, err
	}
	rep.DigestChecked = true
	if rep.Passed || !verify.ProveFromFile(rep.Failure) {
		return rep, nil
	}
	// A stream cannot seek: prove the downloaded file in the same cluster.
	if err := verify.DropProofDB(ctx, c); err != nil {
		return nil, err
	}
	if vo.Archive, err = archiveFile(ctx, rec, vo.Scratch, ids); err != nil {
		return failed(err)
	}
	vo.Cluster, vo.Digest, vo.TOC = c, "", toc
	rep, err = verify.Prove(ctx, vo)
	if rep != nil {
		rep.DigestChecked = true
	}
	return rep, err
}

// recordedServer is the source server's version as the record keeps it.
func recordedServer(rec *catalog.Record) testenv.Version {
	if v, err := testenv.ParseVersion("PostgreSQL " + rec.Source.ServerVersion); err == nil {
		return v
	}
	return testenv.Version{}
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	ReproveOptions
	CatalogPath string
	// SignKey, when set, signs a receipt of each proof (custom-format
	// archives), stored beside the archive and in the record.
	SignKey string
	// OnStart is called before each backup is proven (i counts from 0).
	OnStart func(i, n int, rec *catalog.Record)
}

// VerifyRow is what a later proof found for one backup.
type VerifyRow struct {
	Record *catalog.Record // with the new proof, as recorded
	Result string          // catalog.ProofPassed, ProofFailed, ProofError (could not run), or "skipped" (pruned)
	Detail string
	Took   time.Duration
	Err    error // why the proof could not run
}

// VerifyResult is every row of a Verify, with the counts and the last event
// written.
type VerifyResult struct {
	Rows                            []VerifyRow
	Passed, Failed, Errors, Skipped int
	Unsigned                        int // proofs --sign-key could not sign (the row's detail says why)
	Event                           catalog.Event
}

// Verify proves recorded backups again (Reprove) and records each proof
// with the catalog's rule (catalog.Outcome) as soon as it is known. The
// catalog must be writable and intact before anything runs; it is not held
// while proofs run, so other commands may use it meanwhile. A pruned backup
// is skipped; a proof that could not run is reported and not recorded.
func Verify(ctx context.Context, recs []*catalog.Record, o VerifyOptions) (*VerifyResult, error) {
	if err := checkCatalog(o.CatalogPath, false); err != nil {
		return nil, err
	}
	if !o.HashOnly && o.Identities == nil { // before any proof runs: the command line lacks a key
		for _, rec := range recs {
			if en := rec.Archive.Encryption; en != nil && rec.Status != catalog.StatusPruned {
				return nil, &IdentityNeededError{ID: rec.ID, Recipients: en.Recipients}
			}
		}
	}
	var signer *receipt.Signer
	if o.SignKey != "" {
		s, err := receipt.LoadSigner(o.SignKey)
		var ke *receipt.KeyError
		if errors.As(err, &ke) {
			return nil, &UsageError{Err: err, hint: ke.Hint()}
		}
		if err != nil {
			return nil, err
		}
		signer = s
	}
	res := &VerifyResult{}
	for i, rec := range recs {
		if rec.Status == catalog.StatusPruned {
			res.Rows = append(res.Rows, VerifyRow{Record: rec, Result: "skipped", Detail: "pruned: its archive is gone"})
			res.Skipped++
			continue
		}
		if o.OnStart != nil {
			o.OnStart(i, len(recs), rec)
		}
		t0 := time.Now()
		proof, err := Reprove(ctx, rec, o.ReproveOptions)
		row := VerifyRow{Record: rec, Took: time.Since(t0)}
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			row.Result, row.Err = catalog.ProofError, err
			res.Rows = append(res.Rows, row)
			res.Errors++
			continue
		}
		kind := rec.Apply(proof)
		row.Result, row.Detail = proof.Status, ProofSummary(proof)
		if proof.Status == catalog.ProofPassed {
			res.Passed++
		} else {
			res.Failed++
		}
		if kind != "" || signer != nil {
			cat, err := openCatalog(o.CatalogPath, nil)
			if err != nil {
				return res, err
			}
			if signer != nil {
				if err := signProof(ctx, cat, rec, proof, signer); err != nil {
					row.Detail += "; no receipt: " + err.Error()
					res.Unsigned++
				} else {
					row.Detail += "; receipt " + rec.Receipts[len(rec.Receipts)-1].Path
					if kind == "" {
						kind = catalog.KindProved
					}
				}
			}
			if kind != "" {
				res.Event, err = cat.Update(rec, kind, proof.Mode)
			}
			cat.Close()
			if err != nil {
				return res, err
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// ProofSummary is one line about a proof, for tables and event details.
func ProofSummary(p *catalog.Proof) string {
	s := p.Error
	if p.Status == catalog.ProofPassed {
		s = "digest matches"
		if p.Mode == string(verify.ModeRestore) {
			s = fmt.Sprintf("restored, %s, %s", plural(len(p.Tables), "table"), plural(int(p.Rows), "row"))
		}
	}
	if len(p.Store) > 0 {
		s += "; " + strings.Join(p.Store, "; ")
	}
	return s
}

// LiveTOC re-reads a recorded archive's table of contents with pg_restore -l
// (the pg_restore that matches the recorded server, as a proof would pick).
func LiveTOC(ctx context.Context, rec *catalog.Record, pgBin []string, ids *seal.Identities) ([]catalog.TOCEntry, error) {
	if rec.Status == catalog.StatusPruned {
		return nil, &PrunedError{Record: rec}
	}
	archive := rec.Archive.Path
	if rec.Archive.Format != verify.FormatDirectory {
		// Its head is enough: read (checked, decrypted) up to the end of the TOC.
		st, err := openStream(ctx, rec, ids)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		tools, err := ChooseTools(recordedServer(rec), pgBin)
		if err != nil {
			return nil, err
		}
		toc, err := verify.ReadTOCFrom(ctx, tools.Path("pg_restore"), st.head, archive)
		if err != nil {
			return nil, err
		}
		return Entries(toc), nil
	}
	// A folder: a private copy, checked as it is made.
	scratch, err := testenv.NewTempScratch("pgattest-toc-")
	if err != nil {
		return nil, err
	}
	defer scratch.Remove()
	if archive, err = archiveFile(ctx, rec, scratch.Dir, ids); err != nil {
		return nil, err
	}
	tools, err := ChooseTools(recordedServer(rec), pgBin)
	if err != nil {
		return nil, err
	}
	toc, err := verify.ReadTOC(ctx, tools.Path("pg_restore"), archive)
	if err != nil {
		return nil, err
	}
	return Entries(toc), nil
}
