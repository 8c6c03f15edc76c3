package receipt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/zeebo/blake3"
)

// StatementType is in-toto's Statement v1.
const StatementType = "https://in-toto.io/Statement/v1"

// PredicateType names the predicate's schema, versioned: a field may be
// added to v1, never renamed or given another meaning (DESIGN.md §
// Receipts; testdata/predicate-v1.golden.json).
const PredicateType = "https://pgattest.dev/attestation/proof/v1"

// Statement is an in-toto Statement v1 about one stored archive.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is the stored archive: its file name, and the digests of its
// stored bytes (sha256, which in-toto's consumers know, and blake3,
// pgattest's own). A directory-format archive is one subject per file,
// named FOLDER/PATH.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate (v1) is what one proof of a backup showed.
type Predicate struct {
	Backup  BackupRef  `json:"backup"`
	Source  SourceRef  `json:"source"`
	Tools   ToolsRef   `json:"tools"`
	Dump    Span       `json:"dump"`
	Proof   ProofRef   `json:"proof"`
	TOC     TOCRef     `json:"toc"`
	Archive ArchiveRef `json:"archive"`
	// PreviousReceipt is the SHA-256 of the previous receipt of the same
	// backup name (its envelope's bytes), "" for the first: a chain per
	// name.
	PreviousReceipt string `json:"previous_receipt"`
	// CatalogHead is the hash of the catalog's newest event when the
	// receipt was made.
	CatalogHead string    `json:"catalog_head"`
	MadeAt      time.Time `json:"made_at"`
}

// BackupRef names the backup.
type BackupRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SourceRef is the database backed up, as the server said it is.
type SourceRef struct {
	Host          string `json:"host"`
	Port          int    `json:"port"`
	Database      string `json:"database"`
	ServerVersion string `json:"server_version"`
	SystemID      string `json:"system_id,omitempty"`
	DatabaseOID   uint32 `json:"database_oid,omitempty"`
}

// ToolsRef are the versions that made and proved the archive.
type ToolsRef struct {
	PgDump      string `json:"pg_dump"`
	PgRestore   string `json:"pg_restore"`
	ProofServer string `json:"proof_server,omitempty"`
	Pgattest    string `json:"pgattest"`
}

// Span is when something ran.
type Span struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DurationMS int64     `json:"duration_ms"`
}

// ProofRef is the proof this receipt is for.
type ProofRef struct {
	Span
	Mode    string     `json:"mode"`    // restore, read, hash
	Verdict string     `json:"verdict"` // passed, failed, error
	Error   string     `json:"error,omitempty"`
	Rows    int64      `json:"rows"`
	Tables  []TableRef `json:"tables"`
	Skipped []string   `json:"skipped"` // what the proof left out, and why
}

// TableRef is one table the proof restored, with its rows.
type TableRef struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// TOCRef summarizes the archive's table of contents.
type TOCRef struct {
	Entries       int            `json:"entries"`
	Counts        map[string]int `json:"counts"`
	EntriesBLAKE3 string         `json:"entries_blake3"`
}

// ArchiveRef is the stored archive's shape.
type ArchiveRef struct {
	Format     string   `json:"format"`
	Size       int64    `json:"size"`
	Encryption string   `json:"encryption,omitempty"` // "age" when encrypted
	Recipients []string `json:"recipients,omitempty"`
	// For a directory-format archive: how many files, and the folder's
	// BLAKE3 over them (DESIGN §3), as the record has it; a file's
	// digests are its subject's.
	Files  int    `json:"files,omitempty"`
	BLAKE3 string `json:"blake3,omitempty"`
}

// File is one file of a directory-format archive: its path in the
// folder (slash-separated) and the digests of its stored bytes.
type File struct{ Path, SHA256, BLAKE3 string }

// FileSubject is a custom-format archive as a statement names it: its
// file name, and the record's digests of its stored bytes.
func FileSubject(name string, a catalog.Archive) []Subject {
	return []Subject{{Name: name, Digest: map[string]string{"sha256": a.SHA256, "blake3": a.BLAKE3}}}
}

// FolderSubjects is a directory-format archive as a statement names it:
// each file as FOLDER/PATH with its digests, in path order.
func FolderSubjects(folder string, files []File) []Subject {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	out := make([]Subject, 0, len(files))
	for _, f := range files {
		out = append(out, Subject{Name: folder + "/" + f.Path, Digest: map[string]string{"sha256": f.SHA256, "blake3": f.BLAKE3}})
	}
	return out
}

