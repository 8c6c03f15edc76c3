package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/verify"
	ucli "github.com/urfave/cli/v2"
)

// receiptVerifyOptions are receipt verify's flags.
type receiptVerifyOptions struct {
	files   []string
	keys    []string
	archive string
}

func receiptCommand(e *env) *ucli.Command {
	var o receiptVerifyOptions
	return &ucli.Command{
		Name:  "receipt",
		Usage: "check signed proof receipts offline",
		Subcommands: []*ucli.Command{{
			Name:      "verify",
			Usage:     "check receipts' signatures (and an archive's bytes) with a public key: no catalog, no network",
			ArgsUsage: "FILE...",
			Description: `Each FILE is a receipt (NAME-STAMP.receipt.json, beside the archive): a
DSSE envelope signed with ed25519 around an in-toto Statement v1 whose
subject is the stored archive (sha256 and blake3 of its bytes; for a
directory-format archive, one subject per file, FOLDER/PATH). A receipt
passes when a --key signed it (its keyid is a hint, never trusted) and its
statement has pgattest's shape; with --archive, when the archive's bytes
also hash to its subject. README ("Signed receipts") shows the same check
with openssl alone.

Receipts of a name chain (each names the SHA-256 of the one before). Given
several, every receipt but the oldest given must follow one given: one that
follows a receipt not there means a receipt is missing (a failed proof's,
deleted?) and is a broken link.

Examples:
   pgattest receipt verify shop-20261101T020000Z.receipt.json --key sign.pub.pem
   pgattest receipt verify backups/shop/*.receipt.json --key sign.pub.pem
   pgattest receipt verify shop-20261101T020000Z.receipt.json --key sign.pub.pem \
       --archive shop-20261101T020000Z.dump
   pgattest receipt verify shop-20261101T020000Z.receipt.json --key sign.pub.pem \
       --archive shop-20261101T020000Z.dir

Exit codes: 0 every receipt checks; 2 usage error; 3 a receipt (or the
archive) does not match, or a chain has a broken link, named.`,
			Flags: []ucli.Flag{
				&ucli.StringSliceFlag{Name: "key", Usage: "a trusted public key `FILE` (SPKI PEM: pgattest key public, or openssl pkey -pubout); repeatable", Required: true,
					Action: func(_ *ucli.Context, v []string) error { o.keys = v; return nil }},
				&ucli.StringFlag{Name: "archive", Aliases: []string{"report"}, Usage: "the archive `PATH` the receipt is for: its bytes must hash to the subject (one receipt; a directory-format archive's folder: every file to its subject, none missing or added); for a signed audit, the report (--report), whose bytes must be the ones signed", Destination: &o.archive},
			},
			Action: func(c *ucli.Context) error {
				o.files = c.Args().Slice()
				return runReceiptVerify(c.Context, e, o)
			},
		}},
	}
}

