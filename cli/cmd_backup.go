package cli

import (
	"errors"
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

func backupCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "backup",
		Usage:     "dump a database, hash it, prove it restores, record it",
		ArgsUsage: " ",
		Description: `Runs pg_dump (custom format; directory format with --jobs N > 1), hashes the
archive with BLAKE3 while it is written, lists its contents with pg_restore -l,
restores it into a throwaway local Postgres and counts every table's rows, then
records the evidence in the catalog and writes DIR/NAME/NAME-<UTC time>.dump
with a .manifest.json beside it. Nothing reaches its final name before the
proof: a failed or interrupted run leaves no archive and no record.

With --repo s3://BUCKET/PREFIX the archive streams to the bucket while pg_dump
writes it (a multipart upload, each part checked by the store; no copy of the
archive on this machine) and becomes visible, with its manifest, only once it
is proven and recorded; a failed or killed run's upload is aborted. The
credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or
AWS_PROFILE), the store from AWS_ENDPOINT_URL_S3 when it is not AWS: R2, B2,
MinIO, Ceph …; restore, verify and prune then find it from its record.

With --encrypt-to (or --encrypt-to-file) the archive is stored encrypted with
age, as NAME-<UTC time>.dump.age: the proof restores the plaintext stream
before it is encrypted, and no plaintext archive touches the disk or the
store. restore, verify and toc --live then need --identity; age -d -i KEY
NAME.dump.age | pg_restore … works without pgattest.

The connection comes from --db, else DATABASE_URL, else libpq's PG* variables
(PGHOST, PGUSER, PGPASSWORD, ~/.pgpass …). The password is passed to pg_dump in
its environment, never on its command line, and is never printed or stored.

Examples:
   # Neon: use the direct connection string, not the -pooler one
   pgattest backup --db "postgresql://alex@ep-cool-darkness-a1b2c3d4.eu-central-1.aws.neon.tech/neondb?sslmode=require"

   # a local database, libpq style, parallel dump and restore in 4 jobs
   pgattest backup --db "host=/var/run/postgresql dbname=shop" --jobs 4 --dir /srv/backups

   # the archive needs PostGIS, which this machine's Postgres lacks: prove the rest
   pgattest backup --db "$GIS_URL" --verify-skip-extension postgis

   # off the machine: streamed to a bucket, locked for 35 days (README, "S3")
   AWS_PROFILE=backup pgattest backup --db "$DATABASE_URL" --repo s3://acme-backups/pg --lock-days 35

   # encrypted at rest: this host holds only the public key (README, "Encryption")
   pgattest backup --db "$DATABASE_URL" --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p

   # nightly from cron, with labels and only errors on the terminal
   DATABASE_URL=... pgattest -q backup --name shop-prod --label env=prod

A name holds one source: the server's own answer (its system identifier,
else the database's OID, name and port) is recorded, and a backup of another
source under a name already taken is refused (exit 2) unless --force-name.

The proof's throwaway Postgres keeps its data (with --encrypt-to, the rows
in plaintext, while the proof runs) in the temp folder (TMPDIR), or in
PGATTEST_PROOF_DIR when set (a memory disk or an encrypted volume): it needs
about the source database's size there. A proof the machine stops
(a full disk, no memory, a process killed) is no verdict on the archive: the
backup is recorded unverified and the hint says what ran short and where.

Exit codes: 0 proven; 1 failure, nothing recorded (or recorded unverified:
the proof could not run, or the machine ran short); 2 usage error; 3 the
archive failed its proof (recorded as failed), or the catalog is damaged.
--verify read and none record unverified: only a restore proves a backup.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "db", Usage: "connection string: postgresql://… URL or libpq key=value", EnvVars: []string{"DATABASE_URL"}},
			&ucli.StringFlag{Name: "name", Usage: "name the backups of this database are filed under (default: database@host, and +port unless 5432); a name holds one source only"},
			&ucli.BoolFlag{Name: "force-name", Usage: "record under --name although its earlier backups are of another source (a database moved to a new server)"},
			&ucli.StringFlag{Name: "dir", Usage: "folder for archives (NAME/ is made inside)", EnvVars: []string{"PGATTEST_DIR"}, Value: "backups"},
			&ucli.StringFlag{Name: "repo", Usage: "where archives go instead of --dir: `s3://BUCKET[/PREFIX]` (streamed to an S3-compatible store; credentials and endpoint from the AWS variables) or file:///abs/path", EnvVars: []string{"PGATTEST_REPO"}},
			&ucli.IntFlag{Name: "lock-days", Usage: "S3 Object Lock retention of the archive and its manifest, in `DAYS` (the bucket must have Object Lock enabled)"},
			&ucli.StringSliceFlag{Name: "encrypt-to", Usage: "encrypt the archive to this age `RECIPIENT` (age1…, or an SSH ssh-ed25519/ssh-rsa public key); repeatable: any one identity decrypts"},
			&ucli.StringSliceFlag{Name: "encrypt-to-file", Usage: "encrypt to the recipients in this `FILE` (one per line, # comments, as age -R reads)", EnvVars: []string{"PGATTEST_RECIPIENTS_FILE"}},
			&ucli.StringFlag{Name: "sign-key", Usage: "sign the proof's receipt with this ed25519 private key `FILE` (PKCS#8 PEM, 0600; pgattest key generate makes one): a DSSE/in-toto receipt stored beside the archive and in the record, checked offline with the public key (pgattest receipt verify, or openssl)", EnvVars: []string{"PGATTEST_SIGN_KEY"}},
			&ucli.StringFlag{Name: "lock-mode", Usage: "retention mode: governance (a user allowed to bypass it may delete early) or compliance (no one can)", Value: "governance"},
			&ucli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel jobs; > 1 writes a directory-format archive", Value: 1},
			&ucli.IntFlag{Name: "compress", Aliases: []string{"Z"}, Usage: "compression level 0-9 (gzip, as pg_restore reads it); pgattest deflates pg_dump's output on every core (pg_dump compresses with --jobs N). 1 is the fastest; 3 makes archives about a sixth smaller for ~10% more time with the proof (README, Performance)", Value: 1},
			&ucli.StringFlag{Name: "verify", Usage: "proof: restore (into a throwaway Postgres), read (pg_restore reads it through) or none", Value: "restore"},
			&ucli.BoolFlag{Name: "allow-pooled", Usage: "accept a pooled connection (pg_dump needs a direct one)"},
			&ucli.StringSliceFlag{Name: "verify-skip-extension", Usage: "when the proving Postgres lacks extension `NAME`, prove the rest without it (recorded in the proof); repeatable"},
			&ucli.StringSliceFlag{Name: "pg-bin", Usage: "folder with pg_dump, pg_restore (and postgres, initdb); repeatable"},
			&ucli.StringSliceFlag{Name: "label", Usage: "key=value stored with the record; repeatable"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("pass the connection string with --db", "backup takes no arguments, got %q", c.Args().First())
			}
			mode, err := verify.ParseMode(c.String("verify"))
			if err != nil || mode == verify.ModeHash {
				return usageErrorf("use --verify restore, read or none", "--verify %q is not a proof mode for backup", c.String("verify"))
			}
			labels, err := parseLabels(c.StringSlice("label"))
			if err != nil {
				return err
			}
			if c.Int("jobs") < 1 || c.Int("jobs") > 64 {
				return usageErrorf("use --jobs 1 (custom format) up to 64", "--jobs %d is out of range", c.Int("jobs"))
			}
			warnPasswordInArgv(e, "db", c.String("db"), "DATABASE_URL")
			o := pipeline.Options{
				DB: c.String("db"), Name: c.String("name"), Dir: c.String("dir"), Repo: c.String("repo"),
				LockDays: c.Int("lock-days"), LockMode: c.String("lock-mode"),
				EncryptTo: c.StringSlice("encrypt-to"), EncryptToFiles: c.StringSlice("encrypt-to-file"), SignKey: c.String("sign-key"),
				Jobs: c.Int("jobs"), Compress: c.Int("compress"), Verify: mode,
				AllowPooled: c.Bool("allow-pooled"), PGBin: c.StringSlice("pg-bin"), ForceName: c.Bool("force-name"),
				SkipExtensions: c.StringSlice("verify-skip-extension"),
				Labels:         labels, CatalogPath: e.catalogPath,
			}
			_, err = runBackup(c, e, o)
			return err
		},
	}
}