// For makes the statement of a proof of rec about its stored archive, as
// subjects name it (FileSubject, FolderSubjects).
func For(rec *catalog.Record, p *catalog.Proof, subjects []Subject, previous, head string, now time.Time) (*Statement, error) {
	if len(subjects) == 0 {
		return nil, fmt.Errorf("a statement about %s names no file", rec.ID)
	}
	for _, s := range subjects {
		if s.Digest["sha256"] == "" {
			return nil, fmt.Errorf("the record of %s holds no SHA-256 of its archive (made before receipts)", rec.ID)
		}
	}
	pr := Predicate{
		Backup:          BackupRef{ID: rec.ID, Name: rec.Name},
		Source:          SourceRef{Host: rec.Source.Host, Port: rec.Source.Port, Database: rec.Source.Database, ServerVersion: rec.Source.ServerVersion},
		Tools:           ToolsRef{PgDump: rec.Tools.PgDump, PgRestore: rec.Tools.PgRestore, ProofServer: rec.Tools.ProofServer, Pgattest: rec.Tools.Pgattest},
		TOC:             TOCRef{Entries: rec.TOC.Entries, Counts: rec.TOC.Counts, EntriesBLAKE3: rec.TOC.EntriesBLAKE3},
		Archive:         ArchiveRef{Format: rec.Archive.Format, Size: rec.Archive.Size},
		PreviousReceipt: previous, CatalogHead: head, MadeAt: now.UTC(),
	}
	if id := rec.Source.Identity; id != nil {
		pr.Source.SystemID, pr.Source.DatabaseOID = id.SystemID, id.DatabaseOID
	}
	if pr.TOC.Counts == nil {
		pr.TOC.Counts = map[string]int{}
	}
	if e := rec.Archive.Encryption; e != nil {
		pr.Archive.Encryption, pr.Archive.Recipients = e.Scheme, e.Recipients
	}
	if rec.Archive.Format == FormatDirectory {
		pr.Archive.Files, pr.Archive.BLAKE3 = rec.Archive.Files, rec.Archive.BLAKE3
	}
	var dump time.Duration
	for _, s := range rec.Stages {
		if s.Name == "dump" {
			dump = time.Duration(s.DurationMS) * time.Millisecond
		}
	}
	pr.Dump = Span{StartedAt: rec.StartedAt, FinishedAt: rec.StartedAt.Add(dump), DurationMS: dump.Milliseconds()}
	if p != nil {
		// The tools that ran this proof: a later one may have run on
		// another server or pg_restore than the backup's.
		if p.ServerVersion != "" {
			pr.Tools.ProofServer = p.ServerVersion
		}
		if p.RestoreTool != "" {
			pr.Tools.PgRestore = p.RestoreTool
		}
		d := time.Duration(p.DurationMS) * time.Millisecond
		pr.Proof = ProofRef{Span: Span{StartedAt: p.StartedAt, FinishedAt: p.StartedAt.Add(d), DurationMS: p.DurationMS},
			Mode: p.Mode, Verdict: p.Status, Error: p.Error, Rows: p.Rows, Tables: []TableRef{}, Skipped: p.Skipped}
		for _, t := range p.Tables {
			pr.Proof.Tables = append(pr.Proof.Tables, TableRef{Schema: t.Schema, Name: t.Name, Rows: t.Rows})
		}
	} else {
		pr.Proof = ProofRef{Mode: "none", Verdict: "none", Tables: []TableRef{}}
	}
	if pr.Proof.Skipped == nil {
		pr.Proof.Skipped = []string{}
	}
	return &Statement{Type: StatementType, PredicateType: PredicateType, Predicate: pr, Subject: subjects}, nil
}

// FormatDirectory is the record's word for a directory-format archive.
const FormatDirectory = "directory"

// Seal signs the statement: the envelope's JSON, and its SHA-256 (what
// the next receipt of the name chains to, and the catalog records).
func (s *Signer) Seal(st *Statement) ([]byte, string, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, "", err
	}
	// Compact, no newline: the bytes stored beside the archive are the
	// bytes the record holds (JSON keeps a raw message compact).
	b, err := json.Marshal(s.Sign(PayloadType, payload))
	if err != nil {
		return nil, "", err
	}
	return b, Digest(b), nil
}

// Digest is the SHA-256 of a receipt's bytes, hex.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Parse checks a statement's shape: in-toto v1, pgattest's predicate
// type, a backup id, and subjects with a sha256 and a blake3 of 64 hex
// digits each: one for a file; for a folder, one per file, each named
// FOLDER/PATH (one folder, a clean relative path, no path twice), and the
// folder's digest.
func Parse(payload []byte) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, &MismatchError{What: "the payload is not an in-toto statement: " + err.Error()}
	}
	switch {
	case st.Type != StatementType:
		return nil, &MismatchError{What: fmt.Sprintf("statement type %q, not %q", st.Type, StatementType)}
	case st.PredicateType != PredicateType:
		return nil, &MismatchError{What: fmt.Sprintf("predicate type %q, not %q", st.PredicateType, PredicateType)}
	case st.Predicate.Backup.ID == "":
		return nil, &MismatchError{What: "the predicate names no backup"}
	case st.Predicate.Archive.Format != FormatDirectory && len(st.Subject) != 1:
		return nil, &MismatchError{What: fmt.Sprintf("%d subjects, not one archive file", len(st.Subject))}
	case len(st.Subject) == 0:
		return nil, &MismatchError{What: "no subject: the statement names no file"}
	}
	for _, s := range st.Subject {
		if !hex64.MatchString(s.Digest["sha256"]) || !hex64.MatchString(s.Digest["blake3"]) {
			return nil, &MismatchError{What: "a subject's digest lacks a sha256 or a blake3 of 64 hex digits"}
		}
		if !plainName(s.Name) {
			return nil, &MismatchError{What: fmt.Sprintf("subject %q: a name with a control character or a backslash", s.Name)}
		}
	}
	a := st.Predicate.Archive
	if a.Format != FormatDirectory {
		if n := st.Subject[0].Name; strings.Contains(n, "/") || n == "." || n == ".." || n == "" {
			return nil, &MismatchError{What: fmt.Sprintf("subject %q is not an archive file's name", n)}
		}
		if a.Files != 0 || a.BLAKE3 != "" {
			return nil, &MismatchError{What: "a statement about one archive file gives a folder's files or digest"}
		}
		return &st, nil
	}
	if _, err := st.Folder(); err != nil {
		return nil, err
	}
	if !hex64.MatchString(a.BLAKE3) {
		return nil, &MismatchError{What: "the predicate lacks the folder's blake3 of 64 hex digits"}
	}
	if a.Files != len(st.Subject) {
		return nil, &MismatchError{What: fmt.Sprintf("the predicate says %d files, the subjects name %d", a.Files, len(st.Subject))}
	}
	return &st, nil
}