func runReceiptVerify(ctx context.Context, e *env, o receiptVerifyOptions) error {
	if len(o.files) == 0 {
		return usageErrorf("pgattest receipt verify FILE.receipt.json --key PUB.pem", "give the receipts to check")
	}
	if o.archive != "" && len(o.files) != 1 {
		return usageErrorf("check one receipt with its --archive at a time", "--archive goes with one receipt, got %d", len(o.files))
	}
	var keys []ed25519.PublicKey
	for _, k := range o.keys {
		pub, err := receipt.LoadPublic(k)
		var ke *receipt.KeyError
		if errors.As(err, &ke) {
			return usageErrorf("give the signer's public key: pgattest key public SIGN.pem > PUB.pem", "%v", err)
		}
		if err != nil {
			return err
		}
		keys = append(keys, pub)
	}
	bad := 0
	var ok []chained
	for _, f := range o.files {
		if line, isAudit, err := checkAuditEnvelope(f, keys, o.archive); isAudit {
			var m *receipt.MismatchError
			switch {
			case errors.As(err, &m):
				bad++
				fmt.Fprintf(e.stdout, "%s: DOES NOT MATCH: %s\n", safe(f), safeText(err.Error()))
			case err != nil:
				return err
			default:
				fmt.Fprintf(e.stdout, "%s: OK %s\n", safe(f), line)
			}
			continue
		}
		st, keyID, digest, err := checkReceipt(f, keys, o.archive)
		if err != nil {
			var m *receipt.MismatchError
			if !errors.As(err, &m) {
				return err
			}
			bad++
			fmt.Fprintf(e.stdout, "%s: DOES NOT MATCH: %s\n", safe(f), safeText(err.Error()))
			continue
		}
		ok = append(ok, chained{file: f, digest: digest, st: st})
		p := st.Predicate
		archive := fmt.Sprintf("archive %s sha256 %s", safe(st.Subject[0].Name), st.Subject[0].Digest["sha256"])
		if p.Archive.Format == receipt.FormatDirectory {
			folder, _ := st.Folder()
			archive = fmt.Sprintf("archive folder %s of %d files, blake3 %s", safe(folder), len(st.Subject), p.Archive.BLAKE3)
		}
		fmt.Fprintf(e.stdout, "%s: OK signed by key %s: backup %s (%s), %s, proof %s %s",
			safe(f), keyID, safe(p.Backup.ID), safe(p.Backup.Name), archive, safe(p.Proof.Mode), safe(p.Proof.Verdict))
		if p.Proof.Verdict == "passed" {
			fmt.Fprintf(e.stdout, ", %d rows in %d tables", p.Proof.Rows, len(p.Proof.Tables))
		}
		if o.archive != "" {
			fmt.Fprint(e.stdout, "; the archive's bytes match") // every file's, for a folder
		}
		fmt.Fprintln(e.stdout)
	}
	broken := checkChains(e, ok)
	if bad > 0 {
		return proofErrorf("a receipt that does not check is no evidence: ask for the signer's key, or find out who changed it", "%d of %d receipts do not match", bad, len(o.files))
	}
	if broken > 0 {
		return proofErrorf("give every receipt of the name (NAME/*.receipt.json, and a bucket's older versions); a missing one may hide a failed proof", "%d broken link(s) in the receipts' chains", broken)
	}
	return nil
}

// checkReceipt checks one receipt file (and the archive, when given); the
// digest is the SHA-256 of the file's bytes, by which the next receipt of
// its name names it.
func checkReceipt(path string, keys []ed25519.PublicKey, archive string) (st *receipt.Statement, keyID, digest string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", "", err
	}
	payload, keyID, err := receipt.Open(b, keys)
	if err != nil {
		return nil, "", "", err
	}
	if st, err = receipt.Parse(payload); err != nil {
		return nil, "", "", err
	}
	if fi, err := os.Lstat(archive); err == nil && fi.IsDir() {
		// A directory-format archive: each file's digests against its
		// subject, none missing, none added, nothing but files.
		if st.Predicate.Archive.Format != receipt.FormatDirectory {
			return nil, "", "", &receipt.MismatchError{What: fmt.Sprintf("the receipt is about one archive file (%s), not a folder", safe(st.Subject[0].Name))}
		}
		_, files, err := verify.HashFolder(archive, true)
		var na *verify.NotArchiveError
		if errors.As(err, &na) {
			return nil, "", "", &receipt.MismatchError{What: fmt.Sprintf("the folder holds %s, which no backup writes", na.Found)}
		}
		if err != nil {
			return nil, "", "", err
		}
		if err := st.CheckFiles(pipeline.ReceiptFiles(files)); err != nil {
			return nil, "", "", err
		}
	} else if archive != "" {
		f, err := os.OpenFile(archive, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return nil, "", "", err
		}
		defer f.Close()
		if err := st.CheckArchive(f); err != nil {
			return nil, "", "", err
		}
	}
	return st, keyID, receipt.Digest(b), nil
}

// chained is a receipt that checked, for the chains of its name.
type chained struct {
	file, digest string
	st           *receipt.Statement
}

