package verify

import (
	"errors"
	"reflect"
	"testing"
)

func noLog(string) string { return "" }

// pg_restore's lines name the functions the server was in; one that is a
// SECURITY DEFINER function of a source superuser explains the failure,
// any other leaves it as it was.
func TestExplainSuperuser(t *testing.T) {
	var st restoreState
	for _, l := range []string{
		"pg_restore: from TOC entry 3366; 0 25616 TABLE DATA v app",
		`pg_restore: error: COPY failed for table "v": ERROR:  permission denied for table pg_authid`,
		`CONTEXT:  SQL expression "(select count(*) > 0 from pg_catalog.pg_authid) and x > 0"`,
		"PL/pgSQL function public.su_only(integer) line 1 at RETURN",
		`SQL function "helper" statement 1`,
		`COPY v, line 1: "1"`,
	} {
		st.observe(l)
	}
	err := st.failure(errors.New("exit status 1"))
	toc := &TOC{Entries: []Entry{
		{DumpID: 10, Type: "FUNCTION", Schema: "public", Name: "su_only(x integer)", Owner: "postgres",
			Defn: "CREATE FUNCTION public.su_only(x integer) RETURNS boolean\n    LANGUAGE plpgsql STABLE SECURITY DEFINER\n    AS $$ begin return true; end $$;\n"},
		{DumpID: 3366, Type: "TABLE DATA", Schema: "public", Name: "v", Owner: "app"},
	}}
	var sf *SuperuserFunctionError
	if !errors.As(explainSuperuser(err, toc, []string{"postgres"}, noLog), &sf) || sf.Entry.DumpID != 3366 || sf.Function != "public.su_only(x integer)" || sf.Owner != "postgres" {
		t.Fatalf("explained as %+v, want the TABLE DATA entry calling public.su_only owned by postgres", sf)
	}
	if want := "it calls public.su_only(x integer), a SECURITY DEFINER function owned by postgres, a superuser on the source; in the proof postgres is an ordinary role (pgattest never runs the archive's code as a superuser), and there the function failed: permission denied for table pg_authid"; sf.Reason() != want {
		t.Errorf("reason %q\nwant   %q", sf.Reason(), want)
	}
	for name, supers := range map[string][]string{"owner not a superuser on the source": {"admin"}, "no superusers known": nil} {
		var other *SuperuserFunctionError
		if errors.As(explainSuperuser(err, toc, supers, noLog), &other) {
			t.Errorf("%s: explained, want the restore error as it was", name)
		}
	}
	// Any other failure in that function is the archive's: a unique
	// violation, or an error the server's log gives another code.
	other := &RestoreError{Entry: "3366; 0 25616 TABLE DATA v app", Message: "ERROR:  duplicate key value violates unique constraint \"k\"", Functions: []string{"public.su_only(integer)"}}
	var sf2 *SuperuserFunctionError
	if errors.As(explainSuperuser(other, toc, []string{"postgres"}, noLog), &sf2) {
		t.Error("a unique violation inside the function was explained as a superuser's")
	}
	if errors.As(explainSuperuser(err, toc, []string{"postgres"}, func(string) string { return "22012" }), &sf2) {
		t.Error("an error the log gives SQLSTATE 22012 was explained as a superuser's")
	}
	toc.Entries[0].Defn = "CREATE FUNCTION public.su_only(x integer) RETURNS boolean\n    LANGUAGE plpgsql STABLE\n    AS $$ begin return true; end $$;\n"
	var invoker *SuperuserFunctionError
	if errors.As(explainSuperuser(err, toc, []string{"postgres"}, noLog), &invoker) {
		t.Error("a function that is not SECURITY DEFINER runs as the caller: no explanation")
	}
}

// The source's memberships among the archive's roles are made again, its
// superusers become members of the other roles; built-in roles, roles the
// archive does not name, repeats and circles are left out.
func TestMembershipGrants(t *testing.T) {
	roles := []string{"app", "postgres", "reader", "rds_superuser", "writer"}
	members := []Membership{
		{Role: "reader", Member: "writer"},
		{Role: "pg_read_server_files", Member: "app"}, // never granted
		{Role: "app", Member: "stranger"},             // not in the archive
		{Role: "rds_superuser", Member: "postgres"},
		{Role: "postgres", Member: "app"}, // app is in postgres: postgres may not be in app
	}
	grants, kept, sus := membershipGrants(roles, []string{"postgres", "admin"}, members)
	want := []Membership{
		{Role: "reader", Member: "writer"}, {Role: "rds_superuser", Member: "postgres"}, {Role: "postgres", Member: "app"},
		{Role: "reader", Member: "postgres"}, {Role: "writer", Member: "postgres"},
	}
	if !reflect.DeepEqual(grants, want) || kept != 3 || !reflect.DeepEqual(sus, []string{"postgres"}) {
		t.Errorf("grants %v (kept %d, superusers %v)\nwant   %v (kept 3, superusers [postgres])", grants, kept, sus, want)
	}
}
