package cli

import (
	"strings"
	"testing"
)

// TestRestoreCleanPartitioned: restore --clean over a copy of a source
// with partitioned tables (the sample's range-partitioned page views, and
// a list-partitioned table with a primary key) works, again and again, in
// one job from a custom-format archive and in parallel from a
// directory-format one; --clean --jobs of a custom-format archive is
// refused before anything is dropped, with a hint that works.
func TestRestoreCleanPartitioned(t *testing.T) {
	src := shop(t)
	exec1(t, src, "shop",
		`CREATE TABLE public.orders (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE public.orders_eu PARTITION OF public.orders FOR VALUES IN ('eu')`,
		`CREATE TABLE public.orders_rest PARTITION OF public.orders DEFAULT`,
		`CREATE INDEX orders_region ON public.orders (region)`,
		`INSERT INTO public.orders SELECT g, (ARRAY['eu', 'us', 'ap'])[g % 3 + 1] FROM generate_series(1, 300) g`)
	exec1(t, src, "postgres", "CREATE DATABASE shop_copy")
	w := newWorkdir(t)
	custom := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	directory := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shopdir", "--jobs", "2")
	const state = `SELECT (SELECT count(*) FROM public.orders) || '/' || (SELECT count(*) FROM public.orders_eu) || '/' ||
		(SELECT count(*) FROM analytics.page_views) || '/' || (SELECT count(*) FROM pg_indexes WHERE schemaname IN ('public', 'analytics'))`
	want := query1(t, src, "shop", state)
	restore := func(id string, extra ...string) (int, string) {
		t.Helper()
		code, _, errOut := run(t, append([]string{"--catalog", w.catalog, "restore", "--id", id, "--target", src.ConnString("shop_copy")}, extra...)...)
		return code, errOut
	}
	if code, errOut := restore(custom.ID); code != 0 {
		t.Fatalf("first restore: exit %d\n%s", code, errOut)
	}
	for i, run := range []struct {
		id    string
		extra []string
	}{
		{custom.ID, []string{"--clean"}}, {custom.ID, []string{"--clean"}},
		{directory.ID, []string{"--clean", "--jobs", "2"}}, {directory.ID, []string{"--clean", "--jobs", "2"}},
	} {
		if code, errOut := restore(run.id, run.extra...); code != 0 {
			t.Fatalf("restore %d %v: exit %d\n%s", i+1, run.extra, code, errOut)
		}
		if got := query1(t, src, "shop_copy", state); got != want {
			t.Fatalf("after restore %d %v: %s, want %s as in the source", i+1, run.extra, got, want)
		}
	}
	exec1(t, src, "shop_copy", `INSERT INTO public.orders VALUES (1000, 'eu')`)
	code, errOut := restore(custom.ID, "--clean", "--jobs", "2")
	if code != exitUsage || !strings.Contains(errOut, "cannot run in parallel") || !strings.Contains(errOut, "hint: drop --jobs") {
		t.Fatalf("--clean --jobs 2 of a custom-format archive: exit %d, want 2 with a hint\n%s", code, errOut)
	}
	if got := query1(t, src, "shop_copy", `SELECT count(*)::text FROM public.orders`); got != "301" {
		t.Errorf("the refused restore changed the target: %s orders, want 301", got)
	}
}