// checkChains follows each name's chain through the receipts given (each
// names the SHA-256 of the one before): a receipt whose previous one is
// not among them, other than the oldest given, means one is missing (a
// proof's receipt deleted, a failed one hidden) or was rewritten, and is a
// broken link; one that names none begins a chain again (a new catalog,
// another machine) and two that follow the same one (concurrent runs) are
// said. The newest and the oldest receipts can go unnoticed: nothing
// after or before them names them. It prints a line per name and returns
// the broken links.
func checkChains(e *env, ok []chained) (broken int) {
	byName := map[string][]chained{}
	for _, c := range ok {
		byName[c.st.Predicate.Backup.Name] = append(byName[c.st.Predicate.Backup.Name], c)
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		rs := byName[name]
		if len(rs) < 2 {
			continue
		}
		slices.SortStableFunc(rs, func(a, b chained) int { return a.st.Predicate.MadeAt.Compare(b.st.Predicate.MadeAt) })
		have := map[string]bool{}
		followers := map[string]int{}
		for _, c := range rs {
			have[c.digest] = true
			followers[c.st.Predicate.PreviousReceipt]++
		}
		gaps, starts := 0, 0
		for i, c := range rs {
			prev := c.st.Predicate.PreviousReceipt
			switch {
			case i == 0 || have[prev]:
			case prev == "": // a chain begun again: a new catalog, another machine
				starts++
			default:
				gaps++
				fmt.Fprintf(e.stdout, "chain %s: BROKEN at %s: it follows a receipt that is not among these (sha256 %s): a receipt of %s made before it is missing, or its file was rewritten\n",
					safe(name), safe(c.file), prev, safe(name))
			}
		}
		forks := 0
		for prev, n := range followers {
			if prev != "" && have[prev] && n > 1 {
				forks++
			}
		}
		line := fmt.Sprintf("chain %s: %d receipts, %s to %s", safe(name), len(rs), formatTime(rs[0].st.Predicate.MadeAt), formatTime(rs[len(rs)-1].st.Predicate.MadeAt))
		switch {
		case gaps > 0:
			line += fmt.Sprintf(", %d broken link(s)", gaps)
		default:
			line += ", each linked to the one before"
		}
		if starts > 0 {
			line += fmt.Sprintf("; %d begin(s) a chain again (a new catalog, or another machine's)", starts)
		}
		if forks > 0 {
			line += fmt.Sprintf("; %d receipt(s) followed by two or more (runs at the same time, or two histories)", forks)
		}
		fmt.Fprintln(e.stdout, line)
		broken += gaps
	}
	return broken
}

// checkAuditEnvelope checks a signed audit report's envelope (audit
// --sign-key), and with report the report's bytes against the signed
// ones. isAudit is false for any other file.
func checkAuditEnvelope(path string, keys []ed25519.PublicKey, report string) (line string, isAudit bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil || receipt.PayloadTypeOf(b) != receipt.AuditPayloadType {
		return "", false, nil
	}
	payload, keyID, err := receipt.OpenAs(b, receipt.AuditPayloadType, keys)
	if err != nil {
		return "", true, err
	}
	var rep struct {
		From, To time.Time
		OK       bool
	}
	if err := json.Unmarshal(payload, &rep); err != nil {
		return "", true, &receipt.MismatchError{What: "the signed payload is not an audit report"}
	}
	verdict := map[bool]string{true: "PASSED", false: "FAILED"}[rep.OK]
	line = fmt.Sprintf("signed by key %s: audit report %s to %s, %s", keyID, rep.From.Format(time.DateOnly), rep.To.Format(time.DateOnly), verdict)
	if report != "" {
		got, err := os.ReadFile(report)
		if err != nil {
			return "", true, err
		}
		if !bytes.Equal(got, payload) {
			return "", true, &receipt.MismatchError{What: fmt.Sprintf("%s is not the report that was signed (%d bytes, signed %d)", report, len(got), len(payload))}
		}
		line += "; the report's bytes match"
	}
	return line, true, nil
}
