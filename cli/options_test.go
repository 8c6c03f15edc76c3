package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

// optionsEnv is the env a command's runX gets, writing into buffers, with
// a catalog path in a folder of the test's (nothing there yet).
func optionsEnv(t *testing.T) (*env, *bytes.Buffer) {
	t.Helper()
	var out, errs bytes.Buffer
	return &env{stdout: &out, stderr: &errs, rawStderr: &errs, red: &pipeline.Redactor{},
		catalogPath: filepath.Join(t.TempDir(), "catalog.db")}, &errs
}

// TestRunXChecksItsOptions calls each command's runX with an options
// struct, as the flags would fill it: every bad combination is a usage
// error (exit 2) naming the flag, caught before anything is opened or run
// (no catalog exists here: a check made after opening it would say so
// instead).
func TestRunXChecksItsOptions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		run  func(e *env) error
		want string
	}{
		{"backup --verify hash", func(e *env) error {
			_, err := runBackup(ctx, e, backupOptions{db: "dbname=x", verify: "hash", jobs: 1})
			return err
		}, `--verify "hash" is not a proof mode for backup`},
		{"backup --jobs 0", func(e *env) error {
			_, err := runBackup(ctx, e, backupOptions{db: "dbname=x", verify: "restore"})
			return err
		}, "--jobs 0 is out of range"},
		{"backup --label", func(e *env) error {
			_, err := runBackup(ctx, e, backupOptions{verify: "restore", jobs: 1, labels: []string{"novalue"}})
			return err
		}, `--label "novalue" has no key=value`},
		{"restore without --target", func(e *env) error {
			return runRestore(ctx, e, restoreOptions{name: "shop", jobs: 1})
		}, "restore needs --target"},
		{"restore --id --as-of", func(e *env) error {
			return runRestore(ctx, e, restoreOptions{id: "2026", asOf: "2026-11-01", target: "dbname=x", jobs: 1})
		}, "--as-of goes with --name, not --id"},
		{"restore --id --name", func(e *env) error {
			return runRestore(ctx, e, restoreOptions{id: "2026", name: "shop", target: "dbname=x", jobs: 1})
		}, "say which backup"},
		{"verify with nothing selected", func(e *env) error {
			return runVerify(ctx, e, verifyOptions{jobs: 1})
		}, "say which backups"},
		{"verify IDs and --all", func(e *env) error {
			return runVerify(ctx, e, verifyOptions{ids: []string{"2026"}, all: true, jobs: 1})
		}, "say which backups"},
		{"prune with no policy", func(e *env) error {
			return runPrune(ctx, e, pruneOptions{name: "shop"})
		}, "no retention policy given"},
		{"prune --keep-weekly -2", func(e *env) error {
			return runPrune(ctx, e, pruneOptions{policy: catalog.Policy{Daily: 7, Weekly: -2}})
		}, "--keep-weekly -2 is out of range"},
		{"prune --keep-within", func(e *env) error {
			return runPrune(ctx, e, pruneOptions{within: "fortnight"})
		}, "--keep-within"},
		{"audit without --from", func(e *env) error {
			return runAudit(ctx, e, auditOptions{format: "text"})
		}, "audit needs --from"},
		{"audit --to before --from", func(e *env) error {
			return runAudit(ctx, e, auditOptions{from: "2026-11-02", to: "2026-11-01", format: "text"})
		}, "--to 2026-11-01 is before --from 2026-11-02"},
		{"audit --format pdf", func(e *env) error {
			return runAudit(ctx, e, auditOptions{from: "2026-11-01", format: "pdf"})
		}, `--format "pdf" is not a report format`},
		{"audit --sign-key without --receipt-out", func(e *env) error {
			return runAudit(ctx, e, auditOptions{from: "2026-11-01", format: "json", signKey: "sign.pem"})
		}, "--sign-key and --receipt-out go together"},
		{"toc --type", func(e *env) error {
			return runTOC(ctx, e, tocOptions{id: "2026", types: []string{"TABEL"}})
		}, `--type "TABEL" is not a pg_dump entry type`},
		{"reencrypt without recipients", func(e *env) error {
			return runReencrypt(ctx, e, reencryptOptions{id: "2026"})
		}, "reencrypt needs the recipients"},
		{"list --status", func(e *env) error {
			return runList(ctx, e, listOptions{status: "proven", limit: 50})
		}, `--status "proven" is not a status`},
		{"receipt verify without receipts", func(e *env) error {
			return runReceiptVerify(ctx, e, receiptVerifyOptions{keys: []string{"sign.pub.pem"}})
		}, "give the receipts to check"},
		{"receipt verify --archive of two receipts", func(e *env) error {
			return runReceiptVerify(ctx, e, receiptVerifyOptions{files: []string{"a.receipt.json", "b.receipt.json"}, keys: []string{"sign.pub.pem"}, archive: "a.dump"})
		}, "--archive goes with one receipt, got 2"},
		{"catalog rebuild without --repo", func(e *env) error {
			return runCatalogRebuild(ctx, e, catalogRebuildOptions{})
		}, "catalog rebuild needs the repository"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, _ := optionsEnv(t)
			err := c.run(e)
			if err == nil || !strings.Contains(err.Error(), c.want) || exitCode(err) != 2 || hintOf(err) == "" {
				t.Fatalf("got %v (exit %d, hint %q); want a usage error with a hint saying %q", err, exitCode(err), hintOf(err), c.want)
			}
		})
	}
}

