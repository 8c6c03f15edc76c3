package verify

import (
	"errors"
	"reflect"
	"testing"

	"github.com/pgattest/pgattest/testenv"
)

// The error that stopped pg_restore, as the server logged it, explains a
// refusal inside a SECURITY DEFINER function of a source superuser; any
// other code, an error the archive's own code raised, a function that is
// not SECURITY DEFINER or not a superuser's, or no log record, leaves the
// failure as it was: evidence.
func TestExplainSuperuser(t *testing.T) {
	re := &RestoreError{Entry: "3366; 0 25616 TABLE DATA public v app", Message: `COPY failed for table "v": ERROR:  permission denied for table pg_authid`, Table: "v"}
	toc := &TOC{Entries: []Entry{
		{DumpID: 10, Type: "FUNCTION", Schema: "public", Name: "su_only(x integer)", Owner: "postgres",
			Defn: "CREATE FUNCTION public.su_only(x integer) RETURNS boolean\n    LANGUAGE plpgsql STABLE SECURITY DEFINER\n    AS $$ begin return true; end $$;\n"},
		{DumpID: 11, Type: "FUNCTION", Schema: "public", Name: "plain(x integer)", Owner: "postgres",
			Defn: "CREATE FUNCTION public.plain(x integer) RETURNS boolean\n    LANGUAGE plpgsql STABLE\n    AS $$ begin return true; end $$;\n"},
		{DumpID: 3366, Type: "TABLE DATA", Schema: "public", Name: "v", Owner: "app"},
	}}
	refused := testenv.LogError{Severity: "ERROR", State: "42501", Message: "permission denied for table pg_authid",
		Context:  "SQL statement \"SELECT count(*) > 0 FROM pg_catalog.pg_authid\"\nPL/pgSQL function public.su_only(integer) line 1 at RETURN\nCOPY v, line 1: \"1\"",
		Location: "aclcheck_error, aclchk.c:3650"}
	log := func(e testenv.LogError, ok bool) func() (testenv.LogError, bool) {
		return func() (testenv.LogError, bool) { return e, ok }
	}
	var sf *SuperuserFunctionError
	if !errors.As(explainSuperuser(re, toc, []string{"postgres"}, log(refused, true)), &sf) || sf.Function != "public.su_only(x integer)" || sf.Owner != "postgres" {
		t.Fatalf("explained as %+v, want the call of public.su_only owned by postgres", sf)
	}
	if want := "TOC entry 3366; 0 25616 TABLE DATA public v app calls public.su_only(x integer), a SECURITY DEFINER function owned by postgres, a superuser on the source; in the proof postgres is an ordinary role (pgattest never runs the archive's code as a superuser), and there the function was refused: permission denied for table pg_authid"; sf.Error() != want {
		t.Errorf("error %q\nwant   %q", sf.Error(), want)
	}
	if ProofFailed(sf) {
		t.Error("a refusal pgattest caused is evidence against the archive")
	}
	raised := refused
	raised.Location = "exec_stmt_raise, pl_exec.c:3907"
	other := refused
	other.State = "23505"
	invoker := refused
	invoker.Context = "PL/pgSQL function public.plain(integer) line 1 at RETURN"
	quoted := refused // a frame's name only inside quoted SQL
	quoted.Context = "SQL statement \"SELECT 'PL/pgSQL function public.su_only(integer) line 1'\""
	for name, c := range map[string]struct {
		log        func() (testenv.LogError, bool)
		superusers []string
	}{
		"raised by the archive's code":   {log(raised, true), []string{"postgres"}},
		"another SQLSTATE":               {log(other, true), []string{"postgres"}},
		"a function that is not DEFINER": {log(invoker, true), []string{"postgres"}},
		"named only inside quoted SQL":   {log(quoted, true), []string{"postgres"}},
		"the owner no superuser there":   {log(refused, true), []string{"admin"}},
		"no record in the log":           {log(testenv.LogError{}, false), []string{"postgres"}},
	} {
		var got *SuperuserFunctionError
		if errors.As(explainSuperuser(re, toc, c.superusers, c.log), &got) {
			t.Errorf("%s: explained as %+v, want the restore error as it was", name, got)
		}
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
