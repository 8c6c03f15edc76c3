package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

func backupCommand(e *env) *ucli.Command {
	o := backupOptions{}
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
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "db", Usage: "connection string: postgresql://… URL or libpq key=value", EnvVars: []string{"DATABASE_URL"}, Destination: &o.db},
			&ucli.StringFlag{Name: "name", Usage: "name the backups of this database are filed under (default: database@host, and +port unless 5432); a name holds one source only", Destination: &o.name},
			&ucli.BoolFlag{Name: "force-name", Usage: "record under --name although its earlier backups are of another source (a database moved to a new server)", Destination: &o.forceName},
			dirFlag(&o.dir, "folder for archives (NAME/ is made inside)"),
			repoFlag(&o.repo, "where archives go instead of --dir: `s3://BUCKET[/PREFIX]` (streamed to an S3-compatible store; credentials and endpoint from the AWS variables) or file:///abs/path"),
			&ucli.IntFlag{Name: "lock-days", Usage: "S3 Object Lock retention of the archive and its manifest, in `DAYS` (the bucket must have Object Lock enabled)", Destination: &o.lockDays},
			&ucli.StringFlag{Name: "lock-mode", Usage: "retention mode: governance (a user allowed to bypass it may delete early) or compliance (no one can)", Value: "governance", Destination: &o.lockMode},
			signKeyFlag(&o.signKey, "sign the proof's receipt with this ed25519 private key `FILE` (PKCS#8 PEM, 0600; pgattest key generate makes one): a DSSE/in-toto receipt stored beside the archive and in the record, checked offline with the public key (pgattest receipt verify, or openssl)", true),
			jobsFlag(&o.jobs, "parallel jobs; > 1 writes a directory-format archive"),
			&ucli.IntFlag{Name: "compress", Aliases: []string{"Z"}, Usage: "compression level 0-9 (gzip, as pg_restore reads it); pgattest deflates pg_dump's output on every core (pg_dump compresses with --jobs N). 1 is the fastest; 3 makes archives about a sixth smaller for ~10% more time with the proof (README, Performance)", Value: 1, Destination: &o.compress},
			&ucli.StringFlag{Name: "verify", Usage: "proof: restore (into a throwaway Postgres), read (pg_restore reads it through) or none", Value: "restore", Destination: &o.verify},
			allowPooledFlag(&o.allowPooled, "accept a pooled connection (pg_dump needs a direct one)"),
			skipExtensionFlag(&o.skipExtensions),
			pgBinFlag(&o.pgBin, "pg_dump, pg_restore (and postgres, initdb for the proof)"),
			listFlag(&o.labels, "label", "key=value stored with the record; repeatable"),
		}, recipientFlags(&o.recipients, "the archive")...),
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "backup", "pass the connection string with --db"); err != nil {
				return err
			}
			_, err := runBackup(c.Context, e, o)
			return err
		},
	}
}

// backupOptions are backup's flags.
type backupOptions struct {
	db, name, dir, repo   string
	forceName             bool
	lockDays              int
	lockMode              string
	recipients            recipientOptions
	signKey               string
	jobs, compress        int
	verify                string
	allowPooled           bool
	skipExtensions, pgBin []string
	labels                []string
}

// pipeline checks the flags and makes the pipeline's options of them.
func (o backupOptions) pipeline(e *env) (pipeline.Options, error) {
	mode, err := verify.ParseMode(o.verify)
	if err != nil || mode == verify.ModeHash {
		return pipeline.Options{}, usageErrorf("use --verify restore, read or none", "--verify %q is not a proof mode for backup", o.verify)
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return pipeline.Options{}, err
	}
	if o.jobs < 1 || o.jobs > 64 {
		return pipeline.Options{}, usageErrorf("use --jobs 1 (custom format) up to 64", "--jobs %d is out of range", o.jobs)
	}
	return pipeline.Options{
		DB: o.db, Name: o.name, Dir: o.dir, Repo: o.repo,
		LockDays: o.lockDays, LockMode: o.lockMode,
		EncryptTo: o.recipients.to, EncryptToFiles: o.recipients.files, SignKey: o.signKey,
		Jobs: o.jobs, Compress: o.compress, Verify: mode,
		AllowPooled: o.allowPooled, PGBin: o.pgBin, ForceName: o.forceName,
		SkipExtensions: o.skipExtensions,
		Labels:         labels, CatalogPath: e.catalogPath,
	}, nil
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
func runBackup(ctx context.Context, e *env, opts backupOptions) (*pipeline.Result, error) {
	o, err := opts.pipeline(e)
	if err != nil {
		return nil, err
	}
	warnPasswordInArgv(e, "db", opts.db, "DATABASE_URL")
	return backupWith(ctx, e, o)
}

// backupWith runs the pipeline with o (backup's, or the demo's).
func backupWith(ctx context.Context, e *env, o pipeline.Options) (*pipeline.Result, error) {
	p := newProgress(e)
	o.Redactor = e.red
	o.Version = Version
	o.OnEvent = p.event
	o.Started = func(src *pipeline.Source) {
		p.line("backing up %s (PostgreSQL %s)", src.Display(), src.ServerVersion.Raw)
	}
	res, err := pipeline.Backup(ctx, o)
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
