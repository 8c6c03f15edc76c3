package catalog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"
)

// Status of a backup record.
const (
	StatusVerified   = "verified"   // the last proof passed
	StatusFailed     = "failed"     // the last proof failed
	StatusUnverified = "unverified" // never proven (--verify none)
	StatusPruned     = "pruned"     // archive deleted by retention; the record stays
	// StatusMissing: prune asked the store and the archive was not there
	// whole (gone, or another size): it fills no retention slot and is
	// never restored, until a proof finds it again.
	StatusMissing = "missing"
)

// Record is everything pgattest knows about one backup. Its JSON form is the
// contract of DESIGN §3: fields may be added, never renamed.
type Record struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Source     Source            `json:"source"`
	Archive    Archive           `json:"archive"`
	TOC        TOC               `json:"toc"`
	Proofs     []Proof           `json:"proofs"`
	Labels     map[string]string `json:"labels"`
	Tools      Tools             `json:"tools"`
	Stages     []Stage           `json:"stages"`
	Roles      []string          `json:"roles,omitempty"` // roles the archive references
	PrunedAt   *time.Time        `json:"pruned_at,omitempty"`
	// Attestation is what a rebuild with trusted keys found of the
	// receipt beside the manifest: "signed by a trusted key", "unsigned",
	// "unknown key" or "receipt does not match" ("" when not asked).
	Attestation string `json:"attestation,omitempty"`
	// UnattestedProofs are the proofs a manifest claims that no trusted
	// receipt covers (a rebuild with trusted keys): kept, counted for
	// nothing.
	UnattestedProofs []Proof `json:"unattested_proofs,omitempty"`
	// Receipts are the signed receipts of its proofs, oldest first
	// (pgattest's DSSE envelopes, kept whole: covered by the chain).
	Receipts []Receipt `json:"receipts,omitempty"`
	// ReencryptedFrom is the backup whose archive this one re-encrypts
	// (pgattest reencrypt): the same plaintext, by its digest, for other
	// recipients; its proofs are that backup's.
	ReencryptedFrom string `json:"reencrypted_from,omitempty"`
}

// Receipt is one signed receipt of a proof: the DSSE envelope's bytes,
// their SHA-256, the key that signed it (its id: the hex SHA-256 of the
// public key's DER), and where it is stored beside the archive.
type Receipt struct {
	SHA256   string          `json:"sha256"`
	KeyID    string          `json:"keyid"`
	Path     string          `json:"path"`
	Envelope json.RawMessage `json:"envelope"`
}

// Source is the database a backup was taken from. It never holds a password
// or a whole connection string.
type Source struct {
	Host          string `json:"host"`
	Port          int    `json:"port"`
	Database      string `json:"database"`
	User          string `json:"user"`
	ServerVersion string `json:"server_version"`
	// Size is the database's size on the server at backup, in bytes
	// (pg_database_size; 0 when it could not be read): about what a proof
	// of the archive needs on disk.
	Size int64 `json:"size,omitempty"`
	// Superusers are the archive's roles that were superusers on the
	// server, and Memberships the memberships among its roles there
	// (pg_dump saves neither): the proof makes them again.
	Superusers  []string     `json:"superusers,omitempty"`
	Memberships []Membership `json:"memberships,omitempty"`
	// Identity is what the server said it is (records made before
	// pgattest read it have none).
	Identity *Identity `json:"identity,omitempty"`
}

// Membership is one role's membership in another on the source.
type Membership struct {
	Role   string `json:"role"`
	Member string `json:"member"`
}

// Archive is the file (custom format) or folder (directory format) pg_dump
// wrote, and its digest.
type Archive struct {
	Path   string `json:"path"`
	Format string `json:"format"` // "custom" or "directory"
	Size   int64  `json:"size"`   // bytes; for a folder, the sum of its files
	BLAKE3 string `json:"blake3"` // 64 hex digits
	// SHA256 of the stored bytes, taken in the same pass as BLAKE3: what
	// a signed receipt's subject names for tools that know no BLAKE3.
	// Empty for directory-format archives and records made before it.
	SHA256      string `json:"sha256,omitempty"`
	Files       int    `json:"files,omitempty"`
	Compression int    `json:"compression"`
	// Compressor is "pgattest" when pg_dump wrote the data uncompressed
	// and pgattest deflated it (on every core) into the same format.
	Compressor string `json:"compressor,omitempty"`
	Jobs       int    `json:"jobs,omitempty"`
	Manifest   string `json:"manifest,omitempty"`
	// Store is the object store the archive is kept in; nil for a file on
	// this machine. Path and Manifest are then s3:// URLs, for display.
	Store *Store `json:"store,omitempty"`
	// Encryption, when set, says the stored bytes (Size, BLAKE3) are the
	// archive encrypted; the proof restored the plaintext it describes.
	Encryption *Encryption `json:"encryption,omitempty"`
	// Segments are the digests of the stored bytes' consecutive pieces,
	// taken in the same pass as BLAKE3: a reader checks each piece before
	// any byte of it is used. Nil for a directory-format archive and for
	// records made before them (those are checked whole first).
	Segments *Segments `json:"segments,omitempty"`
}

// Segments: the stored bytes cut into pieces of Size bytes (the last may be
// shorter), and the BLAKE3 of each, 64 hex digits, in order.
type Segments struct {
	Size   int64    `json:"size"`
	BLAKE3 []string `json:"blake3"`
}

// Encryption is how an archive is encrypted: never a secret.
type Encryption struct {
	Scheme          string   `json:"scheme"`     // "age"
	Recipients      []string `json:"recipients"` // public keys: age1…, ssh-ed25519 AAAA…
	PlaintextBLAKE3 string   `json:"plaintext_blake3"`
	PlaintextSize   int64    `json:"plaintext_size"`
}

