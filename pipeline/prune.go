package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	Event  catalog.Event // the last event written
}

// Prune applies a retention policy to the catalog: it decides with
// catalog.ApplyPolicy, then for each backup to remove deletes its archive and
// manifest and marks the record pruned with a "pruned" event. Records stay,
// so an auditor sees what existed and when it went. The chain is verified
// first: a catalog that was edited behind pgattest's back could point the
// deletions anywhere, so Prune refuses to act on it.
func Prune(o PruneOptions) (*PruneResult, error) {
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
	live := recs[:0]
	for _, r := range recs {
		if r.Status != catalog.StatusPruned {
			live = append(live, r)
		}
	}
	res := &PruneResult{Policy: o.Policy.String(), Failed: map[string]error{}, Locked: map[string]time.Time{}}
	res.Kept, res.Removed = catalog.ApplyPolicy(live, o.Policy)
	// Newest first, as list shows them.
	sort.SliceStable(res.Kept, func(i, j int) bool { return res.Kept[i].Record.StartedAt.After(res.Kept[j].Record.StartedAt) })
	sort.SliceStable(res.Removed, func(i, j int) bool { return res.Removed[i].StartedAt.After(res.Removed[j].StartedAt) })
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

// removeArchive deletes a backup's archive and manifest. It only deletes
// what looks like what pgattest wrote there: a regular file for a custom
// archive, a folder of plain files with a toc.dat for a directory archive.
// An archive that is already gone is noted, not an error.
func removeArchive(r *catalog.Record) (note string, err error) {
	if r.Archive.Store != nil {
		return removeStored(context.Background(), r)
	}
	path := r.Archive.Path
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("the record has no absolute archive path (%q); nothing deleted", path)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		note = "the archive was already gone"
	case err != nil:
		return "", err
	case r.Archive.Format == "directory":
		if err := checkDumpDir(path, fi); err != nil {
			return "", err
		}
		if err := os.RemoveAll(path); err != nil {
			return "", err
		}
	default:
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("%s is not a regular file (%s); nothing deleted", path, fi.Mode().Type())
		}
		if err := os.Remove(path); err != nil {
			return "", err
		}
	}
	if m := r.Archive.Manifest; m != "" {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	syncDir(filepath.Dir(path))
	return note, nil
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
