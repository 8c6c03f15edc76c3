package verify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/testenv/pgtest"
)

// selectSQL makes the database of testdata/select.dump: a partitioned
// table with partitions (one of them partitioned too), an index on the
// parent (INDEX ATTACH entries), a table with a foreign key to another,
// a sequence behind a default.
const selectSQL = `
CREATE TABLE public.meas (city int NOT NULL, at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE public.meas_2026_01 PARTITION OF public.meas FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE public.meas_2026_02 PARTITION OF public.meas FOR VALUES FROM ('2026-02-01') TO ('2026-03-01') PARTITION BY LIST (city);
CREATE TABLE public.meas_2026_02_c1 PARTITION OF public.meas_2026_02 FOR VALUES IN (1);
CREATE TABLE public.meas_2026_02_c2 PARTITION OF public.meas_2026_02 FOR VALUES IN (2);
CREATE INDEX meas_at ON public.meas (at);
INSERT INTO public.meas SELECT 1 + g % 2, date '2026-01-01' + g % 50, g FROM generate_series(1, 100) g;
CREATE TABLE public.customers (id serial PRIMARY KEY, name text);
CREATE TABLE public.orders (id int PRIMARY KEY, customer int REFERENCES public.customers);
INSERT INTO public.customers (name) VALUES ('a'), ('b');
INSERT INTO public.orders VALUES (1, 1), (2, 2);
`

// selectArchive returns testdata/select.dump, made again from a real
// pg_dump with -update.
func selectArchive(t *testing.T) string {
	t.Helper()
	path := filepath.Join("testdata", "select.dump")
	if !*update {
		return path
	}
	c := pgtest.New(t)
	ctx := context.Background()
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE sel"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if conn, err = c.Connect(ctx, "sel"); err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, selectSQL); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(c.Toolchain.Path("pg_dump"), "-Fc", "-Z", "9", "-f", path, "--dbname="+c.ConnString("sel")).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	return path
}

// TestSelectTablesPartitioned: --table of a partitioned table brings every
// partition, sub-partitions included, with their data and their ATTACH
// entries; a table with a foreign key to a table not named keeps its data
// and leaves the key out, saying so.
func TestSelectTablesPartitioned(t *testing.T) {
	toc, err := ReadArchiveTOC(selectArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	sel, skipped, err := SelectTables(toc, []string{"public.meas"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range sel {
		got[e.Type+" "+e.Name] = true
	}
	for _, want := range []string{
		"TABLE meas", "TABLE meas_2026_01", "TABLE meas_2026_02", "TABLE meas_2026_02_c1", "TABLE meas_2026_02_c2",
		"TABLE DATA meas_2026_01", "TABLE DATA meas_2026_02_c1", "TABLE DATA meas_2026_02_c2",
		"TABLE ATTACH meas_2026_01", "TABLE ATTACH meas_2026_02", "TABLE ATTACH meas_2026_02_c1", "TABLE ATTACH meas_2026_02_c2",
		"INDEX meas_at",
	} {
		if !got[want] {
			t.Errorf("selection lacks %s", want)
		}
	}
	if got["TABLE customers"] || got["TABLE orders"] {
		t.Errorf("selection took tables not named: %v", got)
	}
	if len(skipped) > 0 {
		t.Errorf("skipped %q", skipped)
	}

	sel, skipped, err = SelectTables(toc, []string{"public.orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range sel {
		names = append(names, e.Type+" "+e.Name)
	}
	if s := strings.Join(names, ", "); !strings.Contains(s, "TABLE DATA orders") || strings.Contains(s, "TABLE customers") {
		t.Errorf("selection of orders: %s", s)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "needs table public.customers") {
		t.Errorf("skipped %q: want the foreign key to customers", skipped)
	}
	if _, _, err := SelectTables(toc, []string{"meas_2026"}, nil); err == nil {
		t.Error("a table the archive does not hold was found")
	}
	if _, err := os.Stat(selectArchive(t)); err != nil {
		t.Fatal(err)
	}
}
