package verify

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pgattest/pgattest/testenv"
)

// A SECURITY DEFINER function runs as its owner. When that owner was a
// superuser on the source (a self-hosted postgres, RDS' master user …),
// the function may do there what only a superuser may; in the proof its
// owner is an ordinary role, as every role of the archive is, so such a
// function can fail where it ran fine. The proof makes that owner a member
// of the archive's other roles (grantMemberships), which is all a
// function that only reads the archive's own objects needs. What is left,
// a function that needs a superuser's powers (pg_authid, files, programs),
// pgattest refuses to run as one: the entry that called it is left out,
// with that reason, and the proof runs again without it.

// maxSuperuserRetries bounds the restores a proof runs again, each time
// leaving out what called one more such function; past it the proof could
// not run (no verdict).
const maxSuperuserRetries = 5

// SuperuserFunctionError: an entry of the archive called a SECURITY
// DEFINER function owned by a role that was a superuser on the source, and
// the function failed with that owner's rights in the proof, which are not
// a superuser's.
type SuperuserFunctionError struct {
	Entry    Entry  // the TOC entry being restored
	Function string // as the archive names it: "public.f(x integer)"
	FuncID   int    // the function's dump id
	Owner    string
	Err      *RestoreError
}

func (e *SuperuserFunctionError) Error() string {
	return fmt.Sprintf("%s: %s", e.Entry.Describe(), e.Reason())
}

// Reason says why the entry cannot be proven, in words for the record.
func (e *SuperuserFunctionError) Reason() string {
	msg, _ := strings.CutPrefix(e.Err.Message, "ERROR:  ")
	if _, after, ok := strings.Cut(msg, ": ERROR:  "); ok {
		msg = after
	}
	return fmt.Sprintf("it calls %s, a SECURITY DEFINER function owned by %s, a superuser on the source; in the proof %s is an ordinary role "+
		"(pgattest never runs the archive's code as a superuser), and there the function failed: %s", e.Function, e.Owner, e.Owner, msg)
}

// LeftOut is what a proof leaves out for this failure, each with its
// reason: the entry that failed, and every entry that also runs the
// function as it restores (a table's rows whose CHECK or generated column
// needs it, an index or a constraint on it, a materialized view's data),
// so that one restore again proves the rest instead of one per entry.
func (e *SuperuserFunctionError) LeftOut(toc *TOC) map[int]string {
	out := map[int]string{e.Entry.DumpID: e.Reason()}
	also := fmt.Sprintf("it needs %s too, a SECURITY DEFINER function owned by %s, a superuser on the source, which failed in the proof when %s called it "+
		"(pgattest never runs the archive's code as a superuser)", e.Function, e.Owner, e.Entry.Describe())
	tables := map[int]bool{} // TABLE entries whose definition uses the function
	for _, x := range toc.Entries {
		if x.Type == "TABLE" && slices.Contains(x.Deps, e.FuncID) {
			tables[x.DumpID] = true
		}
	}
	for _, x := range toc.Entries {
		if _, done := out[x.DumpID]; done {
			continue
		}
		switch x.Type {
		case "TABLE DATA":
			if slices.ContainsFunc(x.Deps, func(d int) bool { return tables[d] }) {
				out[x.DumpID] = also
			}
		case "INDEX", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "MATERIALIZED VIEW DATA":
			if slices.Contains(x.Deps, e.FuncID) {
				out[x.DumpID] = also
			}
		}
	}
	return out
}

func (e *SuperuserFunctionError) Unwrap() error     { return e.Err }
func (e *SuperuserFunctionError) ProofFailed() bool { return true }

// explainSuperuser returns err as a *SuperuserFunctionError when it is a
// restore refused for want of a privilege (SQLSTATE 42501, from the
// server's log: state) inside a SECURITY DEFINER function the archive
// holds, owned by one of superusers (the source's); else err itself. Any
// other failure in such a function is the archive's.
func explainSuperuser(err error, toc *TOC, superusers []string, state func(msg string) string) error {
	var re *RestoreError
	if toc == nil || len(superusers) == 0 || !errors.As(err, &re) || len(re.Functions) == 0 || re.Raised {
		return err
	}
	if code := state(re.Message); code != "42501" && !(code == "" && privilegeMessage(re.Message)) {
		return err
	}
	id, perr := strconv.Atoi(strings.TrimSpace(strings.SplitN(re.Entry, ";", 2)[0]))
	if perr != nil {
		return err
	}
	i := slices.IndexFunc(toc.Entries, func(e Entry) bool { return e.DumpID == id })
	if i < 0 {
		return err
	}
	for _, ref := range re.Functions {
		name, _, _ := strings.Cut(ref, "(")
		schema, base, ok := strings.Cut(name, ".")
		if !ok {
			schema, base = "", name
		}
		for _, f := range toc.Entries {
			if (f.Type != "FUNCTION" && f.Type != "PROCEDURE") || !strings.HasPrefix(f.Name, base+"(") ||
				(schema != "" && f.Schema != schema) || !slices.Contains(superusers, f.Owner) || !hasWords(f.Defn, "SECURITY", "DEFINER") {
				continue
			}
			return &SuperuserFunctionError{Entry: toc.Entries[i], Function: f.Schema + "." + f.Name, FuncID: f.DumpID, Owner: f.Owner, Err: re}
		}
	}
	return err
}

// privilegeMessage reports whether a server's error, as a client printed
// it, is one Postgres gives for a missing privilege: its own words first.
func privilegeMessage(msg string) bool {
	_, text, ok := strings.Cut(msg, "ERROR:  ")
	return ok && (strings.HasPrefix(text, "permission denied") || strings.HasPrefix(text, "must be superuser") ||
		strings.HasPrefix(text, "must be owner of ") || strings.HasPrefix(text, "must be a superuser"))
}

// clusterState looks an error up in c's log (ErrorState), or finds nothing
// when there is no cluster.
func clusterState(c *testenv.Cluster) func(string) string {
	return func(msg string) string {
		if c == nil {
			return ""
		}
		return c.ErrorState(msg)
	}
}

// SuperuserFunctionsError: the proof left out what SECURITY DEFINER
// functions of the source's superusers called and restored again, as many
// times as it does, and another such function still failed. It is no
// verdict on the archive (ProofFailed false): the proof could not finish.
type SuperuserFunctionsError struct {
	Restores int
	Last     *SuperuserFunctionError
}

func (e *SuperuserFunctionsError) Error() string {
	return fmt.Sprintf("after %d restores, each leaving out what one more SECURITY DEFINER function of the source's superusers called, another still failed: %v",
		e.Restores, e.Last)
}
func (e *SuperuserFunctionsError) ProofFailed() bool { return false }
func (e *SuperuserFunctionsError) Hint() string {
	return "these functions need a superuser, which the proof never is: own them by an ordinary role on the source where they need no superuser's powers"
}
