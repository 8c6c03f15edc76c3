package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
)

// PruneOptions configure Prune.
type PruneOptions struct {
	CatalogPath string
	Policy      catalog.Policy
	Name        string // only this name; "" = every name
	DryRun      bool   // decide and report, change nothing
	Log         func(line string)
}

// PruneResult is what Prune decided and did.
type PruneResult struct {
	Policy  string
	Kept    []catalog.Kept
	Removed []*catalog.Record // archives deleted and records marked pruned (with DryRun: would be)
	Freed   int64             // bytes of the removed archives
	Failed  map[string]error  // backup id → why its archive could not be removed
	// Locked are backups to remove whose archives are still under S3
	// Object Lock retention (id → until): kept, records unchanged, removed
	// by a run after the date. Not an error.
	Locked map[string]time.Time
	// Missing are backups whose archive was not there whole: they fill
	// no slot, are marked missing (not with DryRun), and are not deleted.
	Missing []MissingArchive
	// Superseded are removed backups whose re-encrypted copy (the value)
	// stands for them: a copy and its original are one backup.
	Superseded map[string]string
	Event      catalog.Event // the last event written
}

// MissingArchive is a backup whose archive prune did not find whole.
type MissingArchive struct {
	Record *catalog.Record
	Why    string
}

// PruneCheckError: the store could not say whether a backup's archive is
// there, so prune deleted nothing.
type PruneCheckError struct {
	Record *catalog.Record
	Err    error
}

func (e *PruneCheckError) Error() string {
	return fmt.Sprintf("could not tell whether the archive of %s is there (%s): %v; nothing was pruned", e.Record.ID, e.Record.Archive.Path, e.Err)
}
func (e *PruneCheckError) Unwrap() error { return e.Err }
func (e *PruneCheckError) Hint() string {
	return "prune counts only archives it finds: make the store answer (credentials, network, permissions) and run it again"
}

