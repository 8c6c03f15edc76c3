package verify

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pgattest/pgattest/testenv"
)

// A SECURITY DEFINER function runs as its owner. When that owner was a
// superuser on the source (a self-hosted postgres; RDS', Cloud SQL's,
// Azure's or Neon's administrators: members of rds_superuser and the
// like), the function may do there what only a superuser may; in the proof
// its owner is an ordinary role, as every role of the archive is, so such
// a function can fail where it ran fine. The proof makes that owner a
// member of the archive's other roles (grantMemberships), which is all a
// function that only reads the archive's own objects needs. What is left,
// a function that needs a superuser's powers (pg_authid, files, programs),
// pgattest refuses to run as one: the proof then has no verdict. Not
// "failed" (the archive may restore as a superuser), not "passed" with the
// entry left out: the archive writes its own error messages, and an archive
// that does not restore at all could pose as this case.

// SuperuserFunctionError: an entry of the archive called a SECURITY
// DEFINER function owned by a role that was a superuser on the source, and
// the function was refused a privilege (SQLSTATE 42501) with that owner's
// rights in the proof, which are not a superuser's. It is no verdict on the
// archive (ProofFailed false): the backup stays unverified.
type SuperuserFunctionError struct {
	Entry    string // the TOC entry being restored, as pg_restore named it
	Function string // as the archive names it: "public.f(x integer)"
	Owner    string
	Refused  string // the server's message, as it logged it
	Err      *RestoreError
}

func (e *SuperuserFunctionError) Error() string {
	msg, _, _ := strings.Cut(e.Refused, "\n")
	return fmt.Sprintf("TOC entry %s calls %s, a SECURITY DEFINER function owned by %s, a superuser on the source; in the proof %s is an ordinary role "+
		"(pgattest never runs the archive's code as a superuser), and there the function was refused: %s", e.Entry, e.Function, e.Owner, e.Owner, msg)
}
func (e *SuperuserFunctionError) Unwrap() error     { return e.Err }
func (e *SuperuserFunctionError) ProofFailed() bool { return false }
func (e *SuperuserFunctionError) Hint() string {
	return "the proof cannot tell whether this archive restores without running its code as a superuser, which it never does; " +
		"where the function needs no superuser's powers, let an ordinary role own it on the source"
}

// reLoggedFunction finds a function in a CONTEXT frame as the server logs
// it, at the start of a line: `PL/pgSQL function public.f(integer) line 3
// at RETURN`, `SQL function "f" statement 1`.
var reLoggedFunction = regexp.MustCompile(`(?m)^(?:PL/pgSQL function ([^ ]+\([^)]*\)) line \d+|SQL function "([^"]+)")`)

// explainSuperuser returns err as a *SuperuserFunctionError when the error
// that stopped pg_restore, as the server logged it (logged), is a refused
// privilege (42501) raised by the server itself, not by the archive's
// code, with a SECURITY DEFINER function the archive holds, owned by one of
// superusers (the source's), among its CONTEXT's frames; else err itself.
// (The frames may quote the archive's SQL: an archive can pose as this
// case, and gains only a backup left unverified.)
func explainSuperuser(err error, toc *TOC, superusers []string, logged func() (testenv.LogError, bool)) error {
	var re *RestoreError
	if toc == nil || len(superusers) == 0 || !errors.As(err, &re) {
		return err
	}
	e, ok := logged()
	if !ok || e.State != "42501" || archiveRaised(e) {
		return err
	}
	for _, m := range reLoggedFunction.FindAllStringSubmatch(e.Context, -1) {
		name, _, _ := strings.Cut(m[1]+m[2], "(")
		schema, base, ok := strings.Cut(name, ".")
		if !ok {
			schema, base = "", name
		}
		i := slices.IndexFunc(toc.Entries, func(f Entry) bool {
			return (f.Type == "FUNCTION" || f.Type == "PROCEDURE") && strings.HasPrefix(f.Name, base+"(") &&
				(schema == "" || f.Schema == schema) && slices.Contains(superusers, f.Owner) && hasWords(f.Defn, "SECURITY", "DEFINER")
		})
		if i >= 0 {
			f := toc.Entries[i]
			return &SuperuserFunctionError{Entry: re.Entry, Function: f.Schema + "." + f.Name, Owner: f.Owner, Refused: e.Message, Err: re}
		}
	}
	return err
}

// loggedBy looks up the last error c logged for user's sessions.
func loggedBy(c *testenv.Cluster, user string) func() (testenv.LogError, bool) {
	return func() (testenv.LogError, bool) {
		if c == nil {
			return testenv.LogError{}, false
		}
		return c.LastError(user)
	}
}
