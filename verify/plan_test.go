package verify

import (
	"reflect"
	"strings"
	"testing"
)

func ids(entries []Entry) []int {
	var out []int
	for _, e := range entries {
		out = append(out, e.DumpID)
	}
	return out
}

var stockLanguages = map[string]bool{"plpgsql": true, "sql": true, "c": false, "internal": false}

// Each kind an ordinary role cannot restore is left out with its reason,
// and with it every entry that needs it, directly or through others; what
// an ordinary role can restore stays.
func TestPlanRestoreSkipsWhatNeedsASuperuser(t *testing.T) {
	toc := &TOC{Entries: []Entry{
		{DumpID: 1, Type: "SCHEMA", Name: "app", Owner: "app"},
		{DumpID: 2, Type: "FUNCTION", Schema: "app", Name: "ok()", Defn: "CREATE FUNCTION app.ok() RETURNS integer\n    LANGUAGE plpgsql\n    AS $$ BEGIN RETURN 1; END $$;\n", Deps: []int{1}},
		{DumpID: 3, Type: "FUNCTION", Schema: "app", Name: "in_c()", Defn: "CREATE FUNCTION app.in_c() RETURNS language_handler\n    LANGUAGE c\n    AS '$libdir/plpgsql', 'plpgsql_call_handler';\n", Deps: []int{1}},
		{DumpID: 4, Type: "ACL", Schema: "app", Name: "FUNCTION in_c()", Deps: []int{3}},
		{DumpID: 5, Type: "VIEW", Schema: "app", Name: "v", Deps: []int{3}},
		{DumpID: 6, Type: "COMMENT", Schema: "app", Name: "VIEW v", Deps: []int{5}}, // through the view
		{DumpID: 7, Type: "FUNCTION", Schema: "app", Name: "perl()", Defn: "CREATE FUNCTION app.perl() RETURNS integer\n    LANGUAGE plperlu\n    AS $$ 1 $$;\n"},
		{DumpID: 8, Type: "FUNCTION", Schema: "app", Name: "js()", Defn: "CREATE FUNCTION app.js() RETURNS integer\n    LANGUAGE plv8\n    AS $$ 1 $$;\n"},
		{DumpID: 9, Type: "EVENT TRIGGER", Name: "log_ddl", Owner: "app", Defn: "CREATE EVENT TRIGGER log_ddl ON ddl_command_end\n   EXECUTE FUNCTION app.ok();\n", Deps: []int{2}},
		{DumpID: 10, Type: "COMMENT", Name: "EVENT TRIGGER log_ddl", Deps: []int{9}},
		{DumpID: 11, Type: "CAST", Name: "CAST (app.t AS text)", Defn: "CREATE CAST (app.t AS text) WITHOUT FUNCTION;\n"},
		{DumpID: 12, Type: "CAST", Name: "CAST (app.u AS text)", Defn: "CREATE CAST (app.u AS text) WITH INOUT;\n"},
		{DumpID: 13, Type: "TYPE", Schema: "app", Name: "base", Defn: "CREATE TYPE app.base (\n    INTERNALLENGTH = 4,\n    INPUT = app.base_in,\n    OUTPUT = app.base_out\n);\n"},
		{DumpID: 14, Type: "TYPE", Schema: "app", Name: "pair", Defn: "CREATE TYPE app.pair AS (\n\tinput integer,\n\toutput integer\n);\n"},
		{DumpID: 15, Type: "PUBLICATION", Name: "everything", Defn: "CREATE PUBLICATION everything FOR ALL TABLES WITH (publish = 'insert');\n"},
		{DumpID: 16, Type: "PUBLICATION", Name: "some", Defn: "CREATE PUBLICATION some WITH (publish = 'insert');\n"},
		{DumpID: 17, Type: "OPERATOR CLASS", Schema: "app", Name: "ops USING btree"},
		{DumpID: 18, Type: "INDEX", Schema: "app", Name: "t_idx", Deps: []int{17}},
		{DumpID: 19, Type: "SUBSCRIPTION", Name: "sub"},
		{DumpID: 20, Type: "PROCEDURAL LANGUAGE", Name: "plsh"},
		{DumpID: 21, Type: "FOREIGN DATA WRAPPER", Name: "w"},
		// A name that says LANGUAGE c, inside quotes, does not make a
		// plpgsql function one in C.
		{DumpID: 22, Type: "FUNCTION", Schema: "app", Name: "\"x\n    LANGUAGE c\"()", Defn: "CREATE FUNCTION app.\"x\n    LANGUAGE c\"() RETURNS integer\n    LANGUAGE plpgsql\n    AS $$ BEGIN RETURN 2; END $$;\n"},
		{DumpID: 23, Type: "TABLE", Schema: "app", Name: "t", Tablespace: "fast"},
		{DumpID: 24, Type: "TABLE DATA", Schema: "app", Name: "t", Deps: []int{23}},
	}}
	in := PlanInput{Languages: map[string]bool{"plpgsql": true, "sql": true, "c": false, "internal": false, "plperlu": false}}
	p := PlanRestore(toc, in)
	if got, want := ids(p.Keep), []int{1, 2, 12, 14, 16, 22, 23, 24}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	wantSkipped := []string{
		"FUNCTION app.in_c(): a function in C: only a superuser can create one; with the 3 entries that need it: ACL app.FUNCTION in_c(), VIEW app.v, COMMENT app.VIEW v",
		"FUNCTION app.perl(): its language plperlu is untrusted: only a superuser can create a function in it",
		"FUNCTION app.js(): its language plv8 is not installed in the proving Postgres",
		"EVENT TRIGGER log_ddl: only a superuser can create an event trigger; with the 1 entry that needs it: COMMENT EVENT TRIGGER log_ddl",
		"CAST (app.t AS text): only a superuser can create a binary-coercible cast",
		"TYPE app.base: only a superuser can create a base type",
		"PUBLICATION everything: only a superuser can publish all tables",
		"OPERATOR CLASS app.ops USING btree: only a superuser can create an operator class; with the 1 entry that needs it: INDEX app.t_idx",
		"SUBSCRIPTION sub: only a superuser can create a subscription (which would connect out)",
		"PROCEDURAL LANGUAGE plsh: only a superuser can create a procedural language",
		"FOREIGN DATA WRAPPER w: only a superuser can create a foreign data wrapper",
		"tablespace fast: the proof has none, so its 1 entry went into the default tablespace (pg_restore --no-tablespaces)",
	}
	if !reflect.DeepEqual(p.Skipped, wantSkipped) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(p.Skipped, "\n"), strings.Join(wantSkipped, "\n"))
	}
}

