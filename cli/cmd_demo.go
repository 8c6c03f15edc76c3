package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// demoOptions are demo's flags.
type demoOptions struct {
	dir string
}

func demoCommand(e *env) *ucli.Command {
	var o demoOptions
	return &ucli.Command{
		Name:      "demo",
		Usage:     "run the whole pipeline on a throwaway sample database",
		ArgsUsage: " ",
		Description: `Starts a throwaway PostgreSQL with a sample shop database (schemas, enum and
domain types, foreign keys, a partitioned table, views, a materialized view,
functions, a trigger, a large object, two owner roles, GRANTs, ~186,000 rows),
backs it up into ./pgattest-demo/ with its own catalog there, proves it,
lists it, and removes the throwaway server. It never touches your catalog
(--catalog is ignored) and can be run again and again.

Needs the PostgreSQL server binaries (Debian: apt-get install postgresql).

Examples:
   pgattest demo
   pgattest demo --dir /tmp/pgattest-demo
   pgattest --json demo | jq .proofs[0].rows`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "dir", Usage: "folder for the demo's archives and catalog", Value: "pgattest-demo", Destination: &o.dir},
		},
		Action: func(c *ucli.Context) error {
			if err := noArgs(c, "demo", "run 'pgattest demo' alone"); err != nil {
				return err
			}
			return runDemo(c.Context, e, o)
		},
	}
}

func runDemo(ctx context.Context, e *env, opts demoOptions) error {
	dir := opts.dir
	p := newProgress(e)
	tc, err := testenv.Find(testenv.Want{Tools: testenv.ServerTools})
	if err != nil {
		return withHint(fmt.Errorf("the demo needs a PostgreSQL server to play the source: %w", err),
			"install the server binaries (Debian/Ubuntu: apt-get install postgresql), or pass their folder in PATH")
	}
	p.line("pgattest demo: starting a throwaway PostgreSQL %s as the source, with a sample shop database", tc.Version)
	var b [12]byte
	rand.Read(b[:])
	password := hex.EncodeToString(b[:]) // exercises the password path; never shown
	e.red.Add(password)
	t0 := time.Now()
	src, err := testenv.Start(ctx, testenv.Options{Toolchain: tc, Password: password, Superuser: testenv.Superuser})
	if err != nil {
		return fmt.Errorf("start the demo source: %w", err)
	}
	defer src.Stop(context.Background())
	if err := testenv.LoadSample(ctx, src, "shop"); err != nil {
		return fmt.Errorf("load the sample database: %w", err)
	}
	p.line("  source    ready in %s", formatDuration(time.Since(t0)))

	catPath := filepath.Join(dir, "catalog.db")
	o := pipeline.Options{
		DB: src.URL("shop", "", password), Name: "shop-demo", Dir: filepath.Join(dir, "backups"),
		Compress: 1, Verify: verify.ModeRestore, CatalogPath: catPath,
		Labels: map[string]string{"demo": "true"},
	}
	res, err := backupWith(ctx, e, o)
	if err != nil || e.json {
		return err
	}
	if !e.quiet {
		cat, err := catalog.Open(catPath, catalog.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		recs, err := cat.List(catalog.Query{Limit: 10})
		cat.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\nThe demo catalog %s now holds:\n", catPath)
		printRecords(e.stdout, recs)
	}
	self := selfName()
	fmt.Fprintf(e.stdout, "\nProven: %s restored into a throwaway Postgres with every row counted. Next, your own database:\n", filepath.Base(res.Record.Archive.Path))
	fmt.Fprintf(e.stdout, "  %s backup --db \"postgresql://USER@HOST/DB?sslmode=require\"   then   %s list\n", self, self)
	return nil
}

// selfName is how the user ran us: "go run ." from a go-build folder, else
// "pgattest".
func selfName() string {
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		return "go run ."
	}
	return "pgattest"
}
