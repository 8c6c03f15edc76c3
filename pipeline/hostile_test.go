package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// A hostile source: whoever can write to the database decides what its
// dump runs when the proof restores it. Each vector below plants a function
// that tries to run a shell command on the machine that restores it
// (COPY … TO PROGRAM, which needs a superuser, writing a marker file) and
// makes the restore call it. Two shapes of source: one whose superuser is
// not called postgres and whose "postgres" is an ordinary role (RDS, Cloud
// SQL, Supabase), and a stock one whose superuser is postgres.

// hostileShape is who the source's superuser and writer are.
type hostileShape struct {
	name      string
	superuser string // the source's real superuser
	writer    string // the ordinary role that owns the database and plants the code
}

var hostileShapes = []hostileShape{
	{"superuser rdsadmin, ordinary postgres", "rdsadmin", "postgres"},
	{"superuser postgres, ordinary app", "postgres", "app"},
}

// hostileVector is one way to make a restore run the function: the SQL the
// writer runs (after pwn exists), and what an honest proof says about it.
type hostileVector struct {
	name  string
	setup string // run as the writer; MARKERS is the marker folder
	// asSuperuser, when set, runs as the source's superuser after setup
	// (what an ordinary role cannot create: an event trigger, a C function).
	asSuperuser string
	rows        map[string]int64 // tables the proof must have restored, with their rows
	skipped     []string         // words every one of which a line of the proof's skipped list holds
	needs       string           // a package the vector needs ("plperl")
}

var hostileVectors = []hostileVector{
	{name: "materialized view",
		setup: `CREATE MATERIALIZED VIEW public.mv AS SELECT g AS id, public.pwn('matview', g) AS ok FROM generate_series(1, 3) g`,
		rows:  map[string]int64{"public.mv": 3}},
	{name: "check constraint on a table with rows",
		setup: `CREATE TABLE public.chk (id int CHECK (public.pwn('check', id))); INSERT INTO public.chk SELECT generate_series(1, 3)`,
		rows:  map[string]int64{"public.chk": 3}},
	{name: "generated column",
		setup: `CREATE TABLE public.gen (id int, ok boolean GENERATED ALWAYS AS (public.pwn('generated', id)) STORED);
			INSERT INTO public.gen (id) SELECT generate_series(1, 4)`,
		rows: map[string]int64{"public.gen": 4}},
	{name: "domain check",
		setup: `CREATE DOMAIN public.d AS int CHECK (public.pwn('domain', VALUE));
			CREATE TABLE public.dom (v public.d); INSERT INTO public.dom SELECT generate_series(1, 5)`,
		rows: map[string]int64{"public.dom": 5}},
	{name: "index expression",
		setup: `CREATE TABLE public.idx (id int); INSERT INTO public.idx SELECT generate_series(1, 6);
			CREATE INDEX idx_pwn ON public.idx ((public.pwn('index', id)))`,
		rows: map[string]int64{"public.idx": 6}},
	{name: "event trigger",
		// Fires on the DDL that follows it in a restore: the refresh of a
		// materialized view, which pg_dump puts after event triggers.
		setup: `CREATE FUNCTION public.et_pwn() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN PERFORM public.pwn('event_trigger', 1); END $f$;
			CREATE MATERIALIZED VIEW public.after AS SELECT 1 AS one`,
		// Supabase's shape: created by a superuser, owned by an ordinary role.
		asSuperuser: `ALTER ROLE WRITER SUPERUSER; SET ROLE WRITER;
			CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION public.et_pwn();
			COMMENT ON EVENT TRIGGER et IS 'runs on every DDL'; RESET ROLE; ALTER ROLE WRITER NOSUPERUSER`,
		rows:    map[string]int64{"public.after": 1},
		skipped: []string{"EVENT TRIGGER et", "only a superuser can create an event trigger", "COMMENT EVENT TRIGGER et"}},
	{name: "function in C",
		asSuperuser: `CREATE FUNCTION public.c_handler() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c;
			ALTER FUNCTION public.c_handler() OWNER TO WRITER; COMMENT ON FUNCTION public.c_handler() IS 'in C'`,
		setup:   `CREATE TABLE public.plain (id int); INSERT INTO public.plain VALUES (1), (2)`,
		rows:    map[string]int64{"public.plain": 2},
		skipped: []string{"FUNCTION public.c_handler()", "a function in C: only a superuser can create one", "COMMENT public.FUNCTION c_handler()"}},
	{name: "function in an untrusted language", needs: "plperl",
		asSuperuser: `CREATE EXTENSION plperlu;
			CREATE FUNCTION public.perl_pwn() RETURNS int LANGUAGE plperlu AS $f$ system("id > MARKERS/plperlu"); return 1; $f$;
			ALTER FUNCTION public.perl_pwn() OWNER TO WRITER;
			CREATE VIEW public.calls_perl AS SELECT public.perl_pwn() AS x; ALTER VIEW public.calls_perl OWNER TO WRITER`,
		setup:   `CREATE TABLE public.plain (id int); INSERT INTO public.plain VALUES (1)`,
		rows:    map[string]int64{"public.plain": 1},
		skipped: []string{"extension plperlu", "untrusted language plperlu", "FUNCTION public.perl_pwn()", "VIEW public.calls_perl"}},
	{name: "database defaults set by the archive's code",
		// A CHECK that, in the proof, makes the database's sessions run as
		// the writer: the rows must still be counted whole, by the
		// superuser, past the policy that hides them from the writer.
		setup: `CREATE TABLE public.hidden (id int); INSERT INTO public.hidden SELECT generate_series(1, 7);
			ALTER TABLE public.hidden ENABLE ROW LEVEL SECURITY; ALTER TABLE public.hidden FORCE ROW LEVEL SECURITY;
			CREATE POLICY nothing ON public.hidden USING (false);
			CREATE FUNCTION public.set_defaults(x int) RETURNS boolean LANGUAGE plpgsql AS $f$
			BEGIN
			  IF current_database() = 'pgattest_proof' THEN
			    EXECUTE format('ALTER DATABASE %I SET role = %L', current_database(), session_user);
			    EXECUTE format('ALTER DATABASE %I SET statement_timeout = 1', current_database());
			  END IF;
			  RETURN true;
			END $f$;
			CREATE TABLE public.setter (id int CHECK (public.set_defaults(id))); INSERT INTO public.setter VALUES (1)`,
		rows: map[string]int64{"public.hidden": 7, "public.setter": 1}},
	{name: "large object owned by the writer",
		setup: `SELECT lo_from_bytea(0, 'hello'); CREATE TABLE public.blob_refs (id int); INSERT INTO public.blob_refs VALUES (1)`,
		rows:  map[string]int64{"public.blob_refs": 1}},
}