// Store is where in an S3-compatible store an archive and its manifest
// are: never a credential.
type Store struct {
	Repo        string     `json:"repo"`     // s3://BUCKET[/PREFIX], as given to backup --repo
	Endpoint    string     `json:"endpoint"` // https://host[:port] the archive was written to
	Bucket      string     `json:"bucket"`
	Key         string     `json:"key"`          // the archive's key in the repository (below PREFIX)
	ManifestKey string     `json:"manifest_key"` // the manifest's
	VersionID   string     `json:"version_id,omitempty"`
	RetainUntil *time.Time `json:"retain_until,omitempty"` // Object Lock retention of both
	LockMode    string     `json:"lock_mode,omitempty"`    // GOVERNANCE or COMPLIANCE
}

// TOC summarizes the archive's table of contents.
type TOC struct {
	Entries       int            `json:"entries"`
	Counts        map[string]int `json:"counts"` // entries by type: "TABLE": 12, …
	Tables        []TableName    `json:"tables"`
	DBName        string         `json:"dbname,omitempty"`
	DumpVersion   string         `json:"dump_version,omitempty"` // archive format, e.g. "1.14-0"
	ServerVersion string         `json:"server_version,omitempty"`
	PgDumpVersion string         `json:"pg_dump_version,omitempty"`
	Compression   string         `json:"compression,omitempty"`
	CreatedAt     string         `json:"created_at,omitempty"`
	// EntriesBLAKE3 is the digest of the entries stored beside the record
	// (Catalog.Entries); empty for records made before pgattest kept them.
	EntriesBLAKE3 string `json:"entries_blake3,omitempty"`
}

// TOCEntry is one line of the archive's table of contents, as
// `pg_restore -l` prints it.
type TOCEntry struct {
	DumpID     int    `json:"dump_id"`
	CatalogOID uint32 `json:"catalog_oid"`
	ObjectOID  uint32 `json:"object_oid"`
	Type       string `json:"type"`
	Schema     string `json:"schema"`
	Name       string `json:"name"`
	Owner      string `json:"owner"`
}

// TableName is a schema-qualified table name.
type TableName struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// Proof is one attempt to prove an archive: at backup time, or later by
// `pgattest verify`.
type Proof struct {
	Mode          string       `json:"mode"`   // "restore", "read" or "hash"
	Status        string       `json:"status"` // "passed" or "failed"
	StartedAt     time.Time    `json:"started_at"`
	DurationMS    int64        `json:"duration_ms"`
	Error         string       `json:"error,omitempty"`
	Tables        []TableCount `json:"tables"`
	Rows          int64        `json:"rows"`
	DigestChecked bool         `json:"digest_checked"` // the archive was re-hashed and matched first
	ServerVersion string       `json:"server_version,omitempty"`
	RestoreTool   string       `json:"pg_restore_version,omitempty"`
	FailedEntry   string       `json:"failed_entry,omitempty"`
	Skipped       []string     `json:"skipped,omitempty"`  // what the proof knowingly left out, and why
	Created       []string     `json:"created,omitempty"`  // what pgattest made itself before the restore (extensions)
	Streamed      bool         `json:"streamed,omitempty"` // restored from the dump's stream while it was written
	// Store is what the archive's store held over the recorded version
	// when the proof read it (a delete marker, newer versions): the proof
	// read the recorded version all the same.
	Store []string `json:"store,omitempty"`
	// Isolation says how the archive's code was kept from the host during
	// a restore proof.
	Isolation *Isolation `json:"isolation,omitempty"`
}

// Isolation is how a restore proof ran the archive's code: as which
// database role, in a server run by which system user, with what network.
type Isolation struct {
	RestoreRole string `json:"restore_role"` // NOSUPERUSER, member of the archive's roles
	ServerUser  string `json:"server_user"`
	Network     string `json:"network"`
}

// Proof statuses.
const (
	ProofPassed = "passed"
	ProofFailed = "failed"
)

// TableCount is the exact row count of one restored table.
type TableCount struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// Tools are the versions of the programs that made and proved a backup.
type Tools struct {
	PgDump      string `json:"pg_dump"`
	PgRestore   string `json:"pg_restore"`
	ProofServer string `json:"proof_server,omitempty"`
	Pgattest    string `json:"pgattest,omitempty"`
}

// Stage is how long one pipeline stage took.
type Stage struct {
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
}

// LastProof returns the newest proof, or nil.
func (r *Record) LastProof() *Proof {
	if len(r.Proofs) == 0 {
		return nil
	}
	return &r.Proofs[len(r.Proofs)-1]
}

// Proven reports whether the record's last proof passed and its archive has
// not been pruned: a backup one may restore from.
func (r *Record) Proven() bool { return r.Status == StatusVerified }

var idUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// NewID returns a readable ID that sorts by time:
// "20261124T222800Z-neondb-7f3a" for name "neondb@ep-cool-darkness" at that
// instant. The name part is the name up to its first "@", lower-cased, with
// anything but letters and digits turned into "-", at most 24 characters.
func NewID(name string, at time.Time) string {
	short, _, _ := strings.Cut(name, "@")
	short = strings.Trim(idUnsafe.ReplaceAllString(strings.ToLower(short), "-"), "-")
	if len(short) > 24 {
		short = strings.Trim(short[:24], "-")
	}
	if short == "" {
		short = "db"
	}
	var b [2]byte
	rand.Read(b[:])
	return at.UTC().Format(StampLayout) + "-" + short + "-" + hex.EncodeToString(b[:])
}

// StampLayout is the UTC time stamp used in IDs and archive file names.
const StampLayout = "20060102T150405Z"
