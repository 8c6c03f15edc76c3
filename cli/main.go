// Package cli is pgattest's command line: flags, environment variables,
// terminal output (text and --json) and exit codes. Each command lives in its
// own file (cmd_*.go) with an options struct and a run function; the work
// itself happens in the pipeline, verify and catalog packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"github.com/pgattest/pgattest/pipeline"
)

// Version is pgattest's version, set at build time with
// -ldflags "-X github.com/pgattest/pgattest/cli.Version=…".
var Version = "dev"

// env is what every command gets: where to write, and the global flags.
type env struct {
	stdout, stderr io.Writer
	json           bool // one JSON document on stdout, nothing else there
	quiet          bool // no progress, only errors and the result
	verbose        bool // tool output, command lines (redacted), head hashes
	catalogPath    string
	interactive    bool // stderr is a terminal: live progress lines
	// stdout and stderr show control bytes escaped (termsafe.go);
	// rawStderr is for the live progress line's own \r and erase.
	rawStderr io.Writer
	// red knows the secrets (PGPASSWORD, passwords in connection strings):
	// the pipeline passes text from outside through it (tools' output,
	// driver errors, what the user typed) before it reaches an error or a
	// log line. pgattest's own output (JSON, tables, IDs, digests) is never
	// rewritten: no secret is ever put into it.
	red *pipeline.Redactor
}

// Main runs pgattest with args (args[0] is the program name) and returns the
// exit code. Tests call it in-process; main.go passes the result to os.Exit.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The secrets text from outside is cleaned of: PGPASSWORD now,
	// passwords in connection strings as soon as they are parsed.
	red := &pipeline.Redactor{}
	red.Add(os.Getenv("PGPASSWORD"))
	out := &countingWriter{w: stdout}
	e := &env{stderr: &termSafe{w: stderr}, rawStderr: stderr, red: red, interactive: isTerminal(stderr)}
	safeOut := &termSafe{w: out, off: func() bool { return e.json }}
	e.stdout = safeOut
	defer safeOut.Flush()
	defer e.stderr.(*termSafe).Flush()
	app := newApp(e)
	err := app.RunContext(ctx, normalizeArgs(app, args))
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) && strings.TrimPrefix(err.Error(), "interrupted: ") == context.Canceled.Error() {
			err = errors.New("interrupted") // not the words of Go's context package
		}
		if ctx.Err() != nil && !errors.Is(err, errProofFailed) {
			// An error that already tells what the interruption left (a
			// restore) keeps its words; others say nothing was recorded.
			hint := hintOf(err)
			if hint == "" {
				hint = "nothing was recorded for the interrupted run; run the command again"
			}
			if !strings.Contains(err.Error(), "interrupted") {
				err = fmt.Errorf("interrupted: %w", err)
			}
			err = withHint(err, hint)
		}
		printError(e.stderr, err)
		if e.json && out.n == 0 {
			writeJSON(stdout, jsonError{Error: err.Error(), Hint: hintOf(err), ExitCode: exitCode(err)})
		}
	}
	return exitCode(err)
}

// countingWriter tells whether a command printed anything on stdout.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func init() {
	// -v is --verbose here, as in restic; the version is only --version.
	ucli.VersionFlag = &ucli.BoolFlag{Name: "version", Usage: "print the version"}
}

func newApp(e *env) *ucli.App {
	app := &ucli.App{
		Name:      "pgattest",
		Usage:     "PostgreSQL backups that prove themselves",
		Version:   Version,
		Writer:    e.stdout,
		ErrWriter: e.stderr,
		Description: `pgattest dumps a database with pg_dump, hashes the archive with BLAKE3 while
it is written, lists its contents with pg_restore -l, restores it into a
throwaway local Postgres to prove that it restores, and records the evidence
in a catalog. Later it answers: which proven backup stood on a date
(restore --as-of), did every night produce one (audit), has anything been
altered (catalog verify).

Start here:
   pgattest demo                                   the whole pipeline on a sample database
   pgattest backup --db "$DATABASE_URL"            a proven backup of your database
   pgattest list                                   what the catalog holds

Exit codes:
   0  success
   1  failure (connection, I/O, a tool missing, …)
   2  usage error (bad flag or argument)
   3  proof failed or evidence of damage (digest mismatch, restore error,
      damaged catalog or broken chain, audit gap)`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "catalog", Usage: "catalog file", EnvVars: []string{"PGATTEST_CATALOG"}, Value: defaultCatalogPath(), Destination: &e.catalogPath},
			&ucli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout and nothing else there", Destination: &e.json},
			&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress, only the result and errors", Destination: &e.quiet},
			&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print tool output, command lines and the catalog's head hash", Destination: &e.verbose},
		},
		Before: func(c *ucli.Context) error {
			e.interactive = e.interactive && !e.quiet
			return nil
		},
		Commands: []*ucli.Command{
			backupCommand(e),
			listCommand(e),
			showCommand(e),
			tocCommand(e),
			verifyCommand(e),
			restoreCommand(e),
			reencryptCommand(e),
			auditCommand(e),
			pruneCommand(e),
			catalogCommand(e),
			keyCommand(e),
			receiptCommand(e),
			demoCommand(e),
		},
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Suggest:              true,
		OnUsageError: func(c *ucli.Context, err error, _ bool) error {
			return usageErrorf("run 'pgattest --help' or 'pgattest COMMAND --help'", "%v", err)
		},
		ExitErrHandler: func(*ucli.Context, error) {}, // Main decides exit codes, not urfave/cli
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("run 'pgattest --help' for the list of commands", "no command %q", c.Args().First())
			}
			return ucli.ShowAppHelp(c)
		},
	}
	// Usage errors inside commands (bad flags) also exit 2.
	for _, cmd := range app.Commands {
		setUsageHandler(cmd)
	}
	return app
}

func setUsageHandler(cmd *ucli.Command) {
	name := cmd.Name
	cmd.OnUsageError = func(c *ucli.Context, err error, _ bool) error {
		return usageErrorf(fmt.Sprintf("run 'pgattest %s --help'", name), "%v", err)
	}
	for _, sub := range cmd.Subcommands {
		setUsageHandler(sub)
	}
}

// defaultCatalogPath is $XDG_DATA_HOME/pgattest/catalog.db, or
// ~/.local/share/pgattest/catalog.db.
func defaultCatalogPath() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "pgattest", "catalog.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "pgattest", "catalog.db")
	}
	return "pgattest-catalog.db"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
