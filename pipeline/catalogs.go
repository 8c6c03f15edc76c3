package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
)

// Every command that records (backup, verify, restore, prune, catalog
// import) goes through here: before any work, the catalog must be one
// that `catalog verify` accepts (not damaged, its chain intact) and
// writable; a catalog that fails either is refused, untouched.

// CatalogRefusedError is a catalog that catalog verify would reject: a
// command that records refuses it before doing any work. It is evidence
// (exit 3): the catalog was damaged or changed behind pgattest's back.
type CatalogRefusedError struct {
	Path string
	Err  error // a *catalog.BrokenLink, or a *catalog.Error with ErrDamaged
}

func (e *CatalogRefusedError) Error() string {
	var ce *catalog.Error
	if errors.As(e.Err, &ce) { // it names the file already
		return fmt.Sprintf("refusing to record in the catalog: %v", e.Err)
	}
	return fmt.Sprintf("refusing to record in catalog %s: %v", e.Path, e.Err)
}

// Hint says what was left alone and how to look.
func (e *CatalogRefusedError) Hint() string {
	var h interface{ Hint() string }
	if errors.As(e.Err, &h) && h.Hint() != "" {
		return h.Hint()
	}
	return "the file was left untouched and nothing was done; 'pgattest catalog verify' shows what is wrong"
}
func (e *CatalogRefusedError) Unwrap() error     { return e.Err }
func (e *CatalogRefusedError) ProofFailed() bool { return true }

// checkCatalog fails early, changing nothing, when the catalog cannot take
// a record: not writable, damaged, or its chain broken. A catalog that does
// not exist yet is fine when create is set (the first backup makes it).
// Another run holding it is not an error here: it will be free later, and
// errBusyUnchecked says the check is still to be made then.
func checkCatalog(path string, create bool) error {
	err := checkCatalogWithin(path, create, 2*time.Second)
	if errors.Is(err, errBusyUnchecked) {
		return nil
	}
	return err
}

// errBusyUnchecked: another run held the catalog, so it was not checked.
var errBusyUnchecked = errors.New("catalog busy: not checked")

func checkCatalogWithin(path string, create bool, wait time.Duration) error {
	if path == "" {
		return nil
	}
	if err := catalog.CheckWritable(path); err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if create {
			return nil
		}
		return &catalog.Error{Path: path, Err: catalog.ErrNoCatalog}
	}
	c, err := catalog.Open(path, catalog.Options{ReadOnly: true, Timeout: wait})
	if errors.Is(err, catalog.ErrBusy) {
		return errBusyUnchecked
	}
	if err != nil {
		return refused(path, err)
	}
	defer c.Close()
	rep, err := c.VerifyChain()
	if err != nil {
		return refused(path, err)
	}
	if !rep.OK() {
		return &CatalogRefusedError{Path: path, Err: rep.Broken}
	}
	return nil
}

// refused marks damage as a refusal; other errors pass as they are.
func refused(path string, err error) error {
	if errors.Is(err, catalog.ErrDamaged) || errors.Is(err, catalog.ErrChainBroken) {
		return &CatalogRefusedError{Path: path, Err: err}
	}
	return err
}

// CatalogWait is how long a command that records waits for another run
// that holds the catalog: PGATTEST_CATALOG_WAIT (a Go duration, "2m"), else
// catalog.DefaultTimeout.
func CatalogWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PGATTEST_CATALOG_WAIT")); err == nil && d > 0 {
		return d
	}
	return catalog.DefaultTimeout
}

// openCatalog opens the catalog to write a record, waiting for another run
// that holds it (CatalogWait) and saying so through wait.
func openCatalog(path string, wait func(pid int)) (*catalog.Catalog, error) {
	c, err := catalog.Open(path, catalog.Options{OnWait: wait, Timeout: CatalogWait()})
	if err != nil {
		return nil, refused(path, err)
	}
	return c, nil
}

// plural writes "1 table", "2 tables".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// waitingFor returns the OnWait callback that logs who holds the catalog.
func waitingFor(log func(string)) func(pid int) {
	return func(pid int) {
		if log == nil {
			return
		}
		if pid > 0 {
			log(fmt.Sprintf("waiting for the catalog, held by pid %d", pid))
		} else {
			log("waiting for the catalog, held by another pgattest")
		}
	}
}