// pwn is the writer's function: it tries to run a command on the host that
// evaluates it, writing MARKERS/tag, and quietly does nothing where it may
// not (a role that is not a superuser). pwn claims to be immutable, so that
// generated columns and index expressions take it; the work is done by a
// volatile function it calls (a non-volatile function may not COPY).
const pwn = `CREATE FUNCTION public.pwn_exec(tag text) RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  BEGIN
    EXECUTE format('COPY (SELECT current_user) TO PROGRAM %L', 'id > MARKERS/' || tag);
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  BEGIN
    EXECUTE format('COPY (SELECT current_user) TO %L', 'MARKERS/' || tag || '.file');
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
END $f$;
CREATE FUNCTION public.pwn(tag text, x anyelement) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  PERFORM public.pwn_exec(tag);
  RETURN true;
END $f$`

// markerDir makes a folder any server user could write a marker file into,
// should it run the command a hostile archive holds, and a check that none
// did (each marker found is an error, then removed).
func markerDir(t *testing.T) (string, func(t *testing.T, when string)) {
	markers, err := os.MkdirTemp("", "pgattest-markers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(markers) })
	os.Chmod(markers, 0o1777)
	return markers, func(t *testing.T, when string) {
		t.Helper()
		got, _ := os.ReadDir(markers)
		for _, m := range got {
			b, _ := os.ReadFile(filepath.Join(markers, m.Name()))
			t.Errorf("%s: marker %s appeared, holding %q: the archive's code ran with privileges", when, m.Name(), b)
			os.Remove(filepath.Join(markers, m.Name()))
		}
	}
}

func TestHostileArchiveRunsNothingAsSuperuser(t *testing.T) {
	markers, noMarker := markerDir(t)
	plperl := havePlperl(t)
	// The stock shape's backups are encrypted, so their re-proof streams
	// decrypted into a cluster of its own (pipeline's reproveStream); the
	// other's stream as they are: every re-proof reads the archive once,
	// checked segment by segment.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := seal.LoadIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	for si, shape := range hostileShapes {
		t.Run(shape.name, func(t *testing.T) {
			src := pgtest.New(t, testenv.Options{Superuser: shape.superuser})
			su := func(db, sql string) {
				t.Helper()
				execAs(t, src.ConnString(db), strings.NewReplacer("WRITER", pgx.Identifier{shape.writer}.Sanitize(), "MARKERS", markers).Replace(sql))
			}
			su("postgres", fmt.Sprintf(`CREATE ROLE %s LOGIN; CREATE ROLE reader LOGIN`, pgx.Identifier{shape.writer}.Sanitize()))
			o := backupOptions(t, "")
			if si == 1 {
				o.EncryptTo = []string{id.Recipient().String()}
			}
			for i, v := range hostileVectors {
				t.Run(v.name, func(t *testing.T) {
					if v.needs == "plperl" && !plperl {
						return // havePlperl has failed the test under PGATTEST_REQUIRE_PG=1
					}
					db := fmt.Sprintf("vector%d", i)
					su("postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, pgx.Identifier{shape.writer}.Sanitize()))
					writer := func(sql string) {
						t.Helper()
						execAs(t, src.ConnStringAs(db, shape.writer), strings.ReplaceAll(sql, "MARKERS", markers))
					}
					writer(pwn)
					writer(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader`)
					if v.setup != "" {
						writer(v.setup)
					}
					if v.asSuperuser != "" {
						su(db, v.asSuperuser)
					}
					noMarker(t, "setting up the source") // the test's own premise

					o.DB, o.Name = src.ConnString(db), db
					res, err := pipeline.Backup(context.Background(), o)
					noMarker(t, "after the backup")
					if err != nil {
						t.Fatalf("backup: %v", err)
					}
					rec := res.Record
					p := rec.LastProof()
					if rec.Status != catalog.StatusVerified || p.Status != catalog.ProofPassed {
						t.Fatalf("status %s, proof %s: %s", rec.Status, p.Status, p.Error)
					}
					counted := map[string]int64{}
					for _, tb := range p.Tables {
						counted[tb.Schema+"."+tb.Name] = tb.Rows
					}
					for name, want := range v.rows {
						if got, ok := counted[name]; !ok || got != want {
							t.Errorf("proof restored %s with %d rows (present %v), want %d", name, got, ok, want)
						}
					}
					if !someLineHolds(p.Skipped, v.skipped) {
						t.Errorf("skipped %q: want a line naming %q", p.Skipped, v.skipped)
					}
					if len(v.skipped) == 0 && len(p.Skipped) > 0 {
						t.Errorf("skipped %q: want nothing left out", p.Skipped)
					}
					iso := p.Isolation
					if iso == nil || !strings.HasPrefix(iso.RestoreRole, "pgattest_restore_") || iso.Network == "" {
						t.Errorf("the proof does not say how it was isolated: %+v", iso)
					}
					if os.Geteuid() == 0 && iso != nil && (iso.ServerUser != testenv.ServerUserName || !strings.HasPrefix(iso.Network, "none")) {
						t.Errorf("as root the proof's server must run as %s without network: %+v", testenv.ServerUserName, iso)
					}
					// pgattest verify runs the archive again: as unprivileged.
					again, err := pipeline.Reprove(context.Background(), rec, pipeline.ReproveOptions{PGBin: o.PGBin, Identities: ids})
					noMarker(t, "after the re-proof")
					if err != nil {
						t.Fatalf("re-proof: %v", err)
					}
					if again.Status != catalog.ProofPassed || !again.Streamed || again.Rows != p.Rows ||
						again.Isolation == nil || !strings.HasPrefix(again.Isolation.RestoreRole, "pgattest_restore_") {
						t.Errorf("re-proof %s (streamed %v, %d rows, isolation %+v), want passed as the backup's proof (%d rows)",
							again.Status, again.Streamed, again.Rows, again.Isolation, p.Rows)
					}
				})
			}
		})
	}
}

func someLineHolds(lines, words []string) bool {
	if len(words) == 0 {
		return true
	}
	for _, l := range lines {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return true
		}
	}
	return false
}

func execAs(t *testing.T, connString, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := testenv.ConnectUTF8(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// havePlperl reports whether the server can create plperlu (Debian's
// postgresql-plperl-N, which .ci/ensure-deps installs); missing, it fails
// the test under PGATTEST_REQUIRE_PG=1.
func havePlperl(t *testing.T) bool {
	tc := pgtest.Require(t, testenv.Want{Tools: append([]string{"pg_config"}, testenv.ServerTools...)})
	out, err := exec.Command(tc.Path("pg_config"), "--sharedir").Output()
	share := strings.TrimSpace(string(out))
	if err == nil {
		if _, err = os.Stat(filepath.Join(share, "extension", "plperlu.control")); err == nil {
			return true
		}
	}
	if os.Getenv(pgtest.RequirePGEnv) == "1" {
		t.Errorf("plperlu is not installed (%v): install postgresql-plperl-%d", err, tc.Version.Major)
	} else {
		t.Logf("plperlu is not installed: its vector is not tested (install postgresql-plperl-%d)", tc.Version.Major)
	}
	return false
}

// configExtension is an extension whose configuration table runs its rows:
// a trigger of the extension's own (the local installation's code, as
// every extension's) executes each inserted row's command. pg_dump saves
// the rows past the two the script inserts, and the sequence's value.
var configExtension = map[string]string{
	"pgattest_cfgext.control": "comment = 'pgattest test extension: a configuration table that runs its rows'\ndefault_version = '1.0'\nrelocatable = false\nschema = cfgext\n",
	"pgattest_cfgext--1.0.sql": `CREATE TABLE cfgext.settings (id serial PRIMARY KEY, cmd text NOT NULL);
CREATE FUNCTION cfgext.settings_run() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  BEGIN
    EXECUTE NEW.cmd;
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  RETURN NEW;
END $f$;
CREATE TRIGGER settings_run BEFORE INSERT ON cfgext.settings FOR EACH ROW EXECUTE FUNCTION cfgext.settings_run();
INSERT INTO cfgext.settings (cmd) VALUES ('SELECT 1'), ('SELECT 2');
SELECT pg_catalog.pg_extension_config_dump('cfgext.settings', 'WHERE id > 2');
SELECT pg_catalog.pg_extension_config_dump('cfgext.settings_id_seq', '');
`,
}

// TestHostileExtensionConfigRows: the rows of an extension's configuration
// table restore in the proof (they are the archive's, the table the local
// installation's) as the restoring role, never as a superuser: rows whose
// insertion runs COPY … TO PROGRAM (through the extension's own trigger)
// write nothing on the host, the proof passes counting the archive's rows
// only, and the sequence's value restores too (the restoring role may set
// it, and nothing more).
func TestHostileExtensionConfigRows(t *testing.T) {
	tc := pgtest.NewExtensionToolchain(t, configExtension)
	markers, err := os.MkdirTemp("", "pgattest-markers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(markers) })
	os.Chmod(markers, 0o1777)
	src := pgtest.New(t, testenv.Options{Toolchain: tc})
	execAs(t, src.ConnString("postgres"), `CREATE ROLE app LOGIN`)
	execAs(t, src.ConnString("postgres"), `CREATE DATABASE cfg OWNER app`)
	execAs(t, src.ConnString("cfg"), strings.ReplaceAll(`CREATE EXTENSION pgattest_cfgext;
		SET session_replication_role = replica; -- the source's own insert runs nothing
		INSERT INTO cfgext.settings (cmd) VALUES
		  ('COPY (SELECT current_user) TO PROGRAM ''id > MARKERS/config-row'''),
		  ('COPY (SELECT current_user) TO ''MARKERS/config-row.file'''),
		  ('ALTER ROLE CURRENT_USER SUPERUSER');
		RESET session_replication_role;
		SELECT setval('cfgext.settings_id_seq', 40)`, "MARKERS", markers))
	execAs(t, src.ConnStringAs("cfg", "app"), `CREATE TABLE public.plain (id int); INSERT INTO public.plain VALUES (1), (2)`)

	o := backupOptions(t, src.ConnString("cfg"))
	o.Name, o.PGBin = "cfg", []string{tc.Dir}
	res, err := pipeline.Backup(context.Background(), o)
	if got, _ := os.ReadDir(markers); len(got) > 0 {
		t.Errorf("markers %v appeared: a configuration row ran as a superuser", got)
	}
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	p := res.Record.LastProof()
	if res.Record.Status != catalog.StatusVerified {
		t.Fatalf("status %s: %s", res.Record.Status, p.Error)
	}
	counted := map[string]int64{}
	for _, tb := range p.Tables {
		counted[tb.Schema+"."+tb.Name] = tb.Rows
	}
	if counted["cfgext.settings"] != 3 || counted["public.plain"] != 2 {
		t.Errorf("counted %v: want the archive's 3 configuration rows (not the installation's 2) and 2 plain rows", counted)
	}
	if !someLineHolds(p.Created, []string{"INSERT on the extensions' configuration table cfgext.settings (pgattest_cfgext)", "UPDATE (setval) on their sequence cfgext.settings_id_seq"}) {
		t.Errorf("created %q: want the grants on the configuration table and its sequence named", p.Created)
	}
	if len(p.Skipped) != 0 {
		t.Errorf("skipped %q: want nothing left out", p.Skipped)
	}
}
