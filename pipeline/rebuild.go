package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/verify"
)

// RebuildOptions configure Rebuild.
type RebuildOptions struct {
	CatalogPath string
	Repo        string // s3://BUCKET[/PREFIX], file:///path or a folder
	Rehash      bool   // re-hash every archive, not only check it is there
	// IncludeHidden records manifests a delete marker hides too (listed,
	// not recorded, without it).
	IncludeHidden bool
	// TrustKeys are public key files (SPKI PEM): with any, a backup is
	// recorded verified only when a receipt signed by one of them covers
	// its archive and its proof (attest).
	TrustKeys []string
	Log       func(line string)
}

// Rebuild makes a catalog from the manifests in a repository: every
// NAME/*.manifest.json whose archive is there (of the recorded size, and
// digest with Rehash) is recorded, oldest first, with a "recorded" event
// that says where from. The catalog must be new or empty: a rebuild never
// mixes with records it did not make. Manifests hold a backup's record as
// it was made; later proofs (verify) are not in them.
func Rebuild(ctx context.Context, o RebuildOptions) (*ImportResult, error) {
	loc, err := repo.Parse(o.Repo)
	if err != nil {
		return nil, &UsageError{Err: err, hint: "give the repository the backups were written to: s3://BUCKET/PREFIX or a folder"}
	}
	r, err := openToRead(ctx, loc)
	if err != nil {
		return nil, err
	}
	keys, err := loadTrusted(o.TrustKeys)
	if err != nil {
		return nil, err
	}
	if err := checkCatalog(o.CatalogPath, true); err != nil {
		return nil, err
	}
	cat, err := openCatalog(o.CatalogPath, nil)
	if err != nil {
		return nil, err
	}
	defer cat.Close()
	if recs, err := cat.List(catalog.Query{Limit: 1}); err != nil {
		return nil, err
	} else if len(recs) > 0 {
		return nil, &UsageError{Err: fmt.Errorf("the catalog %s holds records already: a rebuild writes only into a new one", o.CatalogPath),
			hint: "give --catalog a path where there is none yet"}
	}
	objs, err := r.List(ctx, "")
	if err != nil {
		return nil, storeErrOf(r, err)
	}
	have := map[string]repo.Object{}
	var manifests []repo.Object
	for _, obj := range objs {
		have[obj.Key] = obj
		parts := strings.Split(obj.Key, "/")
		if len(parts) == 2 && strings.HasSuffix(obj.Key, ".manifest.json") && !strings.HasPrefix(parts[1], ".") {
			manifests = append(manifests, obj)
		}
	}
	// Manifests (and archives) a delete marker hides are found too: a
	// writer of the bucket may hide what it cannot destroy (Object Lock).
	// Whether a marker is a user's deletion or a hostile writer's cannot
	// be told: hidden manifests are listed, and recorded only when asked
	// (IncludeHidden), never deciding which source holds a name.
	res := &ImportResult{}
	if keys == nil {
		res.Notes = append(res.Notes, "no --trust-key: the manifests are trusted as they are, and whoever can write to the repository could have written them; with the signing key's public half, only what its receipts cover is recorded verified")
	}
	hidden, err := r.Hidden(ctx, "")
	if err != nil { // credentials without version listing: say so, go on
		res.Notes = append(res.Notes, "could not look for manifests hidden behind delete markers: "+storeErrOf(r, err).Error())
		hidden = nil
	}
	hiddenManifest := map[string]bool{}
	for _, obj := range hidden {
		if _, ok := have[obj.Key]; ok {
			continue
		}
		have[obj.Key] = obj
		parts := strings.Split(obj.Key, "/")
		if len(parts) == 2 && strings.HasSuffix(obj.Key, ".manifest.json") && !strings.HasPrefix(parts[1], ".") {
			manifests = append(manifests, obj)
			hiddenManifest[obj.Key] = true
		}
	}
	type found struct {
		obj repo.Object
		m   *Manifest
		err error
	}
	var all []found
	for _, obj := range manifests {
		version := ""
		if hiddenManifest[obj.Key] {
			version = obj.VersionID
		}
		m, err := readStoredManifest(ctx, r, obj.Key, version)
		all = append(all, found{obj, m, err})
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].m == nil || all[j].m == nil {
			return all[i].m == nil && all[j].m != nil
		}
		return all[i].m.Record.StartedAt.Before(all[j].m.Record.StartedAt)
	})
	// One name, one source: the source of a name's oldest backup keeps it;
	// another source's backups under that name (two machines that did not
	// know of each other) are recorded apart, under NAME~2, NAME~3…
	type bound struct {
		id   *catalog.Identity
		name string
	}
	sources := map[string][]bound{}
	// nameFor is the name a record is kept under; bind binds it once the
	// record is in (a manifest that fails binds nothing).
	nameFor := func(rec *catalog.Record) (string, bool) {
		id := rec.Source.Identity
		list := sources[rec.Name]
		for _, b := range list {
			if id == nil || b.id == nil || b.id.SameSource(*id) {
				return b.name, true
			}
		}
		if len(list) == 0 {
			return rec.Name, false
		}
		return fmt.Sprintf("%s~%d", rec.Name, len(list)+1), false
	}
	bind := func(asked, name string, id *catalog.Identity) {
		sources[asked] = append(sources[asked], bound{id, name})
	}
	for _, f := range all {
		row := ImportRow{Manifest: location{repo: r}.show(f.obj.Key)}
		if hiddenManifest[f.obj.Key] {
			row.Note = fmt.Sprintf("the manifest is hidden behind a delete marker (deleted by its owner, or hidden by a writer of the bucket): its version %s", f.obj.VersionID)
			if !o.IncludeHidden {
				row.Result = "hidden"
				row.Note += "; not recorded (rebuild --include-hidden records it)"
				if f.m != nil {
					row.Record = f.m.Record
				}
				res.Rows = append(res.Rows, row)
				continue
			}
		}
		if f.err != nil {
			row.Result, row.Err = "failed", f.err
			res.Rows = append(res.Rows, row)
			continue
		}
		rec := f.m.Record
		row.Record = rec
		// A manifest is written before any receipt: receipts and
		// attestations in one are somebody's writing, never taken.
		rec.Receipts, rec.Attestation, rec.UnattestedProofs = nil, "", nil
		if rec.Archive.Format == verify.FormatDirectory { // a folder has no digests of one file
			rec.Archive.SHA256, rec.Archive.Segments = "", nil
		}
		if why := impossible(f.m, time.Now()); why != "" {
			row.Result, row.Err = "failed", &ImpossibleManifestError{Manifest: row.Manifest, Why: why}
			if o.Log != nil {
				o.Log(fmt.Sprintf("%s %s", row.Result, row.Manifest))
			}
			res.Rows = append(res.Rows, row)
			continue
		}
		asked := rec.Name
		name, known := nameFor(rec)
		if hiddenManifest[f.obj.Key] {
			known = true // a hidden one never decides who holds a name
		}
		if name != rec.Name {
			row.Note = strings.TrimPrefix(row.Note+"; "+fmt.Sprintf("the name %s holds another source in the repository (its oldest backup's): this one, %s, is recorded as %s",
				rec.Name, describeSource(rec), name), "; ")
			rec.Name = name
		}
		var note string
		row.Err = placeFound(ctx, r, rec, f.obj.Key, have, o.Rehash, &note)
		if note != "" {
			row.Note = strings.TrimPrefix(row.Note+"; "+note, "; ")
		}
		later, unread := 0, 0 // proofs taken from later receipts; receipts that could not be read
		if row.Err == nil && keys != nil {
			row.Attestation, later, unread, row.Err = attest(ctx, r, rec, asked, f.obj.Key, archiveKeyOf(f.obj.Key, rec), f.m.TOCEntries, keys)
			switch {
			case row.Err != nil:
				row.Err = storeErrOf(r, row.Err)
			case row.Attestation != AttestSigned && later == 0:
				row.Note = strings.TrimPrefix(row.Note+"; "+"recorded unverified: "+row.Attestation+" (the proofs its manifest claims are kept as unattested)", "; ")
			case row.Attestation != AttestSigned:
				row.Note = strings.TrimPrefix(row.Note+"; "+fmt.Sprintf("its backup's proof %s (kept as unattested); %d later proof(s) taken from their signed receipts", row.Attestation, later), "; ")
			case later > 0:
				row.Note = strings.TrimPrefix(row.Note+"; "+fmt.Sprintf("%d later proof(s) taken from their signed receipts", later), "; ")
			}
			if unread > 0 {
				row.Note = strings.TrimPrefix(row.Note+"; "+fmt.Sprintf("%d receipt(s) beside it could not be read (or are larger than any pgattest writes): left out", unread), "; ")
			}
		}
		if row.Err == nil {
			var ev catalog.Event
			if ev, row.Err = cat.Import(rec, f.m.TOCEntries, row.Manifest); row.Err == nil {
				res.Event = ev
				// Only what a trusted key attests binds a name, when keys
				// are given: a forged manifest older than the genuine
				// backups would push them to NAME~2.
				if !known && (keys == nil || row.Attestation == AttestSigned || later > 0) {
					bind(asked, name, rec.Source.Identity)
				}
			}
		}
		row.Result = "imported"
		if row.Err != nil {
			row.Result = "failed"
		}
		if o.Log != nil {
			o.Log(fmt.Sprintf("%s %s", row.Result, row.Manifest))
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// ImpossibleManifestError: a manifest in the repository says what cannot
// be true of a backup pgattest made. It is evidence (exit 3): someone
// wrote it.
type ImpossibleManifestError struct {
	Manifest string
	Why      string
}

func (e *ImpossibleManifestError) Error() string {
	return "the manifest cannot be true: " + e.Why
}
func (e *ImpossibleManifestError) ProofFailed() bool { return true }

// clockSkew is how far in the future a manifest's start may be (another
// machine's clock) before it cannot be true.
const clockSkew = 10 * time.Minute

// impossible says why a manifest cannot be one pgattest wrote ("" when it
// can): a backup that starts in the future, or a proof that counted tables
// the archive's table of contents lacks.
func impossible(m *Manifest, now time.Time) string {
	rec := m.Record
	if rec.StartedAt.After(now.Add(clockSkew)) {
		return fmt.Sprintf("the backup starts in the future (%s)", rec.StartedAt.UTC().Format(time.RFC3339))
	}
	if rec.FinishedAt.Before(rec.StartedAt) && !rec.FinishedAt.IsZero() {
		return "the backup finishes before it starts"
	}
	if m.TOCEntries == nil {
		return ""
	}
	listed := map[string]bool{}
	for _, e := range m.TOCEntries {
		switch e.Type {
		case "TABLE", "TABLE DATA", "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA", "FOREIGN TABLE":
			listed[e.Schema+"\x00"+e.Name] = true
		}
	}
	for _, p := range rec.Proofs {
		for _, tc := range p.Tables {
			if !listed[tc.Schema+"\x00"+tc.Name] {
				return fmt.Sprintf("its proof counted %s.%s, which the archive's table of contents lacks", tc.Schema, tc.Name)
			}
		}
	}
	return ""
}

// describeSource is a record's source as the server said it, or as the
// connection did for a record made before identities.
func describeSource(rec *catalog.Record) string {
	if id := rec.Source.Identity; id != nil {
		return describeIdentity(*id)
	}
	return fmt.Sprintf("database %s on %s:%d", rec.Source.Database, rec.Source.Host, rec.Source.Port)
}

// archiveKeyOf is the key of the archive beside the manifest at mkey.
func archiveKeyOf(mkey string, rec *catalog.Record) string {
	return strings.TrimSuffix(mkey, ".manifest.json") + extOf(rec.Archive)
}

// placeFound points a manifest's record at its archive where the rebuild
// found it (beside the manifest, the version the manifest names), and
// checks the archive is there, of its size, and with rehash its digest.
func placeFound(ctx context.Context, r repo.Repo, rec *catalog.Record, mkey string, have map[string]repo.Object, rehash bool, note *string) error {
	key := strings.TrimSuffix(mkey, ".manifest.json") + extOf(rec.Archive)
	if rec.Archive.Format == verify.FormatDirectory {
		key += "/"
	}
	// The version the manifest names is the backup's: a newer version or
	// a delete marker over the key is somebody else's.
	version := recordedVersion(rec)
	if version != "" && rec.Archive.Format != verify.FormatDirectory {
		// A copy of the bucket (mirrored elsewhere, or into one without
		// versions) has other version ids: then the current version, of
		// the recorded size, and its digest with --rehash.
		if _, err := r.Stat(ctx, key, version); errors.Is(err, repo.ErrNotFound) {
			if cur, ok := have[key]; ok {
				*note = fmt.Sprintf("the version its manifest names (%s) is not in this bucket: the current one (%s) is recorded, once it hashed to the manifest", version, cur.VersionID)
				version, rehash = "", true
			}
		}
	}
	if version == "" {
		version = have[key].VersionID
	}
	l := location{repo: r, key: key, version: version, manifest: mkey}
	l.display = l.show(key) // a folder's path, or the object's URL
	l.placeKeeping(rec, repo.Object{VersionID: version})
	a, err := l.present(ctx, rec)
	switch {
	case err != nil:
		return err
	case a.kind == isResized:
		return &verify.DigestMismatchError{Path: rec.Archive.Path, Want: fmt.Sprintf("%d bytes", rec.Archive.Size), Got: a.why}
	case a.kind != isThere:
		return &verify.MissingError{Path: rec.Archive.Path, Err: fmt.Errorf("not beside its manifest (%s)", a.why)}
	}
	if rehash {
		_, err := HashStored(ctx, rec)
		return err
	}
	return nil
}

func readStoredManifest(ctx context.Context, r repo.Repo, key, version string) (*Manifest, error) {
	body, err := r.Open(ctx, key, version)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 256<<20))
	if err != nil {
		return nil, err
	}
	return parseManifest(location{repo: r}.show(key), b)
}