// verifiedCatalog checks an open catalog's chain, as catalog verify does.
func verifiedCatalog(c *catalog.Catalog) error {
	rep, err := c.VerifyChain()
	if err != nil {
		return refused(c.Path(), err)
	}
	if !rep.OK() {
		return &CatalogRefusedError{Path: c.Path(), Err: rep.Broken}
	}
	return nil
}

// NameTakenError: the backup name's earlier backups are of another source,
// by what the servers said. One name never mixes two sources: prune and
// audit would take one's backups for the other's.
type NameTakenError struct {
	Name       string
	Earlier    *catalog.Record
	Identity   catalog.Identity
	Repo       string // where the earlier backups were found: "" for the catalog, else the repository
	earlierSrc string
}

func (e *NameTakenError) Error() string {
	where := ""
	if e.Repo != "" {
		where = " in " + e.Repo
	}
	return fmt.Sprintf("backup name %q belongs to another source: its backups%s (the newest %s) are of %s, this is %s",
		e.Name, where, e.Earlier.ID, e.earlierSrc, describeIdentity(e.Identity))
}

// Is makes a name taken a usage error (exit 2).
func (e *NameTakenError) Is(target error) bool { return target == ErrUsage }

// Hint says how to go on.
func (e *NameTakenError) Hint() string {
	return "give this source a name of its own; if it is the same database moved elsewhere, the name can be forced"
}

func describeIdentity(id catalog.Identity) string {
	db := id.Database
	if strconv.Quote(db) != `"`+db+`"` { // a name with controls reads as one value
		db = strconv.Quote(db)
	}
	s := fmt.Sprintf("database %s (oid %d) on port %d", db, id.DatabaseOID, id.Port)
	if id.SystemID != "" {
		s += ", cluster " + id.SystemID
	}
	return s
}

// maxManifest bounds what is read of a manifest found in a repository (it
// is the storage's word, not pgattest's: read, never trusted further).
const maxManifest = 256 << 20

// checkNameInRepo refuses a name whose newest manifest in the repository
// (under NAME/, set-aside ones left out) is of another source: two
// machines, each with its own catalog, must not mix two sources under one
// name in one folder or bucket.
func checkNameInRepo(ctx context.Context, r repo.Repo, name string, id catalog.Identity) error {
	objs, err := r.List(ctx, name+"/")
	if err != nil {
		return err
	}
	for i := len(objs) - 1; i >= 0; i-- { // keys sort by their stamps: newest last
		k := objs[i].Key
		rel := strings.TrimPrefix(k, name+"/")
		if !strings.HasSuffix(rel, ".manifest.json") || strings.Contains(rel, "/") {
			continue
		}
		body, err := r.Open(ctx, k, "")
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(body, maxManifest))
		body.Close()
		if err != nil {
			return err
		}
		m, err := parseManifest(k, b)
		if err != nil || m.Record.Name != name {
			continue // not one of ours: it binds nothing
		}
		earlier := m.Record.Source.Identity
		if earlier == nil || earlier.SameSource(id) {
			return nil
		}
		return &NameTakenError{Name: name, Earlier: m.Record, Identity: id, Repo: r.URL(), earlierSrc: describeIdentity(*earlier)}
	}
	return nil
}

// checkName refuses a name whose newest backup is of another source; a
// name without backups, or whose newest backup has no identity (made
// before pgattest read them), is fine.
func checkName(path, name string, id catalog.Identity, force bool) error {
	if force || path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	c, err := catalog.Open(path, catalog.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return nil // busy, say: the record stage will wait for it
	}
	defer c.Close()
	recs, err := c.List(catalog.Query{Name: name, Limit: 1})
	if err != nil || len(recs) == 0 || recs[0].Source.Identity == nil {
		return nil
	}
	earlier := recs[0].Source.Identity
	if earlier.SameSource(id) {
		return nil
	}
	return &NameTakenError{Name: name, Earlier: recs[0], Identity: id, earlierSrc: describeIdentity(*earlier)}
}
