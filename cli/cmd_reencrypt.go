package cli

import (
	"context"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/pipeline"
)

func reencryptCommand(e *env) *ucli.Command {
	var o reencryptOptions
	return &ucli.Command{
		Name:      "reencrypt",
		Usage:     "write a backup's archive again for new recipients (key rotation), as a new record",
		ArgsUsage: "ID",
		Description: `Streams the archive of backup ID (decrypted with --identity when it is
encrypted), checks that its plaintext is the one the record holds, and
encrypts it to the recipients given, beside the old archive (a folder or a
bucket): NAME-STAMP-reNOW.dump.age and its manifest. A new record points to the
old one (reencrypted_from); it proves nothing new: its proofs are the old
record's, about the same plaintext, as the digest shows. Nothing is written in
the clear, and the old archive is left as it is (prune or delete it when no
one needs the old identity any more).

Examples:
   pgattest reencrypt 20261124T2228 --identity old-key.txt --encrypt-to age1new…
   pgattest reencrypt 20261124T2228 --encrypt-to-file recipients.txt   # an archive stored in the clear

Exit codes: 0 re-encrypted and recorded; 1 failure (a wrong identity, the
store); 2 usage error; 3 the archive does not match its record.`,
		Flags: append([]ucli.Flag{
			identityFlag(&o.identity, "that decrypts the archive now"),
		}, recipientFlags(&o.recipients, "the new archive")...),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("'pgattest list' prints the IDs", "reencrypt takes one backup ID")
			}
			o.id = c.Args().First()
			return runReencrypt(c.Context, e, o)
		},
	}
}

// reencryptOptions are reencrypt's flags and argument.
type reencryptOptions struct {
	id         string
	identity   string
	recipients recipientOptions
}

func runReencrypt(ctx context.Context, e *env, o reencryptOptions) error {
	if !o.recipients.any() {
		return usageErrorf("give the new recipients with --encrypt-to age1… or --encrypt-to-file FILE", "reencrypt needs the recipients to encrypt to")
	}
	cat, err := openCatalog(e)
	if err != nil {
		return err
	}
	rec, err := resolve(cat, o.id)
	cat.Close()
	if err != nil {
		return err
	}
	ids, err := pipeline.LoadIdentities(o.identity)
	if err != nil {
		return err
	}
	p := newProgress(e)
	p.line("re-encrypting %s (%s) …", rec.ID, rec.Archive.Path)
	res, err := pipeline.Reencrypt(ctx, pipeline.ReencryptOptions{CatalogPath: e.catalogPath, Record: rec, Identities: ids,
		EncryptTo: o.recipients.to, EncryptToFiles: o.recipients.files})
	p.done()
	if err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.stdout, res.Record)
	}
	printRecord(e.stdout, res.Record)
	return nil
}