// plainName: no control character (a newline would split sha256sum's
// lines) and no backslash (which sha256sum -c reads as an escape).
func plainName(n string) bool {
	return !strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' })
}

// Folder is the folder a directory-format archive's subjects name, and
// each file's path in it.
func (st *Statement) Folder() (string, error) {
	folder := ""
	seen := map[string]bool{} // by lower case: one file on any file system
	for _, s := range st.Subject {
		dir, rel, ok := strings.Cut(s.Name, "/")
		if !ok || dir == "" || dir == "." || dir == ".." || (folder != "" && dir != folder) || !cleanPath(rel) || seen[strings.ToLower(rel)] {
			return "", &MismatchError{What: fmt.Sprintf("subject %q is not a file of one archive folder (FOLDER/PATH, each once)", s.Name)}
		}
		folder, seen[strings.ToLower(rel)] = dir, true
	}
	return folder, nil
}

// cleanPath: a relative slash path without empty, "." or ".." elements.
func cleanPath(rel string) bool {
	if rel == "" || path.Clean(rel) != rel || path.IsAbs(rel) {
		return false
	}
	return !slices.Contains(strings.Split(rel, "/"), "..")
}

// CheckFiles compares a directory-format archive's files (their stored
// bytes' digests, as read) with the statement's subjects: the same paths,
// none missing or added, the same digests.
func (st *Statement) CheckFiles(files []File) error {
	if st.Predicate.Archive.Format != FormatDirectory {
		return &MismatchError{What: "the receipt is about one archive file (" + st.Subject[0].Name + "), not a folder"}
	}
	folder, err := st.Folder()
	if err != nil {
		return err
	}
	want := map[string]map[string]string{}
	for _, s := range st.Subject {
		want[strings.TrimPrefix(s.Name, folder+"/")] = s.Digest
	}
	for _, f := range files {
		d, ok := want[f.Path]
		switch {
		case !ok:
			return &MismatchError{What: fmt.Sprintf("the folder holds %s, which the receipt does not name", f.Path)}
		case d["sha256"] != f.SHA256 || d["blake3"] != f.BLAKE3:
			return &MismatchError{What: fmt.Sprintf("%s does not match the receipt's subject %s/%s (sha256 %s, receipt says %s)", f.Path, folder, f.Path, f.SHA256, d["sha256"])}
		}
		delete(want, f.Path)
	}
	if len(want) > 0 {
		missing := slices.Sorted(maps.Keys(want))
		return &MismatchError{What: fmt.Sprintf("%d of the receipt's files are not in the folder (%s first)", len(missing), missing[0])}
	}
	return nil
}

// CheckArchive hashes r (the stored bytes) and compares both digests with
// the statement's subject.
func (st *Statement) CheckArchive(r io.Reader) error {
	if st.Predicate.Archive.Format == FormatDirectory {
		return &MismatchError{What: "the receipt is about a directory-format archive: give its folder"}
	}
	s, b := sha256.New(), blake3.New()
	if _, err := io.CopyBuffer(io.MultiWriter(s, b), r, make([]byte, 1<<20)); err != nil {
		return err
	}
	d := st.Subject[0].Digest
	gotS, gotB := hex.EncodeToString(s.Sum(nil)), hex.EncodeToString(b.Sum(nil))
	if gotS != d["sha256"] || gotB != d["blake3"] {
		return &MismatchError{What: fmt.Sprintf("the archive's bytes do not match the receipt's subject %s (sha256 %s, receipt says %s)", st.Subject[0].Name, gotS, d["sha256"])}
	}
	return nil
}

// Unverified reads the statement of an envelope without checking its
// signature: for an envelope whose integrity is known otherwise (the
// catalog's own, under its chain).
func Unverified(b []byte) (*Statement, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	payload, err := decode64(env.Payload)
	if err != nil {
		return nil, err
	}
	return Parse(payload)
}
