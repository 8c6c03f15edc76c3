package pipeline

import (
	"context"
	"fmt"
	"os"

	"github.com/pgattest/pgattest/catalog"
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
}

// Reprove proves a recorded backup again: the archive is re-hashed and must
// match the record (a missing archive fails), then, unless HashOnly, it is
// restored into a throwaway cluster and its rows counted. The returned proof
// is to be appended to the record; err is for a proof that could not run.
func Reprove(ctx context.Context, rec *catalog.Record, o ReproveOptions) (*catalog.Proof, error) {
	mode := verify.ModeRestore
	if o.HashOnly {
		mode = verify.ModeHash
	}
	server := recordedServer(rec)
	vo := verify.Options{
		Archive: rec.Archive.Path, Format: rec.Archive.Format, Mode: mode, Digest: rec.Archive.BLAKE3,
		Jobs: max(o.Jobs, 1), Log: o.Log, SkipExtensions: o.SkipExtensions,
	}
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
		vo.ClusterOptions = testenv.Options{Toolchain: tc}
		scratch, err := testenv.NewTempScratch("pgattest-verify-")
		if err != nil {
			return nil, err
		}
		defer scratch.Remove()
		vo.Scratch = scratch.Dir
	}
	rep, err := verify.Prove(ctx, vo)
	if err != nil {
		return nil, err
	}
	return ProofOf(rep, o.Redactor), nil
}

// recordedServer is the source server's version as the record keeps it.
func recordedServer(rec *catalog.Record) testenv.Version {
	if v, err := testenv.ParseVersion("PostgreSQL " + rec.Source.ServerVersion); err == nil {
		return v
	}
	return testenv.Version{}
}

// ApplyProof appends p to rec and sets the status it implies: a failed proof
// makes the backup failed; a passed restore proof makes it verified; a passed
// hash-only proof changes nothing (it shows the bytes are unchanged since
// the last proof). It returns the catalog event kind to record.
func ApplyProof(rec *catalog.Record, p *catalog.Proof) string {
	rec.Proofs = append(rec.Proofs, *p)
	switch {
	case p.Status != catalog.ProofPassed:
		if rec.Status != catalog.StatusPruned {
			rec.Status = catalog.StatusFailed
		}
		return catalog.KindProofFailed
	case p.Mode == string(verify.ModeRestore) && rec.Status != catalog.StatusPruned:
		rec.Status = catalog.StatusVerified
	}
	return catalog.KindProved
}

// ProofSummary is one line about a proof, for tables and event details.
func ProofSummary(p *catalog.Proof) string {
	if p.Status == catalog.ProofPassed {
		if p.Mode == string(verify.ModeRestore) {
			return fmt.Sprintf("restored, %d tables, %d rows", len(p.Tables), p.Rows)
		}
		return "digest matches"
	}
	return p.Error
}

// LiveTOC re-reads a recorded archive's table of contents with pg_restore -l
// (the pg_restore that matches the recorded server, as a proof would pick).
func LiveTOC(ctx context.Context, rec *catalog.Record, pgBin []string) ([]catalog.TOCEntry, error) {
	if rec.Status == catalog.StatusPruned {
		return nil, withHintErr(fmt.Errorf("backup %s was pruned: its archive is gone", rec.ID),
			"drop --live to list the entries the catalog kept")
	}
	if _, err := os.Stat(rec.Archive.Path); err != nil {
		return nil, &verify.MissingError{Path: rec.Archive.Path, Err: err}
	}
	tools, err := ChooseTools(recordedServer(rec), pgBin)
	if err != nil {
		return nil, err
	}
	toc, err := verify.ReadTOC(ctx, tools.Path("pg_restore"), rec.Archive.Path)
	if err != nil {
		return nil, err
	}
	return Entries(toc), nil
}
