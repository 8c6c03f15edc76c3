// Package pipeline runs one backup through its stages: preflight (connection
// string, pooler check, choice of binaries), dump (pg_dump streamed through a
// BLAKE3 hasher into a staging folder), inventory (pg_restore -l), proof
// (restore into a throwaway cluster, started while the dump runs) and record
// (manifest beside the archive, record and event in the catalog).
//
// Nothing reaches its final name before the proof is done: a failed,
// cancelled or killed run leaves no archive and no record, and the next run
// in the same folder removes what a killed one left in staging.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// Options configure one backup.
type Options struct {
	DB   string // connection string; "" uses libpq's PG* variables
	Name string // default: DefaultName(database, host, port)
	Dir  string // archives go to Dir/Name/; default "backups"
	// Repo, when set, is where archives go instead of Dir: file:///path
	// (the same as Dir) or s3://BUCKET[/PREFIX] (the archive streamed to
	// the store while it is written; credentials from the AWS variables).
	Repo string
	// LockDays > 0 puts S3 Object Lock retention on the archive and its
	// manifest for so many days, in LockMode (governance, the default, or
	// compliance); a bucket without Object Lock is refused before the dump.
	LockDays int
	LockMode string
	// EncryptTo and EncryptToFiles are age recipients (age1…, SSH public
	// keys) and recipients files: the archive is stored encrypted to them
	// (NAME-STAMP.dump.age), the proof restores the plaintext stream.
	EncryptTo      []string
	EncryptToFiles []string
	// SignKey is an ed25519 private key file (PKCS#8 PEM): the backup's
	// proof gets a signed receipt (DSSE, in-toto), stored beside the
	// archive and in the record.
	SignKey     string
	Jobs        int         // > 1: directory format, parallel dump and restore
	Compress    int         // pg_dump --compress level, 0-9
	Verify      verify.Mode // restore (default), read or none
	AllowPooled bool        // accept a pooled connection
	// ForceName records under Name although its earlier backups are of
	// another source (by what the servers said: catalog.Identity).
	ForceName bool
	// SkipExtensions may be left out of the proof when the proving Postgres
	// lacks them (--verify-skip-extension); the proof records it.
	SkipExtensions []string
	PGBin          []string          // look for binaries only here
	Labels         map[string]string // stored with the record
	CatalogPath    string
	Redactor       *Redactor     // learns the password; nil makes one
	OnEvent        func(Event)   // progress; nil ignores it
	Version        string        // pgattest's version, for the record
	Started        func(*Source) // called once preflight has connected (the CLI prints the source)
}

// Event reports progress.
type Event struct {
	Stage   string
	Kind    EventKind
	Bytes   int64         // Progress: archive bytes written so far
	Text    string        // Log: a tool's line; Progress: the table being dumped
	Elapsed time.Duration // StageDone: the stage's duration
}

// EventKind says what an Event is.
type EventKind int

// Event kinds.
const (
	StageStart EventKind = iota
	StageDone
	Progress
	Log  // a tool's output line or a command line (shown with --verbose)
	Note // something the user should know while a stage waits ("waiting for the catalog, held by pid N")
)

// Result is what a backup produced: the record (also when the proof failed)
// and the catalog event that recorded it.
type Result struct {
	Record *catalog.Record
	Event  catalog.Event
}

const stagingPrefix = ".pgattest-staging-"

type run struct {
	o       Options
	red     *Redactor
	rec     *catalog.Record
	src     *Source
	client  testenv.Toolchain
	deflate bool // pg_dump writes raw data and pgattest compresses it
	server  testenv.Toolchain
	base    string // NAME-STAMP
	staging *testenv.Scratch
	// archive is the plain archive as a file of this machine, while the
	// run needs it: a directory-format one in staging, a custom-format one
	// the folder's partial file ("" when there is none: in a bucket, or
	// encrypted; head then holds what pg_restore -l reads).
	archive     string
	archiveFile *os.File // the custom-format archive being written, open read-only
	format      string
	toc         *verify.TOC
	facts       verify.SchemaFacts
	cluster     *clusterStart
	stream      *proofSink // the proof restoring while the dump runs, if any
	// The repository: the archive goes to upload (at key) as it is
	// written; head keeps its first bytes, up to the end of its table of
	// contents, for pg_restore -l.
	seal        *seal.Recipients    // encrypt to these, when set
	signer      *receipt.Signer     // sign the proof's receipt, when set
	files       []verify.FileDigest // a directory-format archive's, as dumped (with SHA-256s when signing)
	repo        repo.Repo
	upload      repo.Upload
	key         string
	keyDir      string          // NAME, the folder of its keys
	stem        string          // NAME-STAMP, before a -N
	keyTry      int             // the N of the key taken (1: none)
	held        func(done bool) // lets go of the mark that this run is completing key
	bare        bool            // the archive is under its final name without its manifest
	head        *headKeeper
	retainUntil time.Time
	proof       *catalog.Proof
	failure     error // why the archive failed its proof (status failed)
	infra       error // why the proof could not run (status unverified)
	// checkAtRecord: another run held the catalog at preflight, so its
	// chain is checked once the record's lock is taken.
	checkAtRecord bool
}

