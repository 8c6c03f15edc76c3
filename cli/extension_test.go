package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// fakeExtension is an extension of plain SQL: a domain, a function and a
// configuration table (whose rows pg_dump saves, in an entry of their own
// with no entry for the table). The source Postgres has it; the installed
// one, which proves, does not.
var fakeExtension = map[string]string{
	"pgattest_fakext.control": "comment = 'pgattest test extension'\ndefault_version = '1.0'\nrelocatable = true\n",
	"pgattest_fakext--1.0.sql": `CREATE DOMAIN positive_amount AS numeric CHECK (VALUE >= 0);
CREATE FUNCTION doubled(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE TABLE fake_settings (k text PRIMARY KEY, v text);
SELECT pg_catalog.pg_extension_config_dump('fake_settings', '');
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
		`INSERT INTO public.fake_settings VALUES ('currency', 'EUR')`,
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
	if rec.Status != catalog.StatusVerified || len(p.Skipped) != 2 {
		t.Fatalf("status %s, skipped %q", rec.Status, p.Skipped)
	}
	if want := "TABLE DATA public.fake_settings: its table is in no entry of the archive: an extension's configuration table, of an extension left out (pgattest_fakext)"; p.Skipped[1] != want {
		t.Errorf("skipped %q, want the configuration table's rows left out with the extension: %q", p.Skipped[1], want)
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

// requireExtensions fails the test under PGATTEST_REQUIRE_PG=1 (skips it
// otherwise) when the installed Postgres lacks one of the extensions;
// pkg names the package that brings them (.ci/ensure-deps installs it).
func requireExtensions(t *testing.T, pkg string, names ...string) testenv.Toolchain {
	t.Helper()
	tc := pgtest.Require(t, testenv.Want{Tools: append([]string{"pg_config"}, testenv.ServerTools...)})
	out, err := exec.Command(tc.Path("pg_config"), "--sharedir").Output()
	if err != nil {
		t.Fatalf("pg_config --sharedir: %v", err)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "extension", n+".control")); err != nil {
			msg := fmt.Sprintf("extension %s is not installed: install %s", n, strings.ReplaceAll(pkg, "N", strconv.Itoa(tc.Version.Major)))
			if os.Getenv(pgtest.RequirePGEnv) == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return tc
}

// plainDump is pg_dump's SQL of a database, without the per-run key of
// \restrict (pg_dump 17.6, 16.10, 15.14 and later): two dumps of the same
// contents are equal.
func plainDump(t *testing.T, tc testenv.Toolchain, c *testenv.Cluster, db string) string {
	t.Helper()
	cmd := exec.Command(tc.Path("pg_dump"), "--no-password", "-d", c.ConnString(db))
	cmd.Env = []string{"LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump %s: %v", db, err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, `\restrict `) && !strings.HasPrefix(l, `\unrestrict `) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// provenAndRestoredIdentically backs db up, wants it verified with every
// table in rows counted as given, restores it into a new database of the
// same server and wants pg_dump of both to be equal, also after a restore
// --clean over that copy.
func provenAndRestoredIdentically(t *testing.T, tc testenv.Toolchain, src *testenv.Cluster, db string, rows map[string]int64) *catalog.Record {
	t.Helper()
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString(db), "--name", db)
	p := rec.LastProof()
	if rec.Status != catalog.StatusVerified || p == nil || p.Status != catalog.ProofPassed {
		t.Fatalf("status %s, proof %+v", rec.Status, p)
	}
	counted := map[string]int64{}
	for _, tb := range p.Tables {
		counted[tb.Schema+"."+tb.Name] = tb.Rows
	}
	for name, want := range rows {
		if got, ok := counted[name]; !ok || got != want {
			t.Errorf("the proof counted %s: %d rows (present: %v), want %d", name, got, ok, want)
		}
	}
	if len(p.Skipped) > 0 {
		t.Errorf("the proof left out %q", p.Skipped)
	}
	exec1(t, src, "postgres", "CREATE DATABASE "+db+"_copy")
	code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", src.ConnString(db+"_copy"))
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	if a, b := plainDump(t, tc, src, db), plainDump(t, tc, src, db+"_copy"); a != b {
		t.Errorf("pg_dump of the restored copy differs from the source's:\n%s", firstDifference(a, b))
	}
	// Again over the copy, dropping what is there first.
	code, _, errOut = run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--clean", "--target", src.ConnString(db+"_copy"))
	if code != 0 {
		t.Fatalf("restore --clean: exit %d\n%s", code, errOut)
	}
	if a, b := plainDump(t, tc, src, db), plainDump(t, tc, src, db+"_copy"); a != b {
		t.Errorf("after restore --clean, pg_dump of the copy differs from the source's:\n%s", firstDifference(a, b))
	}
	return rec
}

func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  source: %q\n  copy:   %q", i+1, x, y)
		}
	}
	return ""
}

// TestPostGISProvenAndRestored: a PostGIS source with topology (a
// topology made, a TopoGeometry column filled), raster, geometry and
// geography columns, a GiST index and an SRID of its own in
// spatial_ref_sys is verified (the extensions' configuration tables
// restored and counted: their rows are the archive's, not the local
// installation's), and restores identically.
func TestPostGISProvenAndRestored(t *testing.T) {
	tc := requireExtensions(t, "postgresql-N-postgis-3", "postgis", "postgis_topology", "postgis_raster")
	src := pgtest.New(t, testenv.Options{Toolchain: tc})
	exec1(t, src, "postgres", "CREATE DATABASE gis")
	exec1(t, src, "gis",
		`CREATE EXTENSION postgis`, `CREATE EXTENSION postgis_topology`, `CREATE EXTENSION postgis_raster`,
		`CREATE TABLE pts (id int PRIMARY KEY, g geometry(Point, 4326), gg geography(Point, 4326))`,
		`INSERT INTO pts SELECT g, ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326), ST_MakePoint(g % 180, g % 90)::geography FROM generate_series(1, 100) g`,
		`CREATE INDEX pts_g ON pts USING gist (g)`,
		`CREATE INDEX pts_gg ON pts USING gist (gg)`,
		`INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, proj4text, srtext)
		 VALUES (990001, 'pgattest', 1, '+proj=longlat +datum=WGS84 +no_defs', 'GEOGCS["pgattest"]')`,
		`CREATE TABLE own (id int PRIMARY KEY, g geometry(Point, 990001))`,
		`INSERT INTO own VALUES (1, ST_SetSRID(ST_MakePoint(1, 2), 990001))`,
		`SELECT topology.CreateTopology('city', 4326)`,
		`CREATE TABLE roads (id serial PRIMARY KEY, name text)`,
		`SELECT topology.AddTopoGeometryColumn('city', 'public', 'roads', 'topo', 'LINE')`,
		`INSERT INTO roads (name, topo) VALUES ('main', topology.toTopoGeom(ST_GeomFromText('LINESTRING(0 0, 1 1, 2 1)', 4326), 'city', 1))`,
		`CREATE TABLE tiles (id int PRIMARY KEY, r raster)`,
		`INSERT INTO tiles VALUES (1, ST_AddBand(ST_MakeEmptyRaster(4, 4, 0, 0, 1, -1, 0, 0, 4326), '8BUI'::text, 7))`,
	)
	rows := map[string]int64{"public.spatial_ref_sys": 1} // the source's own SRID, not the installation's
	for _, tb := range []string{"public.pts", "public.own", "public.roads", "public.tiles", "topology.topology", "topology.layer",
		"city.edge_data", "city.node", "city.face", "city.relation"} {
		n, _ := strconv.ParseInt(query1(t, src, "gis", "SELECT count(*)::text FROM "+tb), 10, 64)
		rows[tb] = n
	}
	if rows["city.edge_data"] == 0 || rows["topology.layer"] != 1 {
		t.Fatalf("the source's topology is empty: %v", rows)
	}
	provenAndRestoredIdentically(t, tc, src, "gis", rows)
}

// TestContribExtensionsProvenAndRestored: a source with the contrib
// extensions users run, each used by a column, an index, a default, a
// constraint or a view, is verified and restores identically.
func TestContribExtensionsProvenAndRestored(t *testing.T) {
	exts := []string{"hstore", "citext", "pg_trgm", "pgcrypto", "uuid-ossp", "ltree", "cube", "earthdistance",
		"btree_gist", "btree_gin", "intarray", "unaccent", "fuzzystrmatch", "isn", "seg", "tablefunc", "pg_stat_statements"}
	tc := requireExtensions(t, "postgresql-contrib (part of postgresql-N on Debian)", exts...)
	src := pgtest.New(t, testenv.Options{Toolchain: tc})
	exec1(t, src, "postgres", "CREATE DATABASE contrib")
	var sqls []string
	for _, x := range exts {
		sqls = append(sqls, "CREATE EXTENSION "+pgx.Identifier{x}.Sanitize())
	}
	sqls = append(sqls,
		`CREATE TABLE things (
		   id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
		   token text NOT NULL DEFAULT encode(gen_random_bytes(8), 'hex'),
		   attrs hstore, email citext UNIQUE, name text, path ltree, box cube, tags int[],
		   book isbn13, span seg, secret bytea, during tstzrange, place earth,
		   CHECK (soundex(name) <> '') , CHECK (levenshtein(name, 'x') >= 0))`,
		`INSERT INTO things (attrs, email, name, path, box, tags, book, span, secret, during, place)
		 SELECT hstore('k', g::text), 'User' || g || '@Example.org', unaccent('Hélène ' || g), ('top.mid.n' || g)::ltree,
		        cube(ARRAY[g, g + 1]), ARRAY[g, g * 2], '978-0-393-04002-9'::isbn13, (g || ' .. ' || g + 1)::seg,
		        digest('x' || g, 'sha256'), tstzrange('2026-01-01'::timestamptz + g * interval '1 day', '2026-01-02'::timestamptz + g * interval '1 day'),
		        ll_to_earth(g % 90, g % 180)
		 FROM generate_series(1, 300) g`,
		`CREATE INDEX things_attrs ON things USING gin (attrs)`,
		`CREATE INDEX things_path ON things USING gist (path)`,
		`CREATE INDEX things_name_trgm ON things USING gin (name gin_trgm_ops)`,
		`CREATE INDEX things_box ON things USING gist (box)`,
		`CREATE INDEX things_tags ON things USING gin (tags gin__int_ops)`,
		`CREATE INDEX things_span ON things USING gist (span)`,
		`CREATE INDEX things_email_gin ON things USING gin (email)`,
		`CREATE INDEX things_place ON things USING gist (place)`,
		`CREATE TABLE bookings (room int, during tstzrange, EXCLUDE USING gist (room WITH =, during WITH &&))`,
		`INSERT INTO bookings SELECT g % 10, tstzrange('2026-01-01'::timestamptz + g * interval '1 hour', '2026-01-01'::timestamptz + (g + 1) * interval '1 hour') FROM generate_series(1, 200) g`,
		`CREATE VIEW pivot AS SELECT * FROM crosstab('SELECT 1::text, 2::text, 3::text') AS t(a text, b text)`,
		`CREATE VIEW near AS SELECT earth_distance(ll_to_earth(1, 2), ll_to_earth(3, 4)) AS metres, similarity(name, 'Helene') AS sim FROM things`,
	)
	exec1(t, src, "contrib", sqls...)
	provenAndRestoredIdentically(t, tc, src, "contrib", map[string]int64{"public.things": 300, "public.bookings": 200})
}