// Extensions are created by pgattest, never restored: their entries and
// their comments stay out of the list; one left out takes what needs it;
// a schema pgattest made for an extension is not restored again.
func TestPlanRestoreExtensions(t *testing.T) {
	toc := &TOC{Entries: []Entry{
		{DumpID: 1, Type: "SCHEMA", Name: "extensions", Owner: "app"},
		{DumpID: 2, Type: "COMMENT", Name: "SCHEMA extensions", Deps: []int{1}},
		{DumpID: 3, Type: "EXTENSION", Name: "pgcrypto", Defn: "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n", Deps: []int{1}},
		{DumpID: 4, Type: "COMMENT", Name: "EXTENSION pgcrypto", Deps: []int{3}},
		{DumpID: 5, Type: "EXTENSION", Name: "postgis", Defn: "CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public;\n"},
		{DumpID: 6, Type: "TABLE", Schema: "public", Name: "places", Deps: []int{5}},
		{DumpID: 7, Type: "TABLE DATA", Schema: "public", Name: "places", Deps: []int{6}},
		{DumpID: 8, Type: "TABLE", Schema: "public", Name: "users", Deps: []int{3}},
	}}
	exts := ArchiveExtensions(toc)
	if want := []ExtensionEntry{{"pgcrypto", "extensions", 3}, {"postgis", "public", 5}}; !reflect.DeepEqual(exts, want) {
		t.Errorf("extensions %+v, want %+v", exts, want)
	}
	p := PlanRestore(toc, PlanInput{Languages: stockLanguages, Schemas: []string{"extensions"},
		LeftOut: map[string]string{"postgis": "not in the proving Postgres 15.18 (left out by --verify-skip-extension)"}})
	if got, want := ids(p.Keep), []int{2, 8}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	want := []string{
		"COMMENT EXTENSION pgcrypto: only the extension's owner (pgattest's superuser, which created it from the local installation) can comment on it",
		"extension postgis: not in the proving Postgres 15.18 (left out by --verify-skip-extension); with the 2 entries that need it: TABLE public.places, TABLE DATA public.places",
	}
	if !reflect.DeepEqual(p.Skipped, want) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(p.Skipped, "\n"), strings.Join(want, "\n"))
	}
}