// Backup runs the pipeline. When the archive was made but failed its proof,
// the record is stored (status failed) and returned with an error that
// reports ProofFailed. Errors before the archive exists return no record.
func Backup(ctx context.Context, o Options) (*Result, error) {
	if o.Redactor == nil {
		o.Redactor = &Redactor{}
	}
	if o.Dir == "" {
		o.Dir = "backups"
	}
	if o.Verify == "" {
		o.Verify = verify.ModeRestore
	}
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	if o.OnEvent == nil {
		o.OnEvent = func(Event) {}
	}
	r := &run{o: o, red: o.Redactor, format: verify.FormatCustom}
	if o.Jobs > 1 {
		r.format = verify.FormatDirectory
	}
	defer r.cleanup()

	started := time.Now().UTC().Truncate(time.Second)
	r.rec = &catalog.Record{StartedAt: started, Labels: o.Labels, Status: catalog.StatusUnverified}
	stages := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"preflight", r.preflight},
		{"dump", r.dump},
		{"inventory", r.inventory},
		{"prove", r.prove},
	}
	for _, s := range stages {
		if err := r.stage(ctx, s.name, s.fn); err != nil {
			return nil, err
		}
	}
	var ev catalog.Event
	err := r.stage(ctx, "record", func(ctx context.Context) error {
		var err error
		ev, err = r.record(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	res := &Result{Record: r.rec, Event: ev}
	switch {
	case r.failure != nil:
		return res, r.failure
	case r.infra != nil:
		return res, &ProofNotRunError{ID: r.rec.ID, Err: r.infra}
	}
	return res, nil
}

func (r *run) stage(ctx context.Context, name string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.o.OnEvent(Event{Stage: name, Kind: StageStart})
	t0 := time.Now()
	err := fn(ctx)
	d := time.Since(t0)
	r.rec.Stages = append(r.rec.Stages, catalog.Stage{Name: name, DurationMS: d.Milliseconds()})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	r.o.OnEvent(Event{Stage: name, Kind: StageDone, Elapsed: d})
	return nil
}

func (r *run) log(stage, line string) {
	r.o.OnEvent(Event{Stage: stage, Kind: Log, Text: r.red.String(line)})
}

// note tells the user something of pgattest's own while a stage runs.
func (r *run) note(stage, text string) {
	r.o.OnEvent(Event{Stage: stage, Kind: Note, Text: text})
}

// preflight checks the name and folder, connects, and picks the binaries.
func (r *run) preflight(ctx context.Context) error {
	if r.o.Name != "" {
		if err := ValidName(r.o.Name); err != nil {
			hint := "a name may hold letters, digits and . _ @ + -, and must start with a letter or digit"
			if len(r.o.Name) > 128 && nameRE.MatchString(r.o.Name[:128]) {
				hint = fmt.Sprintf("a name is at most 128 characters; this one has %d", len(r.o.Name))
			}
			return &UsageError{Err: err, hint: hint}
		}
	}
	if r.o.Compress < 0 || r.o.Compress > 9 {
		return &UsageError{Err: fmt.Errorf("--compress %d is out of range", r.o.Compress), hint: "use 0 (none) to 9 (smallest, slowest); 1 is the default"}
	}
	if err := r.chooseSeal(); err != nil {
		return err
	}
	if r.o.SignKey != "" {
		s, err := receipt.LoadSigner(r.o.SignKey)
		var ke *receipt.KeyError
		if errors.As(err, &ke) {
			return &UsageError{Err: err, hint: ke.Hint()}
		}
		if err != nil {
			return err
		}
		r.signer = s
	}
	if err := r.chooseRepo(); err != nil {
		return err
	}
	// Checked now, so a dump is not wasted on a catalog that cannot take
	// it; when another run holds it, checked when the record is written.
	switch err := checkCatalogWithin(r.o.CatalogPath, true, 250*time.Millisecond); {
	case errors.Is(err, errBusyUnchecked):
		r.checkAtRecord = true
	case err != nil:
		return err
	}
	// Fail on an unusable destination before a connection is even tried.
	if err := r.repo.Check(ctx, r.o.LockDays > 0); err != nil {
		return writeErrOf(r.repo, err)
	}
	// The proof's cluster starts now, while preflight talks to the source,
	// with the newest server binaries: what ChooseServer picks unless the
	// source is newer than all of them (then it is stopped, and the error
	// says so).
	if r.o.Verify == verify.ModeRestore {
		if err := checkProofDir(); err != nil {
			return err
		}
		if tc, err := ChooseServer(testenv.Version{}, r.o.PGBin); err == nil {
			r.cluster = startCluster(ctx, tc)
		}
	}
	src, err := Connect(ctx, r.o.DB, r.o.AllowPooled, r.red)
	if err != nil {
		return err
	}
	r.src = src
	if r.o.Started != nil {
		r.o.Started(src)
	}
	name := r.o.Name
	if name == "" {
		name = DefaultName(src.Database, src.Host, src.Port)
	}
	identity := src.Identity
	if err := checkName(r.o.CatalogPath, name, identity, r.o.ForceName); err != nil {
		return err
	}
	if !r.o.ForceName {
		if err := checkNameInRepo(ctx, r.repo, name, identity); err != nil {
			var taken *NameTakenError
			if errors.As(err, &taken) {
				return err
			}
			return storeErrOf(r.repo, err)
		}
	}
	r.rec.Name = name
	r.rec.ID = catalog.NewID(name, r.rec.StartedAt)
	r.rec.Source = catalog.Source{Host: src.Host, Port: src.Port, Database: src.Database, User: src.User, ServerVersion: src.ServerVersion.Raw,
		Size: src.Size, Identity: &identity}

	if r.client, err = ChooseTools(src.ServerVersion, r.o.PGBin); err != nil {
		return err
	}
	r.rec.Tools = catalog.Tools{PgDump: r.client.Version.String(), PgRestore: r.client.Version.String(), Pgattest: r.o.Version}
	if r.o.Verify == verify.ModeRestore {
		if r.server, err = ChooseServer(src.ServerVersion, r.o.PGBin); err != nil {
			return err
		}
		r.rec.Tools.ProofServer = r.server.Version.String()
		if r.cluster != nil && r.cluster.tc.Dir != r.server.Dir {
			r.cluster.stop()
			r.cluster = nil
		}
		if r.cluster == nil {
			r.cluster = startCluster(ctx, r.server)
		}
		// A streamed proof's database is made as soon as the server is up,
		// in the source's encoding: it need not wait for it once the
		// archive's table of contents is in.
		if r.format == verify.FormatCustom {
			r.cluster.makeDB(r.src.Encoding)
		}
	}

	r.base = name + "-" + r.rec.StartedAt.Format(catalog.StampLayout)
	return r.prepareRepo(ctx, name)
}

const connStringHint = `pass a URL such as postgresql://USER@HOST:5432/DB?sslmode=require, or a libpq string such as "host=HOST dbname=DB user=USER"`

// inventory lists the archive's contents and the roles its SQL names.
func (r *run) inventory(ctx context.Context) error {
	pgRestore := r.client.Path("pg_restore")
	var toc *verify.TOC
	var err error
	if r.head != nil { // a custom-format archive: its head, in memory (the file may be in a bucket, or encrypted)
		toc, err = verify.ReadTOCFrom(ctx, pgRestore, r.head.bytes(), showKey(r.repo, r.key))
	} else {
		toc, err = verify.ReadTOC(ctx, pgRestore, r.archive)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.failure = err
		r.proof = &catalog.Proof{Mode: string(r.o.Verify), Status: catalog.ProofFailed, StartedAt: time.Now().UTC(), Error: r.red.String(err.Error())}
		return nil
	}
	r.facts = verify.FactsOf(toc)
	r.toc = toc
	r.rec.TOC = summarize(toc)
	r.rec.Roles = r.facts.Roles
	r.rec.Source.Superusers, r.rec.Source.Memberships = sourceRoles(r.src, r.facts.Roles)
	return nil
}

// sourceRoles keeps, of the source's superusers and role memberships,
// those among the archive's roles: what a later proof needs to make again.
func sourceRoles(src *Source, roles []string) (superusers []string, members []catalog.Membership) {
	for _, su := range src.Superusers {
		if slices.Contains(roles, su) {
			superusers = append(superusers, su)
		}
	}
	for _, m := range src.Memberships {
		if slices.Contains(roles, m.Role) && slices.Contains(roles, m.Member) {
			members = append(members, catalog.Membership{Role: m.Role, Member: m.Member})
		}
	}
	return superusers, members
}

// proofRoles turns a record's source roles into the proof's options.
func proofRoles(s catalog.Source) (superusers []string, members []verify.Membership) {
	for _, m := range s.Memberships {
		members = append(members, verify.Membership{Role: m.Role, Member: m.Member})
	}
	return s.Superusers, members
}

func summarize(t *verify.TOC) catalog.TOC {
	s := catalog.TOC{
		Entries: len(t.Entries), Counts: t.Counts(), DBName: t.Header.DBName,
		DumpVersion: t.Header.DumpVersion, ServerVersion: t.Header.ServerVersion,
		PgDumpVersion: t.Header.PgDumpVersion, Compression: t.Header.Compression, CreatedAt: t.Header.CreatedAt,
	}
	for _, tb := range t.Tables() {
		s.Tables = append(s.Tables, catalog.TableName{Schema: tb[0], Name: tb[1]})
	}
	return s
}

// Entries converts a parsed TOC to the entries the catalog stores (an empty,
// non-nil list for an archive with none: the record then says so).
func Entries(t *verify.TOC) []catalog.TOCEntry {
	if t == nil {
		return nil
	}
	out := make([]catalog.TOCEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		out = append(out, catalog.TOCEntry{DumpID: e.DumpID, CatalogOID: e.CatalogOID, ObjectOID: e.ObjectOID,
			Type: e.Type, Schema: e.Schema, Name: e.Name, Owner: e.Owner})
	}
	return out
}

// prove restores the archive into the throwaway cluster started during the
// dump (or reads it through, per --verify).
func (r *run) prove(ctx context.Context) error {
	if r.failure != nil || r.o.Verify == verify.ModeNone {
		return nil
	}
	if r.stream != nil {
		sink := r.stream
		r.stream = nil
		s, err := sink.finish()
		if err != nil { // the cluster did not start, say
			r.notRun(err)
			return nil
		}
		if s == nil && sink.verdict != nil && r.archive == "" {
			// The archive failed before its restore (a missing extension),
			// and there is no plaintext file to prove again: the verdict.
			return r.proved(ctx, &verify.Report{Mode: verify.ModeRestore, StartedAt: time.Now().UTC(), Failure: sink.verdict}, nil)
		}
		if s != nil { // restored while the dump ran: wait for the end, count the rows
			rep, err := s.Finish(ctx, r.toc)
			if err != nil || rep.Passed || !verify.ProveFromFile(rep.Failure) {
				return r.proved(ctx, rep, err)
			}
			// "Incomplete" from a stream may mean pg_restore wanted a block
			// out of the order pg_dump wrote them (a stream cannot seek); the
			// file is whole (it was hashed to the end), so prove it from the
			// file before calling the archive incomplete. An entry that called
			// a superuser's function is left out, and the rest restored again.
			if r.archive == "" { // no plaintext file here to prove from; the archive is whole
				return r.proved(ctx, nil, fmt.Errorf("the streamed restore stopped (%v), and proving the rest needs the archive as a file, which is not kept here: prove it with pgattest verify once it is stored", rep.Failure))
			}
			r.log("prove", "the streamed restore stopped ("+rep.Failure.Error()+"); proving from the file")
			c, cerr := r.cluster.wait()
			if cerr == nil {
				cerr = verify.DropProofDB(ctx, c)
			}
			if cerr != nil {
				return r.proved(ctx, nil, cerr)
			}
		}
	}
	o := verify.Options{
		Archive: r.archive, ArchiveFile: r.archiveFile, Format: r.format, Mode: r.o.Verify, Jobs: r.o.Jobs,
		Client: r.client, TOC: r.toc, Facts: &r.facts, Scratch: r.staging.Dir,
		SkipExtensions: r.o.SkipExtensions, Need: r.rec.Source.Size,
		Superusers: r.src.Superusers, Memberships: r.src.Memberships,
		Log: func(line string) { r.log("prove", line) },
	}
	if r.o.Verify == verify.ModeRestore {
		c, err := r.cluster.wait()
		if err != nil {
			r.notRun(err)
			return nil
		}
		o.Cluster = c
	}
	rep, err := verify.Prove(ctx, o)
	return r.proved(ctx, rep, err)
}

// proved records a proof's outcome: passed, failed (the archive is
// wanting) or error (the proof could not run).
func (r *run) proved(ctx context.Context, rep *verify.Report, err error) error {
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.notRun(err)
		return nil
	}
	r.proof = ProofOf(rep, r.red)
	if !rep.Passed {
		r.failure = rep.Failure
	}
	return nil
}

// notRun records that the proof could not run (the backup stays
// unverified): why, and for a shortage of the machine's (a full disk where
// the throwaway cluster starts, say), what ran short and where.
func (r *run) notRun(err error) {
	r.infra = verify.Shortage(err, r.rec.Source.Size)
	r.proof = &catalog.Proof{Mode: string(r.o.Verify), Status: catalog.ProofError, StartedAt: time.Now().UTC(), Error: r.red.String(r.infra.Error())}
}

// ProofOf turns a verify.Report into the catalog's Proof, redacting its
// error text.
func ProofOf(rep *verify.Report, red *Redactor) *catalog.Proof {
	p := &catalog.Proof{
		Mode: string(rep.Mode), Status: catalog.ProofPassed, StartedAt: rep.StartedAt,
		DurationMS: rep.Duration.Milliseconds(), Rows: rep.Rows, DigestChecked: rep.DigestChecked,
		ServerVersion: rep.ServerVersion, RestoreTool: rep.RestoreVersion, FailedEntry: rep.FailedEntry,
		Tables: []catalog.TableCount{}, Skipped: rep.Skipped, Created: rep.Created, Streamed: rep.Streamed,
	}
	if iso := rep.Isolation; iso.RestoreRole != "" {
		p.Isolation = &catalog.Isolation{RestoreRole: iso.RestoreRole, ServerUser: iso.ServerUser, Network: iso.Network}
	}
	for _, t := range rep.Tables {
		p.Tables = append(p.Tables, catalog.TableCount{Schema: t.Schema, Name: t.Name, Rows: t.Rows})
	}
	if !rep.Passed {
		p.Status = catalog.ProofFailed
		if rep.Failure != nil {
			p.Error = red.String(rep.Failure.Error())
		}
	}
	return p
}

// record stores the backup: the catalog is opened first (waiting for
// another run that holds it, and saying so), then the archive and its
// manifest are stored under their final names, then the record and its
// event are written. Nothing keeps a final name without a record: when the
// catalog cannot be opened or written (held too long, damaged, a full
// disk), notRecorded and storedNotRecorded say what becomes of the run.
func (r *run) record(ctx context.Context) (catalog.Event, error) {
	rec := r.rec
	rec.FinishedAt = time.Now().UTC()
	rec.Status, rec.Proofs = "", nil
	rec.Apply(r.proof) // the catalog's rule: verified only by a passed restore
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	entries := Entries(r.toc)
	defer r.releaseKey()
	cat, err := openCatalog(r.o.CatalogPath, waitingFor(func(s string) { r.note("record", s) }))
	if err != nil {
		return catalog.Event{}, r.notRecorded(ctx, entries, err)
	}
	defer cat.Close()
	if r.checkAtRecord {
		if err := verifiedCatalog(cat); err != nil {
			return catalog.Event{}, r.notRecorded(ctx, entries, err)
		}
	}
	if err := r.storeArchive(ctx, entries); err != nil {
		var mf *manifestFailed
		if errors.As(err, &mf) { // a folder keeps the proven archive, for catalog import
			return catalog.Event{}, r.setAsideUnrecorded(ctx, entries, writeErrOf(r.repo, err))
		}
		return catalog.Event{}, err
	}
	r.archive = "" // stored: the partial file is gone, or adopted
	if r.signer != nil {
		if err := r.storeReceipt(ctx, cat, entries); err != nil {
			return catalog.Event{}, r.storedNotRecorded(ctx, entries, err)
		}
	}
	ev, err := cat.AddWithTOC(rec, entries)
	if err != nil {
		return catalog.Event{}, r.storedNotRecorded(ctx, entries, err)
	}
	return ev, nil
}

func (r *run) cleanup() {
	if r.stream != nil {
		r.stream.abort()
	}
	if r.upload != nil { // not committed: nothing becomes visible
		r.upload.Abort(context.Background())
	}
	if r.archiveFile != nil {
		r.archiveFile.Close()
	}
	if r.cluster != nil {
		r.cluster.stop()
	}
	if r.staging != nil {
		r.staging.Remove()
	}
}

// proofSink is the third branch of the dump's tee (hasher, file, proof).
// Its goroutine gathers the archive's first bytes until they hold the table
// of contents (verify.HeadTOC), then waits for the throwaway cluster,
// prepares the proof database for that TOC and starts a streaming restore
// (verify.Stream) that it feeds every byte, those gathered first. It never
// fails the tee: when pg_restore stops early the file is still written, and
// Finish tells why the proof failed. It declines to stream (err nil, s nil)
// when the archive fails before its restore starts (an extension the
// proving server lacks): the proof after the dump then says so in full.
type proofSink struct {
	r   *run
	ctx context.Context

	mu      sync.Mutex
	s       *verify.Stream
	aborted bool
	err     error // why the proof cannot run at all (the cluster did not start)
	verdict error // why the archive failed before its restore began (it did not stream)

	ch      chan []byte // chunks on their way to pg_restore
	drained chan struct{}
}

func newProofSink(ctx context.Context, r *run) *proofSink {
	p := &proofSink{r: r, ctx: ctx, ch: make(chan []byte, sinkBuffers), drained: make(chan struct{})}
	go p.drain()
	return p
}

func (p *proofSink) Write(b []byte) (int, error) {
	// A copy goes to the goroutine: pg_dump and pg_restore each run at
	// their own pace, up to sinkBuffers chunks apart.
	p.ch <- bytes.Clone(b)
	return len(b), nil
}

// sinkBuffers bounds how far the dump may run ahead of the streaming
// restore, in chunks of at most 1 MiB (the dump's copy buffer); the first
// bytes are also held until they hold the whole table of contents.
const sinkBuffers = 8

// drain starts the restore once the table of contents is in, then writes
// the chunks to pg_restore until the channel closes; once pg_restore has
// stopped, or when the proof does not stream, it only empties the channel.
func (p *proofSink) drain() {
	defer close(p.drained)
	var head []byte
	var s *verify.Stream
	started := false
	for b := range p.ch {
		if !started {
			head = append(head, b...)
			toc, err := verify.HeadTOC(head)
			if toc == nil && err == nil {
				continue // not all of the TOC yet
			}
			started = true
			if err == nil {
				s = p.start(toc)
			}
			if s != nil {
				s.Write(head)
			}
			head = nil
			continue
		}
		if s != nil {
			s.Write(b) // an error means pg_restore stopped; Finish says why
		}
	}
}

// start prepares the proof for toc and starts the streaming restore, or
// declines (nil).
func (p *proofSink) start(toc *verify.TOC) *verify.Stream {
	r := p.r
	c, err := r.cluster.wait()
	if err != nil {
		p.setErr(err)
		return nil
	}
	o := verify.Options{Client: r.client, SkipExtensions: r.o.SkipExtensions, Scratch: r.staging.Dir, Need: r.rec.Source.Size,
		Superusers: r.src.Superusers, Memberships: r.src.Memberships,
		Log: func(line string) { r.log("prove", line) }}
	s, err := verify.StartStream(p.ctx, o, c, toc)
	switch {
	case verify.ProofFailed(err):
		// A verdict before the restore: the proof of the file gives it
		// whole, in a clean cluster (or, with no plaintext file, this).
		p.mu.Lock()
		p.verdict = err
		p.mu.Unlock()
		if err := verify.DropProofDB(p.ctx, c); err != nil {
			p.setErr(err)
		}
		return nil
	case err != nil:
		p.setErr(err)
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aborted {
		s.Abort()
		return nil
	}
	p.s = s
	return s
}

func (p *proofSink) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// finish waits until every chunk has reached pg_restore (or been dropped),
// then returns the stream (nil when the proof did not stream) and why the
// proof could not run, if it could not.
func (p *proofSink) finish() (*verify.Stream, error) {
	if p.ch != nil {
		close(p.ch)
		<-p.drained
		p.ch = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	p.s = nil
	return s, p.err
}

// abort stops a streaming restore (the dump failed, or the run was
// cancelled): pg_restore is killed first, so the drain cannot block.
func (p *proofSink) abort() {
	p.mu.Lock()
	p.aborted = true
	if p.s != nil {
		p.s.Abort()
	}
	p.mu.Unlock()
	p.finish()
}

// clusterStart starts the throwaway cluster in the background, so it is
// ready by the time the dump is.
type clusterStart struct {
	tc      testenv.Toolchain
	db      chan string   // the encoding to make the proof database in; closed: none
	done    chan struct{} // the cluster started (or failed), and the database made
	cluster *testenv.Cluster
	err     error
	cancel  context.CancelFunc // cuts a start short that is no longer wanted
	dbOnce  sync.Once
	once    sync.Once
}

// ProofDirVar names the folder the proofs' throwaway Postgres keeps its
// data in (the archive's rows, in plaintext with --encrypt-to, while a
// proof runs): a memory disk or an encrypted volume. Default: the temp
// folder. Set, it is used or the proof does not run; never /tmp instead.
const ProofDirVar = "PGATTEST_PROOF_DIR"

// checkProofDir refuses a PGATTEST_PROOF_DIR that is not an absolute path
// to a folder.
func checkProofDir() error {
	d := os.Getenv(ProofDirVar)
	if d == "" {
		return nil
	}
	hint := "set " + ProofDirVar + " to an absolute path to an existing folder (a tmpfs or an encrypted volume), or unset it to use the temp folder"
	if !filepath.IsAbs(d) {
		return &UsageError{Err: fmt.Errorf("%s=%q is not an absolute path", ProofDirVar, d), hint: hint}
	}
	fi, err := os.Stat(d)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("%s: %w", ProofDirVar, err), hint: hint}
	}
	if !fi.IsDir() {
		return &UsageError{Err: fmt.Errorf("%s=%s is not a folder", ProofDirVar, d), hint: hint}
	}
	return nil
}

// proofScratch is a folder of pgattest's own for a proof's files (a
// decrypted private copy for verify --jobs): in PGATTEST_PROOF_DIR when
// set, as the proof's cluster is, else in the temp folder.
func proofScratch(prefix string) (*testenv.Scratch, error) {
	if d := os.Getenv(ProofDirVar); d != "" {
		testenv.SweepScratch(d, prefix, nil)
		return testenv.NewScratch(d, prefix)
	}
	return testenv.NewTempScratch(prefix)
}

// proofClusterOptions are the options of a proof's throwaway cluster.
func proofClusterOptions(tc testenv.Toolchain) testenv.Options {
	o := testenv.Options{Toolchain: tc}
	if d := os.Getenv(ProofDirVar); d != "" {
		o.Parent, o.StrictParent = d, true
	}
	return o
}

func startCluster(ctx context.Context, tc testenv.Toolchain) *clusterStart {
	ctx, cancel := context.WithCancel(ctx)
	cs := &clusterStart{tc: tc, db: make(chan string, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(cs.done)
		o := proofClusterOptions(tc)
		o.NoNetwork = true
		cs.cluster, cs.err = testenv.Start(ctx, o)
		if enc, ok := <-cs.db; ok && cs.err == nil {
			verify.CreateProofDB(ctx, cs.cluster, enc) // else the proof makes it
		}
	}()
	return cs
}

// makeDB asks for the proof database to be made in the encoding once the
// server is up (verify.CreateProofDB); wait then also waits for it.
func (cs *clusterStart) makeDB(encoding string) {
	cs.dbOnce.Do(func() { cs.db <- encoding; close(cs.db) })
}

func (cs *clusterStart) wait() (*testenv.Cluster, error) {
	cs.dbOnce.Do(func() { close(cs.db) }) // no database asked for by now: none
	<-cs.done
	return cs.cluster, cs.err
}

func (cs *clusterStart) stop() {
	cs.once.Do(func() {
		cs.cancel() // a start still under way gives up (Start removes what it made)
		if c, err := cs.wait(); err == nil {
			c.Stop(context.Background())
		}
	})
}
