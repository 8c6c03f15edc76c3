package verify

import (
	"reflect"
	"strings"
	"testing"
)

func TestScanSQL(t *testing.T) {
	tests := []struct {
		name     string
		sql      string
		roles    []string
		encoding string
	}{
		{"owner", `ALTER TABLE shop.orders OWNER TO shop_owner;`, []string{"shop_owner"}, ""},
		{"quoted owner with space and quote", `ALTER SCHEMA "Sales Q1" OWNER TO "Ann ""The"" Smith";`, []string{`Ann "The" Smith`}, ""},
		{"upper case is folded unless quoted", `ALTER TABLE t OWNER TO Bob; ALTER TABLE u OWNER TO "Carol";`, []string{"Carol", "bob"}, ""},
		{"grant list", `GRANT SELECT,INSERT ON TABLE shop.orders TO shop_reader, "Report Bot" WITH GRANT OPTION;`, []string{"Report Bot", "shop_reader"}, ""},
		{"grant to public and builtins", `GRANT USAGE ON SCHEMA shop TO PUBLIC; GRANT pg_read_all_data TO CURRENT_USER;`, nil, ""},
		{"revoke from", `REVOKE ALL ON TABLE t FROM alice;`, []string{"alice"}, ""},
		{"granted by", `GRANT SELECT ON t TO bob GRANTED BY carol;`, []string{"bob", "carol"}, ""},
		{"default privileges", `ALTER DEFAULT PRIVILEGES FOR ROLE shop_owner IN SCHEMA shop GRANT SELECT ON TABLES TO shop_reader;`, []string{"shop_owner", "shop_reader"}, ""},
		{"schema authorization", `CREATE SCHEMA analytics AUTHORIZATION "Ann Smith";`, []string{"Ann Smith"}, ""},
		{"session authorization", `SET SESSION AUTHORIZATION 'dave';`, []string{"dave"}, ""},
		{"policy roles", `CREATE POLICY p ON t FOR SELECT TO erin, frank USING (true);`, []string{"erin", "frank"}, ""},
		{"user mapping", `CREATE USER MAPPING FOR gina SERVER s;`, []string{"gina"}, ""},
		{"function body is not SQL to scan", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$ BEGIN EXECUTE 'GRANT ALL ON t TO mallory'; END $fn$;\nALTER FUNCTION f() OWNER TO owner1;", []string{"owner1"}, ""},
		{"string and comment", "COMMENT ON TABLE t IS 'OWNER TO eve; GRANT x TO eve'; -- ALTER TABLE t OWNER TO eve;\n/* GRANT a TO eve */ SELECT 1;", nil, ""},
		{"encoding", "SET statement_timeout = 0;\nSET client_encoding = 'LATIN1';\nSET standard_conforming_strings = on;", nil, "LATIN1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ScanSQL(strings.NewReader(tt.sql))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Roles, tt.roles) {
				t.Errorf("roles %q, want %q", f.Roles, tt.roles)
			}
			if f.Encoding != tt.encoding {
				t.Errorf("encoding %q, want %q", f.Encoding, tt.encoding)
			}
		})
	}
}

// Cut-off SQL (a truncated archive) ends the scan without a hang, keeping
// the roles found before the cut.
func TestScanSQLCutOff(t *testing.T) {
	for _, tail := range []string{`SELECT 'abc`, `CREATE FUNCTION f() AS $x$ body`, `/* never closed`, `ALTER TABLE t OWNER TO`} {
		f, _ := ScanSQL(strings.NewReader("ALTER TABLE a OWNER TO first;\n" + tail))
		if !reflect.DeepEqual(f.Roles, []string{"first"}) {
			t.Errorf("after %q: roles %q, want [first]", tail, f.Roles)
		}
	}
}
