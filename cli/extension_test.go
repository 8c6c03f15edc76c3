package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// fakeExtension is an extension of plain SQL: a domain and a function. The
// source Postgres has it; the installed one, which proves, does not.
var fakeExtension = map[string]string{
	"pgattest_fakext.control": "comment = 'pgattest test extension'\ndefault_version = '1.0'\nrelocatable = true\n",
	"pgattest_fakext--1.0.sql": `CREATE DOMAIN positive_amount AS numeric CHECK (VALUE >= 0);
CREATE FUNCTION doubled(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
`,
}

func TestMissingExtension(t *testing.T) {
	tc := pgtest.NewExtensionToolchain(t, fakeExtension)
	src := shop(t, testenv.Options{Toolchain: tc, CacheDir: t.TempDir()})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src.ConnString("shop"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE EXTENSION pgattest_fakext`,
		`CREATE TABLE public.ledger (id int PRIMARY KEY, amount positive_amount)`,
		`INSERT INTO public.ledger SELECT g, g FROM generate_series(1, 40) g`,
		`CREATE VIEW public.ledger_doubled AS SELECT id, doubled(amount) FROM public.ledger`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)
	w := newWorkdir(t)

	// The installed Postgres proves; it has no pgattest_fakext.
	code, out, errOut := w.backup(t, "--json", "--db", src.ConnString("shop"), "--name", "shop")
	if code != exitProofFailed {
		t.Fatalf("exit %d, want 3\n%s", code, errOut)
	}
	failed := decodeRecord(t, out)
	if failed.Status != catalog.StatusFailed || !strings.Contains(failed.Proofs[0].Error, "needs extension pgattest_fakext") {
		t.Errorf("record %s, proof error %q", failed.Status, failed.Proofs[0].Error)
	}
	for _, want := range []string{"needs extension pgattest_fakext, which the proving Postgres 15", "hint: ", "--verify-skip-extension pgattest_fakext"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	// Accepted: the rest is proven, and the proof says what it left out.
	code, out, errOut = w.backup(t, "--json", "--db", src.ConnString("shop"), "--name", "shop", "--verify-skip-extension", "pgattest_fakext")
	if code != 0 {
		t.Fatalf("exit %d with --verify-skip-extension\n%s", code, errOut)
	}
	rec := decodeRecord(t, out)
	p := rec.LastProof()
	if rec.Status != catalog.StatusVerified || len(p.Skipped) != 1 {
		t.Fatalf("status %s, skipped %q", rec.Status, p.Skipped)
	}
	for _, want := range []string{"extension pgattest_fakext", "TABLE public.ledger", "TABLE DATA public.ledger", "VIEW public.ledger_doubled"} {
		if !strings.Contains(p.Skipped[0], want) {
			t.Errorf("skipped %q does not name %q", p.Skipped[0], want)
		}
	}
	rows := map[string]int64{}
	for _, tb := range p.Tables {
		rows[tb.Schema+"."+tb.Name] = tb.Rows
	}
	if _, ok := rows["public.ledger"]; ok {
		t.Error("public.ledger counted although it was left out")
	}
	if rows["shop.customers"] == 0 || rows["shop.order_items"] == 0 {
		t.Errorf("the rest was not restored: %v", rows)
	}
	code, out, _ = run(t, "--catalog", w.catalog, "show", rec.ID)
	if code != 0 || !strings.Contains(out, "skipped extension pgattest_fakext") {
		t.Errorf("show does not tell what the proof left out:\n%s", out)
	}

	// verify re-proves the failed one: same failure without the flag, a
	// pass with it.
	code, out, errOut = run(t, "--catalog", w.catalog, "verify", failed.ID)
	if code != exitProofFailed || !strings.Contains(out+errOut, "needs extension pgattest_fakext") {
		t.Errorf("verify exit %d, want 3 naming the extension:\n%s", code, errOut)
	}
	code, _, errOut = run(t, "--catalog", w.catalog, "verify", failed.ID, "--verify-skip-extension", "pgattest_fakext")
	if code != 0 {
		t.Errorf("verify --verify-skip-extension exit %d:\n%s", code, errOut)
	}
}