// Prune applies a retention policy to the catalog: it asks the store
// whether each backup's archive is there (one whose archive is gone fills
// no slot and is marked missing), folds re-encrypted copies into the backup
// they copy (the copy recorded last stands for it; the others go), decides
// with catalog.ApplyPolicy, then for each backup to remove deletes its
// archive and manifest and marks the record pruned with a "pruned" event. Records stay,
// so an auditor sees what existed and when it went. The chain is verified
// first: a catalog that was edited behind pgattest's back could point the
// deletions anywhere, so Prune refuses to act on it.
func Prune(ctx context.Context, o PruneOptions) (*PruneResult, error) {
	if o.Policy.Empty() {
		return nil, &UsageError{Err: errors.New("no retention policy given"),
			hint: "say what to keep: the newest N, so many daily, weekly, monthly or yearly backups, or those within a span"}
	}
	var cat *catalog.Catalog
	var err error
	if o.DryRun {
		cat, err = catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true})
	} else {
		if err := checkCatalog(o.CatalogPath, false); err != nil {
			return nil, err
		}
		cat, err = openCatalog(o.CatalogPath, nil)
	}
	if err != nil {
		return nil, refused(o.CatalogPath, err)
	}
	defer cat.Close()
	rep, err := cat.VerifyChain()
	if err != nil {
		return nil, refused(o.CatalogPath, err)
	}
	if !rep.OK() {
		return nil, &CatalogRefusedError{Path: o.CatalogPath, Err: rep.Broken}
	}
	recs, err := cat.List(catalog.Query{Name: o.Name})
	if err != nil {
		return nil, err
	}
	live := make([]*catalog.Record, 0, len(recs)) // recs stay whole: copy chains run through pruned records
	for _, r := range recs {
		if r.Status != catalog.StatusPruned {
			live = append(live, r)
		}
	}
	res := &PruneResult{Policy: o.Policy.String(), Failed: map[string]error{}, Locked: map[string]time.Time{}, Superseded: map[string]string{}}

	// Only an archive that is there fills a slot: ask the store of each
	// (a stat, no byte read). One it cannot answer for stops the prune
	// before anything is deleted.
	there := live[:0:0]
	for _, r := range live {
		why, err := archivePresent(ctx, r)
		if err != nil {
			return nil, &PruneCheckError{Record: r, Err: err}
		}
		if why != "" {
			res.Missing = append(res.Missing, MissingArchive{Record: r, Why: why})
			continue
		}
		if r.Status == catalog.StatusMissing { // back: the status its proofs give, and it counts again
			r.Status = catalog.StatusByProofs(r.Proofs)
			if !o.DryRun {
				ev, err := cat.Update(r, catalog.KindFound, "prune found the archive again")
				if err != nil {
					return nil, err
				}
				res.Event = ev
			}
		}
		there = append(there, r)
	}
	var seqs map[string]uint64 // asked of the events only where copies are to be ordered
	if slices.ContainsFunc(recs, func(r *catalog.Record) bool { return r.ReencryptedFrom != "" }) {
		if seqs, err = recordedOrder(cat); err != nil {
			return nil, err
		}
	}
	stands, members := oneBackupEach(recs, there, seqs)
	kept, removed := catalog.ApplyPolicy(stands, o.Policy)
	res.Kept = kept
	for _, k := range kept { // the copies it stands for go
		for _, m := range members[k.Record.ID] {
			res.Removed = append(res.Removed, m)
			res.Superseded[m.ID] = k.Record.ID
		}
	}
	for _, r := range removed { // the whole backup goes
		res.Removed = append(res.Removed, r)
		res.Removed = append(res.Removed, members[r.ID]...)
	}
	// Newest first, as list shows them.
	sort.SliceStable(res.Kept, func(i, j int) bool { return res.Kept[i].Record.StartedAt.After(res.Kept[j].Record.StartedAt) })
	sort.SliceStable(res.Removed, func(i, j int) bool { return res.Removed[i].StartedAt.After(res.Removed[j].StartedAt) })
	if !o.DryRun {
		for _, m := range res.Missing {
			if m.Record.Status == catalog.StatusMissing {
				continue
			}
			m.Record.Status = catalog.StatusMissing
			ev, err := cat.Update(m.Record, catalog.KindMissing, "prune found the archive gone: "+m.Why)
			if err != nil {
				return res, err
			}
			res.Event = ev
			if o.Log != nil {
				o.Log(fmt.Sprintf("missing %s (%s): %s", m.Record.ID, m.Record.Archive.Path, m.Why))
			}
		}
	}
	for _, r := range res.Removed {
		res.Freed += r.Archive.Size
	}
	if o.DryRun {
		return res, nil
	}
	done := res.Removed[:0:0]
	var freed int64
	for _, r := range res.Removed {
		note, err := removeArchive(r)
		var locked *repo.LockedError
		if errors.As(err, &locked) {
			res.Locked[r.ID] = locked.Until
			if o.Log != nil {
				o.Log(fmt.Sprintf("kept %s: locked until %s", r.ID, locked.Until.UTC().Format(time.DateOnly)))
			}
			continue
		}
		if err != nil {
			res.Failed[r.ID] = err
			continue
		}
		now := time.Now().UTC()
		r.Status, r.PrunedAt = catalog.StatusPruned, &now
		detail := o.Policy.String()
		if c := res.Superseded[r.ID]; c != "" {
			detail += "; superseded by its re-encrypted copy " + c
		}
		if note != "" {
			detail += "; " + note
		}
		ev, err := cat.Update(r, catalog.KindPruned, detail)
		if err != nil {
			return res, fmt.Errorf("archive of %s deleted but the record not marked: %w", r.ID, err)
		}
		res.Event = ev
		done = append(done, r)
		if note == "" { // an archive already gone frees nothing now
			freed += r.Archive.Size
		}
		if o.Log != nil {
			o.Log(fmt.Sprintf("pruned %s (%s)", r.ID, r.Archive.Path))
		}
	}
	res.Removed, res.Freed = done, freed
	return res, nil
}

