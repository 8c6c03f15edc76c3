package verify

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// leaving out one more entry that called such a function.
const maxSuperuserRetries = 5

// SuperuserFunctionError: an entry of the archive called a SECURITY
// DEFINER function owned by a role that was a superuser on the source, and
// the function failed with that owner's rights in the proof, which are not
// a superuser's.
type SuperuserFunctionError struct {
	Entry    Entry  // the TOC entry being restored
	Function string // as the archive names it: "public.f(x integer)"
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
func (e *SuperuserFunctionError) Unwrap() error     { return e.Err }
func (e *SuperuserFunctionError) ProofFailed() bool { return true }

// explainSuperuser returns err as a *SuperuserFunctionError when it is a
// restore that failed inside a SECURITY DEFINER function the archive
// holds, owned by one of superusers (the source's); else err itself.
func explainSuperuser(err error, toc *TOC, superusers []string) error {
	var re *RestoreError
	if toc == nil || len(superusers) == 0 || !errors.As(err, &re) || len(re.Functions) == 0 {
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
			return &SuperuserFunctionError{Entry: toc.Entries[i], Function: f.Schema + "." + f.Name, Owner: f.Owner, Err: re}
		}
	}
	return err
}