// An extension's configuration data (a table and a sequence that are in no
// entry: the extension's) is restored when pgattest created the extension,
// and listed for the grants; it goes with a left-out extension otherwise.
// A comment an extension already has is neither restored nor skipped.
func TestPlanRestoreExtensionData(t *testing.T) {
	toc := &TOC{Entries: []Entry{
		{DumpID: 1, Type: "EXTENSION", Name: "postgis", Defn: "CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public;\n"},
		{DumpID: 2, Type: "COMMENT", Name: "EXTENSION postgis", Defn: "COMMENT ON EXTENSION postgis IS 'PostGIS geometry and geography spatial types and functions';\n", Deps: []int{1}},
		{DumpID: 3, Type: "EXTENSION", Name: "cfgext", Defn: "CREATE EXTENSION IF NOT EXISTS cfgext WITH SCHEMA cfgext;\n"},
		{DumpID: 4, Type: "COMMENT", Name: "EXTENSION cfgext", Defn: "COMMENT ON EXTENSION cfgext IS 'changed on the source';\n", Deps: []int{3}},
		{DumpID: 5, Type: "TABLE", Schema: "public", Name: "pts", Deps: []int{1}},
		{DumpID: 6, Type: "TABLE DATA", Schema: "public", Name: "pts", Deps: []int{5}},
		{DumpID: 7, Type: "TABLE DATA", Schema: "public", Name: "spatial_ref_sys", Deps: []int{220}},
		{DumpID: 8, Type: "TABLE DATA", Schema: "cfgext", Name: "settings", Deps: []int{230}},
		{DumpID: 9, Type: "SEQUENCE SET", Schema: "cfgext", Name: "settings_id_seq", Deps: []int{231}},
		// Crafted: a sequence's value for a table, a table's rows for a
		// sequence: no grant for either.
		{DumpID: 10, Type: "SEQUENCE SET", Schema: "public", Name: "spatial_ref_sys", Deps: []int{5}},
		{DumpID: 11, Type: "TABLE DATA", Schema: "cfgext", Name: "settings_id_seq", Deps: []int{5}},
	}}
	in := PlanInput{Languages: stockLanguages,
		ExtensionComments: map[string]string{"postgis": "PostGIS geometry and geography spatial types and functions", "cfgext": "as installed"},
		ExtensionTables: map[[2]string]string{{"public", "spatial_ref_sys"}: "postgis", {"cfgext", "settings"}: "cfgext",
			{"cfgext", "settings_id_seq"}: "cfgext"},
		ExtensionSequences: map[[2]string]bool{{"cfgext", "settings_id_seq"}: true}}
	p := PlanRestore(toc, in)
	if got, want := ids(p.Keep), []int{5, 6, 7, 8, 9, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if got, want := ids(p.ExtensionData), []int{7, 8, 9}; !reflect.DeepEqual(got, want) {
		t.Errorf("extension data %v, want %v", got, want)
	}
	want := []string{"COMMENT EXTENSION cfgext: only the extension's owner (pgattest's superuser, which created it from the local installation) can comment on it"}
	if !reflect.DeepEqual(p.Skipped, want) {
		t.Errorf("skipped %q, want %q", p.Skipped, want)
	}

	// cfgext missing from the proving Postgres, left out on request: its
	// data goes with it, named.
	in.LeftOut = map[string]string{"cfgext": "not in the proving Postgres 15.18 (left out by --verify-skip-extension)"}
	delete(in.ExtensionTables, [2]string{"cfgext", "settings"})
	delete(in.ExtensionTables, [2]string{"cfgext", "settings_id_seq"})
	delete(in.ExtensionComments, "cfgext")
	p = PlanRestore(toc, in)
	if got, want := ids(p.Keep), []int{5, 6, 7, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	want = []string{
		"extension cfgext: not in the proving Postgres 15.18 (left out by --verify-skip-extension); with the 1 entry that needs it: COMMENT EXTENSION cfgext",
		"TABLE DATA cfgext.settings: its table is in no entry of the archive: an extension's configuration table, of an extension left out (cfgext)",
		"SEQUENCE SET cfgext.settings_id_seq: its sequence is in no entry of the archive: an extension's configuration sequence, of an extension left out (cfgext)",
	}
	if !reflect.DeepEqual(p.Skipped, want) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(p.Skipped, "\n"), strings.Join(want, "\n"))
	}
}

// FactsOf reads roles from owners and from each entry's SQL, and the
// encoding from the ENCODING entry (which pg_restore -l does not list).
func TestFactsOf(t *testing.T) {
	toc := &TOC{
		Entries: []Entry{
			{DumpID: 1, Type: "TABLE", Schema: "s", Name: "t", Owner: "Ann O'Neil"},
			{DumpID: 2, Type: "ACL", Schema: "s", Name: "TABLE t", Owner: "Ann O'Neil", Defn: "GRANT SELECT ON TABLE s.t TO \"report\nbot\";\nGRANT ALL ON TABLE s.t TO pg_read_all_data;\n"},
			{DumpID: 3, Type: "DEFAULT ACL", Name: "DEFAULT PRIVILEGES FOR TABLES", Owner: "cloud_admin", Defn: "ALTER DEFAULT PRIVILEGES FOR ROLE cloud_admin GRANT ALL ON TABLES TO neon_superuser;\n"},
		},
		Special: []Entry{{DumpID: 9, Type: "ENCODING", Name: "ENCODING", Defn: "SET client_encoding = 'LATIN1';\n"}},
	}
	f := FactsOf(toc)
	if want := []string{"Ann O'Neil", "cloud_admin", "neon_superuser", "report\nbot"}; !reflect.DeepEqual(f.Roles, want) {
		t.Errorf("roles %q, want %q", f.Roles, want)
	}
	if f.Encoding != "LATIN1" {
		t.Errorf("encoding %q", f.Encoding)
	}
}