// TestSharedFlagsBindFromTheEnvironment: a repeatable flag declared once
// in flags.go (--trust-key) takes its values from its variable as from the
// command line, through Main: a key file named only in PGATTEST_TRUST_KEY
// is the one audit reads.
func TestSharedFlagsBindFromTheEnvironment(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "from-the-environment.pub.pem")
	t.Setenv("PGATTEST_TRUST_KEY", missing)
	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"pgattest", "--catalog", filepath.Join(t.TempDir(), "c.db"), "audit", "--from", "2026-11-01"}, &out, &errs)
	if code == 0 || !strings.Contains(errs.String(), "from-the-environment.pub.pem") {
		t.Fatalf("exit %d, stderr %q: want audit to read the trusted key PGATTEST_TRUST_KEY names", code, errs.String())
	}
}

// TestAuditIgnoresTheBackupsSignKey: a nightly job that exports
// PGATTEST_SIGN_KEY for its backups still runs its plain audit (the
// variable is backup's and verify's: an audit signs only when asked), and
// backup reads it.
func TestAuditIgnoresTheBackupsSignKey(t *testing.T) {
	key := filepath.Join(t.TempDir(), "from-the-environment.pem")
	t.Setenv("PGATTEST_SIGN_KEY", key)
	t.Setenv("PGATTEST_TRUST_KEY", "") // restored after the test
	os.Unsetenv("PGATTEST_TRUST_KEY")
	cat := filepath.Join(t.TempDir(), "c.db")
	var out, errs bytes.Buffer
	if code := Main(context.Background(), []string{"pgattest", "--catalog", cat, "audit", "--from", "2026-11-01", "--to", "2026-11-02"}, &out, &errs); code == exitUsage {
		t.Errorf("audit with PGATTEST_SIGN_KEY set: exit %d\n%s", code, errs.String())
	}
	errs.Reset()
	code := Main(context.Background(), []string{"pgattest", "--catalog", cat, "backup", "--db", "postgres://127.0.0.1:1/x", "--name", "x"}, &out, &errs)
	if code == 0 || !strings.Contains(errs.String(), "from-the-environment.pem") {
		t.Errorf("backup does not read the key PGATTEST_SIGN_KEY names: exit %d\n%s", code, errs.String())
	}
}

// TestInterruptedArchiveChecksAreNoFinding: catalog verify --archives and
// audit --rehash stopped by Ctrl-C (a cancelled context) say they were
// interrupted, never that archives do not match (exit 3): one seeded
// backup's archive is gone, which an uninterrupted check reports.
func TestInterruptedArchiveChecksAreNoFinding(t *testing.T) {
	w := newWorkdir(t)
	recs := seed(t, w, nightly("shop", time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC), 3, func(int) string { return catalog.StatusVerified })...)
	os.Remove(recs[1].Archive.Path)
	e, _ := optionsEnv(t)
	e.catalogPath = w.catalog
	if err := runCatalogVerify(context.Background(), e, catalogVerifyOptions{archives: true}); exitCode(err) != exitProofFailed {
		t.Fatalf("catalog verify --archives of archives not there: %v (exit %d), want exit 3", err, exitCode(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runCatalogVerify(ctx, e, catalogVerifyOptions{archives: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("catalog verify --archives interrupted: %v (exit %d), want the interruption", err, exitCode(err))
	}
	if err := runAudit(ctx, e, auditOptions{from: "2026-11-01", to: "2026-11-03", format: "text", rehash: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("audit --rehash interrupted: %v (exit %d), want the interruption", err, exitCode(err))
	}
}
