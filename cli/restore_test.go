package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	bolt "go.etcd.io/bbolt"
)

func exec1(t *testing.T, c *testenv.Cluster, db string, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sqls {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func query1(t *testing.T, c *testenv.Cluster, db, q string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// state is a fingerprint of the shop's data that any change alters.
const stateSQL = `SELECT (SELECT count(*) FROM shop.orders) || '/' || (SELECT count(*) FROM shop.order_items) || '/' ||
	(SELECT sum(price) FROM shop.products) || '/' || (SELECT md5(string_agg(id::text || status::text, ',' ORDER BY id)) FROM shop.orders)`

func TestRestoreAsOfEndToEnd(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	before := query1(t, src, "shop", stateSQL)
	first := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	time.Sleep(1100 * time.Millisecond) // start times are kept to the second
	exec1(t, src, "shop",
		`DELETE FROM shop.order_items WHERE order_id % 10 = 0`,
		`DELETE FROM shop.orders WHERE id % 10 = 0`,
		`UPDATE shop.products SET price = price + 1`)
	after := query1(t, src, "shop", stateSQL)
	if after == before {
		t.Fatal("the change did not change the fingerprint")
	}
	if code, _, errOut := w.backup(t, "--db", src.ConnString("shop"), "--name", "shop"); code != 0 {
		t.Fatalf("second backup: exit %d\n%s", code, errOut)
	}

	restore := func(args ...string) (int, string, string) {
		return run(t, append([]string{"--catalog", w.catalog, "restore"}, args...)...)
	}
	t.Run("as of the first backup", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE restored_then`)
		code, out, errOut := restore("--name", "shop", "--as-of", first.StartedAt.Format(time.RFC3339), "--target", src.URL("restored_then", "", ""))
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if !strings.Contains(out, first.ID) {
			t.Errorf("restored another backup than %s:\n%s", first.ID, out)
		}
		if got := query1(t, src, "restored_then", stateSQL); got != before {
			t.Errorf("restored state %s, want the earlier %s", got, before)
		}
	})
	t.Run("as of now takes the second", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE restored_now`)
		code, _, errOut := restore("--name", "shop", "--target", src.URL("restored_now", "", ""))
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "restored_now", stateSQL); got != after {
			t.Errorf("restored state %s, want the later %s", got, after)
		}
	})
	t.Run("before the first backup", func(t *testing.T) {
		code, _, errOut := restore("--name", "shop", "--as-of", "2020-01-01", "--target", src.URL("postgres", "", ""))
		if code != exitFailure || !strings.Contains(errOut, "the oldest proven one is "+first.ID) {
			t.Errorf("exit %d, want 1 naming the oldest proven backup:\n%s", code, errOut)
		}
	})
	t.Run("never over its own source", func(t *testing.T) {
		code, _, errOut := restore("--id", first.ID, "--target", src.URL("shop", "", ""))
		if code != exitFailure || !strings.Contains(errOut, "the database this backup was taken from") || !strings.Contains(errOut, "--force") {
			t.Errorf("exit %d:\n%s", code, errOut)
		}
		if got := query1(t, src, "shop", stateSQL); got != after {
			t.Errorf("the source changed")
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE dry`)
		code, out, errOut := restore("--id", first.ID, "--target", src.URL("dry", "", ""), "--dry-run")
		if code != 0 || !strings.Contains(out, "would restore") || !strings.Contains(out, "TABLE DATA") || !strings.Contains(out, "nothing was changed") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		if n := query1(t, src, "dry", `SELECT count(*)::text FROM pg_class WHERE relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = 'shop')`); n != "0" {
			t.Errorf("dry run created %s relations", n)
		}
	})
	t.Run("a partitioned table brings its partitions", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE parted`)
		code, out, errOut := restore("--id", first.ID, "--target", src.URL("parted", "", ""), "--table", "analytics.page_views")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		rows := `SELECT count(*)::text FROM analytics.page_views`
		if got, want := query1(t, src, "parted", rows), query1(t, src, "shop", rows); got != want || got == "0" {
			t.Errorf("page_views restored with %s rows, the source has %s", got, want)
		}
		parts := `SELECT count(*)::text FROM pg_inherits WHERE inhparent = 'analytics.page_views'::regclass`
		if got, want := query1(t, src, "parted", parts), query1(t, src, "shop", parts); got != want {
			t.Errorf("%s partitions attached, the source has %s", got, want)
		}
		if strings.Contains(out, "note") {
			t.Errorf("a note that no rows were restored:\n%s", out)
		}
	})
	t.Run("a failed parallel restore says the target was left partly written", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE partial`)
		exec1(t, src, "partial", `CREATE SCHEMA shop`, `CREATE TABLE shop.products (id int)`) // in the way
		code, out, errOut := restore("--id", first.ID, "--target", src.URL("partial", "", ""), "--jobs", "2")
		if code == 0 || !strings.Contains(errOut, "left partly written") || !strings.Contains(errOut, "hint: fix the cause, then restore again with --clean") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("one table", func(t *testing.T) {
		exec1(t, src, "postgres", `CREATE DATABASE one_table`)
		code, out, errOut := restore("--id", first.ID, "--target", src.URL("one_table", "", ""), "--table", "shop.orders")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if n := query1(t, src, "one_table", `SELECT count(*)::text FROM shop.orders`); n != "30000" {
			t.Errorf("orders restored %s rows, want 30000", n)
		}
		idx := `SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'shop' AND tablename = 'orders'`
		if got, want := query1(t, src, "one_table", idx), query1(t, src, "shop", idx); got != want || got == "0" {
			t.Errorf("orders has %s indexes, source %s", got, want)
		}
		if n := query1(t, src, "one_table", `SELECT count(*)::text FROM pg_tables WHERE schemaname = 'shop'`); n != "1" {
			t.Errorf("%s tables restored, want only orders", n)
		}
		if !strings.Contains(out, "skipped") || !strings.Contains(out, "shop.customers") {
			t.Errorf("the foreign key to customers is not reported as skipped:\n%s", out)
		}
		code, _, errOut = restore("--id", first.ID, "--target", src.URL("one_table", "", ""), "--table", "orders", "--dry-run")
		if code != exitFailure || !strings.Contains(errOut, "shop.orders") {
			t.Errorf("an unqualified name not in public should suggest shop.orders: exit %d\n%s", code, errOut)
		}
	})
	t.Run("restores are in the chain", func(t *testing.T) {
		c, err := catalog.Open(w.catalog, catalog.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		n := 0
		c.Events(1, func(ev catalog.Event) error {
			if ev.Kind == catalog.KindRestored {
				n++
			}
			return nil
		})
		if n != 4 { // as of then, now, one partitioned table, one table
			t.Errorf("%d restored events, want 4", n)
		}
		if rep, err := c.VerifyChain(); err != nil || !rep.OK() {
			t.Errorf("chain: %v %v", err, rep.Broken)
		}
	})
}

func TestTamperingIsDetected(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	if code, out, _ := run(t, "--catalog", w.catalog, "catalog", "verify", "--archives"); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("fresh catalog does not verify: exit %d\n%s", code, out)
	}
	// One flipped byte in the archive.
	data, _ := os.ReadFile(rec.Archive.Path)
	data[len(data)/2] ^= 0x20
	os.WriteFile(rec.Archive.Path, data, 0o600)

	exec1(t, src, "postgres", `CREATE DATABASE target`)
	code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.URL("target", "", ""))
	if code != exitProofFailed || !strings.Contains(errOut, "digest does not match") {
		t.Errorf("restore of a tampered archive: exit %d\n%s", code, errOut)
	}
	if n := query1(t, src, "target", `SELECT count(*)::text FROM pg_namespace WHERE nspname = 'shop'`); n != "0" {
		t.Error("restore wrote to the target before refusing")
	}
	code, out, _ := run(t, "--catalog", w.catalog, "verify", "--hash-only", rec.ID)
	if code != exitProofFailed || !strings.Contains(out, "failed") {
		t.Errorf("verify of a tampered archive: exit %d\n%s", code, out)
	}
	_, out, _ = run(t, "--catalog", w.catalog, "--json", "show", rec.ID)
	if after := decodeRecord(t, out); after.Status != catalog.StatusFailed || len(after.Proofs) != 2 {
		t.Errorf("after a failed verify: status %s, %d proofs", after.Status, len(after.Proofs))
	}
	code, _, _ = run(t, "--catalog", w.catalog, "catalog", "verify", "--archives")
	if code != exitProofFailed {
		t.Errorf("catalog verify --archives: exit %d, want 3", code)
	}

	// A record edited behind pgattest's back: one byte of its JSON.
	db, err := bolt.Open(w.catalog, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("backups"))
		v := append([]byte(nil), b.Get([]byte(rec.ID))...)
		i := strings.Index(string(v), `"rows":`) + len(`"rows":`)
		v[i] = '9' // the proof now claims another row count
		return b.Put([]byte(rec.ID), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "--catalog", w.catalog, "catalog", "verify")
	if code != exitProofFailed || !strings.Contains(errOut, "record "+rec.ID+" does not match event") {
		t.Errorf("edited record: exit %d\n%s%s", code, out, errOut)
	}
}
