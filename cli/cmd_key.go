package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/pgattest/pgattest/pipeline/receipt"
	ucli "github.com/urfave/cli/v2"
)

// keyOptions are key generate's and key public's flags.
type keyOptions struct {
	out  string // generate: where the private key goes
	file string // public: the private key to read
}

func keyCommand(e *env) *ucli.Command {
	var o keyOptions
	return &ucli.Command{
		Name:  "key",
		Usage: "make and show the ed25519 keys that sign proof receipts",
		Description: `A signing key is an ed25519 private key in the file openssl writes
(PKCS#8 PEM): pgattest key generate makes one, or

   openssl genpkey -algorithm ed25519 -out sign.pem && chmod 600 sign.pem

backup --sign-key FILE signs each proof's receipt with it. Give auditors
its public half (pgattest key public FILE, an SPKI PEM), with which they
check receipts offline: pgattest receipt verify, or openssl alone (README).
The key id is the hex SHA-256 of the public key's DER encoding.`,
		Subcommands: []*ucli.Command{
			{
				Name:      "generate",
				Usage:     "write a new signing key (0600) and print its public key and key id",
				ArgsUsage: " ",
				Description: `Writes a new ed25519 private key (PKCS#8 PEM, as openssl writes it) to
--out, made 0600 and never over a file there, and prints its public half
(SPKI PEM) on stdout and its key id on stderr. Keep the private key off the machines auditors use;
give them the public key.

Examples:
   pgattest key generate --out ~/.config/pgattest/sign.pem > sign.pub.pem
   pgattest backup --db "$DATABASE_URL" --sign-key ~/.config/pgattest/sign.pem

Exit codes: 0 written; 1 it could not be written; 2 usage error (the file
exists).`,
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "out", Usage: "the private key's `FILE` (made 0600; never overwritten)", Required: true, Destination: &o.out},
				},
				Action: func(c *ucli.Context) error {
					if c.NArg() > 0 {
						return usageErrorf("give the file with --out", "key generate takes no arguments, got %q", c.Args().First())
					}
					return runKeyGenerate(c.Context, e, o)
				},
			},
			{
				Name:      "public",
				Usage:     "print the public half of a signing key, and its key id",
				ArgsUsage: "FILE",
				Description: `Prints the public half (SPKI PEM) of a signing key on stdout, and its key
id (the hex SHA-256 of the public key's DER encoding) on stderr: what receipt verify --key,
catalog rebuild --trust-key and openssl take. The private key is not
printed.

Examples:
   pgattest key public sign.pem > sign.pub.pem
   openssl pkey -in sign.pem -pubout        # the same public key

Exit codes: 0 printed; 1 it could not be read; 2 not a usable key (mode,
format).`,
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("pgattest key public sign.pem > sign.pub.pem", "key public takes the private key's file")
					}
					o.file = c.Args().First()
					return runKeyPublic(c.Context, e, o)
				},
			},
		},
	}
}

func runKeyGenerate(ctx context.Context, e *env, o keyOptions) error {
	pemBytes, s, err := receipt.Generate()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(o.out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageErrorf("choose another file, or remove that one if its key is no longer wanted", "%s exists: a key is never overwritten", o.out)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		os.Remove(o.out)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(o.out)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	e.stdout.Write(receipt.PublicPEM(s.Pub)) // stdout: the public key alone, for > FILE
	fmt.Fprintf(e.stderr, "key id %s\nwrote the private key to %s (0600); give auditors the public key (pgattest key public %s)\n", s.KeyID, o.out, o.out)
	return nil
}

func runKeyPublic(ctx context.Context, e *env, o keyOptions) error {
	s, err := receipt.LoadSigner(o.file)
	var ke *receipt.KeyError
	if errors.As(err, &ke) {
		return usageErrorf(ke.Hint(), "%v", err)
	}
	if err != nil {
		return err
	}
	e.stdout.Write(receipt.PublicPEM(s.Pub)) // stdout: the public key alone, for > FILE
	fmt.Fprintf(e.stderr, "key id %s\n", s.KeyID)
	return nil
}