// archivePresent says why a record's archive is not there whole ("" when
// it is), or an error when its store could not say.
func archivePresent(ctx context.Context, r *catalog.Record) (string, error) {
	l, err := locate(r)
	if err != nil {
		return "", err
	}
	a, err := l.present(ctx, r)
	return a.why, err
}

// recordedOrder numbers the records in the order they were recorded (the
// seq of each one's "recorded" event).
func recordedOrder(cat *catalog.Catalog) (map[string]uint64, error) {
	seqs := map[string]uint64{}
	err := cat.Events(0, func(e catalog.Event) error {
		if e.Kind == catalog.KindRecorded {
			if _, ok := seqs[e.BackupID]; !ok {
				seqs[e.BackupID] = e.Seq
			}
		}
		return nil
	})
	return seqs, err
}

// oneBackupEach folds re-encrypted copies into the backup they copy: of
// each family (a record and every copy made from it, however deep, found
// through all of recs), one member of there stands for the family: a
// proven one before one that is not, then the deepest copy (the newest
// recipients), then the one recorded last; members maps it to the
// family's other members in there.
func oneBackupEach(recs, there []*catalog.Record, seqs map[string]uint64) (stands []*catalog.Record, members map[string][]*catalog.Record) {
	byID := map[string]*catalog.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	root := func(r *catalog.Record) string {
		id := r.ID
		for seen := 0; seen <= len(recs); seen++ { // a loop in a forged catalog ends
			p := byID[id]
			if p == nil || p.ReencryptedFrom == "" {
				break
			}
			id = p.ReencryptedFrom
		}
		return id
	}
	families := map[string][]*catalog.Record{}
	var roots []string
	for _, r := range there {
		k := root(r)
		if families[k] == nil {
			roots = append(roots, k)
		}
		families[k] = append(families[k], r)
	}
	depth := func(r *catalog.Record) int {
		n := 0
		for p := r; p != nil && p.ReencryptedFrom != "" && n <= len(recs); n++ {
			p = byID[p.ReencryptedFrom]
		}
		return n
	}
	members = map[string][]*catalog.Record{}
	for _, k := range roots {
		fam := families[k]
		// A proven member stands before one that is not (a copy whose
		// proof failed never takes its proven original with it); then the
		// deepest copy (the newest recipients, whatever order a rebuild
		// recorded them in); then the one recorded last.
		sort.SliceStable(fam, func(i, j int) bool {
			a, b := fam[i], fam[j]
			if va, vb := a.Status == catalog.StatusVerified, b.Status == catalog.StatusVerified; va != vb {
				return va
			}
			if da, db := depth(a), depth(b); da != db {
				return da > db
			}
			return seqs[a.ID] > seqs[b.ID]
		})
		stands = append(stands, fam[0])
		if len(fam) > 1 {
			members[fam[0].ID] = fam[1:]
		}
	}
	return stands, members
}

// removeArchive deletes a backup's archive and manifest where they are
// kept (location.remove).
func removeArchive(r *catalog.Record) (note string, err error) {
	l, err := locate(r)
	if err != nil {
		return "", fmt.Errorf("%w; nothing deleted", err)
	}
	return l.remove(context.Background(), r)
}

// checkDumpDir refuses to delete a folder that is not a pg_dump directory
// archive: it must hold toc.dat and nothing but plain files.
func checkDumpDir(path string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder; nothing deleted", path)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	hasTOC := false
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s holds %s, which pg_dump does not write; nothing deleted", path, e.Name())
		}
		hasTOC = hasTOC || e.Name() == "toc.dat"
	}
	if !hasTOC {
		return fmt.Errorf("%s has no toc.dat: not a pg_dump directory archive; nothing deleted", path)
	}
	return nil
}