func parseLabels(kvs []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("write labels as --label key=value", "--label %q has no key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}

// runBackup runs the pipeline with progress on stderr and prints the record
// (text or JSON) on stdout, also when the proof failed.
func runBackup(c *ucli.Context, e *env, o pipeline.Options) (*pipeline.Result, error) {
	p := newProgress(e)
	o.Redactor = e.red
	o.Version = Version
	o.OnEvent = p.event
	o.Started = func(src *pipeline.Source) {
		p.line("backing up %s (PostgreSQL %s)", src.Display(), src.ServerVersion.Raw)
	}
	res, err := pipeline.Backup(c.Context, o)
	p.done()
	if res != nil {
		if e.json {
			if jerr := writeJSON(e.stdout, res.Record); jerr != nil {
				return res, jerr
			}
		} else if !e.quiet || err != nil {
			printRecord(e.stdout, res.Record)
		} else { // --quiet: only the result
			fmt.Fprintf(e.stdout, "backup %s %s %s\n", res.Record.ID, strings.ToUpper(res.Record.Status), res.Record.Archive.Path)
		}
		if e.verbose {
			p.line("catalog head: event %d %s", res.Event.Seq, res.Event.Hash)
		}
	}
	return res, err
}

// openCatalog opens the catalog for reading; a missing one is explained.
func openCatalog(e *env) (*catalog.Catalog, error) {
	cat, err := catalog.Open(e.catalogPath, catalog.Options{ReadOnly: true})
	if errors.Is(err, catalog.ErrNoCatalog) {
		return nil, noCatalog(e)
	}
	return cat, err
}

func noCatalog(e *env) error {
	return withHint(fmt.Errorf("no catalog at %s yet", e.catalogPath),
		"run 'pgattest backup' first, or point to a catalog with --catalog PATH (or PGATTEST_CATALOG)")
}
