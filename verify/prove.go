package verify

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
)

// Mode is how much a proof does.
type Mode string

// Proof modes.
const (
	ModeRestore Mode = "restore" // restore into a throwaway cluster and count rows
	ModeRead    Mode = "read"    // read the whole archive through pg_restore -f /dev/null
	ModeHash    Mode = "hash"    // only re-hash and compare the digest
	ModeNone    Mode = "none"    // no proof at all
)

// ParseMode accepts "restore", "read", "hash" or "none".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeRestore, ModeRead, ModeHash, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("unknown proof mode %q (want restore, read or none)", s)
}

// ProofDB is the database an archive is restored into in the throwaway
// cluster.
const ProofDB = "pgattest_proof"

// Options for Prove.
type Options struct {
	Archive string
	// ArchiveFile, when set, is the custom-format archive, open: pg_restore
	// reads it as /dev/fd/3 (the very file the caller wrote or checked),
	// never by a name that another user could replace meanwhile. Archive
	// then only names it in messages.
	ArchiveFile *os.File
	Format      string // FormatCustom or FormatDirectory
	Mode        Mode
	Jobs        int // parallel restore of a directory-format archive when > 1

	// Digest, when set, is the recorded BLAKE3: the archive is re-hashed and
	// must match before anything else.
	Digest string

	// Client runs pg_restore.
	Client testenv.Toolchain
	// Cluster is a running throwaway cluster to restore into; nil starts one
	// with ClusterOptions (and stops it after).
	Cluster        *testenv.Cluster
	ClusterOptions testenv.Options

	// TOC and Facts, when known (the pipeline has read them), are not read
	// again.
	TOC   *TOC
	Facts *SchemaFacts

	// Superusers are the archive's roles that were superusers on the
	// source, and Memberships the memberships among its roles there: the
	// proof makes the memberships, and makes each superuser a member of
	// the archive's other roles (never a superuser), so that what such a
	// role owns (a SECURITY DEFINER function) reads what it read there.
	Superusers  []string
	Memberships []Membership

	// SkipExtensions are extensions the proof may leave out when the proving
	// Postgres lacks them, with every entry that needs them (Report.Skipped
	// lists what was left out). Any other missing extension fails the proof.
	SkipExtensions []string

	// Need is about how much room a proof of the archive needs on disk
	// (the source's size at backup; 0 when not known): a proof stopped by
	// a full disk says so (ShortageError).
	Need int64

	// Log receives pg_restore's stderr, line by line.
	Log func(line string)

	// Scratch is a private folder for list files (default: the temp folder).
	Scratch string
}

// Report is the outcome of one proof.
type Report struct {
	Mode      Mode
	Passed    bool
	Failure   error // why the archive failed the proof; nil when it passed
	StartedAt time.Time
	Duration  time.Duration

	DigestChecked bool
	Digest        Digest
	TOC           *TOC
	Facts         SchemaFacts

	Tables         []TableCount // exact row counts after the restore
	Rows           int64
	ServerVersion  string   // of the throwaway cluster
	RestoreVersion string   // of pg_restore
	FailedEntry    string   // the TOC entry that broke, when known
	Skipped        []string // what the proof knowingly left out, and why
	Created        []string // what pgattest made itself before the restore (extensions), not the archive
	Streamed       bool     // restored from the dump's stream (Stream), not from the file
	Isolation      Isolation

	// cluster is the proof's server, once it runs; need is Options.Need.
	// A failure that they show was the machine's (shortage) is no verdict.
	cluster *testenv.Cluster
	need    int64

	// extensionRows are the rows the local installation put into the
	// extensions' configuration tables that the archive fills, counted
	// before the restore: the proof counts only the archive's.
	extensionRows map[[2]string]int64
}

// TableCount is a restored table and its exact row count.
type TableCount struct {
	Schema string
	Name   string
	Rows   int64
}

// Prove checks an archive as o.Mode says. The returned error is for a proof
// that could not be carried out (no server binaries, cancelled); a proof
// that ran and found the archive wanting is a Report with Passed false and
// Failure set (errors that report ProofFailed).
func Prove(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Mode: o.Mode, StartedAt: time.Now().UTC(), TOC: o.TOC, need: o.Need}
	if o.Client.Dir != "" { // a hash-only proof runs no pg_restore
		rep.RestoreVersion = o.Client.Version.String()
	}
	defer func() { rep.Duration = time.Since(rep.StartedAt) }()
	fail := func(err error) (*Report, error) { return rep.failed(ctx, err) }
	if o.Scratch == "" {
		o.Scratch = os.TempDir()
	}

	if o.Digest != "" {
		d, err := CheckDigest(o.Archive, o.Format, o.Digest)
		rep.Digest = d
		if err != nil {
			return fail(err)
		}
		rep.DigestChecked = true
	}
	switch o.Mode {
	case ModeNone, ModeHash:
		rep.Passed = o.Mode == ModeHash
		return rep, nil
	case ModeRead:
		if err := readThrough(ctx, o); err != nil {
			return fail(err)
		}
		rep.Passed = true
		return rep, nil
	case ModeRestore:
	default:
		return rep, fmt.Errorf("unknown proof mode %q", o.Mode)
	}

	if rep.TOC == nil {
		toc, err := ReadTOC(ctx, o.Client.Path("pg_restore"), o.Archive)
		if err != nil {
			return fail(err)
		}
		rep.TOC = toc
	}
	if o.Facts != nil {
		rep.Facts = *o.Facts
	} else {
		rep.Facts = FactsOf(rep.TOC)
	}

	c := o.Cluster
	if c == nil {
		var err error
		co := o.ClusterOptions
		co.NoNetwork = true
		if c, err = testenv.Start(ctx, co); err != nil {
			return rep, shortage(fmt.Errorf("start throwaway cluster for the proof: %w", err), nil, "", o.Need)
		}
		defer c.Stop(context.Background())
	}
	rep.ServerVersion = c.Toolchain.Version.String()
	rep.cluster = c

	set, err := prepareProof(ctx, o, c, rep)
	if ProofFailed(err) { // a missing extension
		return fail(err)
	} else if err != nil {
		return rep, shortage(err, c, rep.Isolation.RestoreRole, o.Need)
	}
	if err := restore(ctx, o, c, set); err != nil {
		return fail(explainSuperuser(err, rep.TOC, o.Superusers, loggedBy(c, set.restorer)))
	}
	return rep.counted(ctx, c)
}

// counted ends a restore that succeeded: every table's rows are counted in
// the proof database, and the proof passes.
func (rep *Report) counted(ctx context.Context, c *testenv.Cluster) (*Report, error) {
	tables, err := countRows(ctx, c.ConnString(ProofDB), rep.extensionRows)
	if err != nil {
		return rep.failed(ctx, fmt.Errorf("count rows after restore: %w", err))
	}
	rep.Tables = tables
	for _, t := range tables {
		rep.Rows += t.Rows
	}
	rep.Passed = true
	return rep, nil
}

// failed marks the report as a proof that ran and found the archive
// wanting (naming the TOC entry that broke, when known). What is no
// verdict is returned as the error instead: a cancelled context, a proof
// the machine stopped (a *ShortageError: a full disk, no memory, a server
// killed), and a superuser's function the proof would not run as one (a
// *SuperuserFunctionError).
func (rep *Report) failed(ctx context.Context, err error) (*Report, error) {
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if s := shortage(err, rep.cluster, rep.Isolation.RestoreRole, rep.need); errors.Is(s, ErrShortage) {
		return rep, s
	}
	if sf := (*SuperuserFunctionError)(nil); errors.As(err, &sf) {
		return rep, err // pgattest would not run it as a superuser: no verdict
	}
	rep.Failure = err
	var re *RestoreError
	if errors.As(err, &re) {
		rep.FailedEntry = re.Entry
	}
	return rep, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var (
	reTOCEntry   = regexp.MustCompile(`^pg_restore: from TOC entry (.*)$`)
	reError      = regexp.MustCompile(`^pg_restore: error: (.*)$`)
	reProcessing = regexp.MustCompile(`^pg_restore: processing data for table "(.*)`)
	// A server's CONTEXT names the functions it was in: `PL/pgSQL function
	// public.f(integer) line 3 at RETURN`, `SQL function "f" statement 1`.
	reContextFunction = regexp.MustCompile(`PL/pgSQL function ([^ ]+\([^)]*\)) line|SQL function "([^"]+)"`)
	incompleteRE      = regexp.MustCompile(`end of file|could not find block ID|could not open input file|could not read input file|unexpected EOF|file is too short`)
)

// restore runs pg_restore into the proof database, as the restoring role
// and in the sandbox, with the planned entries only, and turns its stderr
// into a *RestoreError or *IncompleteError when it fails.
func restore(ctx context.Context, o Options, c *testenv.Cluster, set *setup) error {
	args, parallel := restoreArgs(o, c, set.restorer)
	list, remove, err := restoreList(o.Scratch, set.keep)
	if err != nil {
		return err
	}
	defer remove()
	arg, files := o.archiveArg()
	args = append(args, "-L", list, arg)
	var st restoreState
	err = runToolIn(ctx, set.sandbox, o.Client.Path("pg_restore"), args, nil, files, func(line string) {
		st.observe(line)
		if o.Log != nil {
			o.Log(line)
		}
	})
	if err != nil {
		return st.failure(err)
	}
	if !parallel {
		return st.readAll(set.keep)
	}
	return nil
}

// restoreArgs are pg_restore's options for a proof: stop at the first
// error, into the proof database as the restoring role, without
// tablespaces (the proof has none); in one transaction (with wal_level
// minimal, COPY into a table made in the same transaction writes no WAL),
// or in parallel jobs for a directory-format archive.
func restoreArgs(o Options, c *testenv.Cluster, restorer string) (args []string, parallel bool) {
	args = []string{"--exit-on-error", "--verbose", "--no-password", "--no-tablespaces", "-d", c.ConnStringAs(ProofDB, restorer)}
	parallel = o.Jobs > 1 && o.Format == FormatDirectory
	if parallel {
		args = append(args, "--jobs", fmt.Sprint(o.Jobs))
	} else {
		args = append(args, "--single-transaction")
	}
	return args, parallel
}

// readAll is defense in depth after a restore in one job: pg_restore said
// it processed the data of every table in the entries.
func (s *restoreState) readAll(entries []Entry) error {
	want := 0
	for _, e := range entries {
		if e.Type == "TABLE DATA" {
			want++
		}
	}
	if s.processed < want {
		tables := "tables"
		if want == 1 {
			tables = "table"
		}
		return &IncompleteError{Detail: fmt.Sprintf("pg_restore read data for %d of the %d %s in the table of contents", s.processed, want, tables)}
	}
	return nil
}

type restoreState struct {
	entry, lastTable string
	errors           []string
	command          string
	inCommand        bool
	processed        int
	// inError: the lines after an error are the server's (LINE, QUERY,
	// CONTEXT …) until pg_restore speaks again; functions are the ones
	// its CONTEXT names.
	inError   bool
	functions []string
}

func (s *restoreState) observe(line string) {
	switch {
	case reTOCEntry.MatchString(line):
		s.entry = reTOCEntry.FindStringSubmatch(line)[1]
		s.inCommand, s.inError = false, false
	case reError.MatchString(line):
		s.errors = append(s.errors, strings.TrimSpace(reError.FindStringSubmatch(line)[1]))
		s.inCommand, s.inError = false, true
		s.functions = nil
	case s.inError && !strings.HasPrefix(line, "pg_restore:") && !strings.HasPrefix(line, "Command was: "):
		for _, m := range reContextFunction.FindAllStringSubmatch(line, -1) {
			s.functions = append(s.functions, m[1]+m[2])
		}
	case reProcessing.MatchString(line):
		// The name as pg_restore prints it, unquoted: a name may hold a
		// newline, and then the line ends inside it.
		s.lastTable = strings.TrimSuffix(reProcessing.FindStringSubmatch(line)[1], `"`)
		s.processed++
	case strings.HasPrefix(line, "Command was: "):
		s.command = strings.TrimPrefix(line, "Command was: ")
		s.inCommand, s.inError = true, false
	}
}

func (s *restoreState) failure(runErr error) error {
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) && len(s.errors) == 0 {
		return runErr // pg_restore did not run (it could not start): no verdict
	}
	msg := strings.Join(s.errors, "; ")
	if incompleteRE.MatchString(msg) {
		d := msg
		if s.lastTable != "" {
			d = fmt.Sprintf("%s (while reading data for table %s)", msg, s.lastTable)
		}
		return &IncompleteError{Detail: d}
	}
	msg = strings.TrimPrefix(msg, "could not execute query: ")
	return &RestoreError{Entry: s.entry, Message: msg, Command: s.command, Exit: exitText(runErr), Functions: s.functions, Table: s.lastTable}
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return err.Error()
}

// readThrough runs pg_restore -f /dev/null: every byte of the archive is
// read and decompressed, nothing is restored.
func readThrough(ctx context.Context, o Options) error {
	var st restoreState
	arg, files := o.archiveArg()
	err := runToolIn(ctx, testenv.Sandbox{}, o.Client.Path("pg_restore"), []string{"-f", os.DevNull, arg}, nil, files, func(line string) {
		st.observe(line)
		if o.Log != nil {
			o.Log(line)
		}
	})
	if err != nil {
		return st.failure(err)
	}
	return nil
}

// RunRestore runs pg_restore with args (target, options, archive: the
// caller's), in env (nil: no PG* variables of the user's), streaming its
// stderr to log. A failure is a *RestoreError naming the TOC entry that
// broke and quoting Postgres, or an *IncompleteError.
func RunRestore(ctx context.Context, pgRestore string, args, env []string, log func(string)) error {
	var st restoreState
	err := runToolEnv(ctx, pgRestore, args, env, func(line string) {
		st.observe(line)
		if log != nil {
			log(line)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return st.failure(err)
	}
	return nil
}

// RunRestoreFrom is RunRestore reading the archive from stdin (args name
// no file). A read error of stdin stops pg_restore (the caller cancels ctx
// first when pg_restore must not go on), and is returned as it is.
func RunRestoreFrom(ctx context.Context, pgRestore string, args, env []string, stdin io.Reader, log func(string)) error {
	var st restoreState
	var readErr error
	cmd := toolCommand(ctx, testenv.Sandbox{}, pgRestore, args, env)
	cmd.Stdin = readerFunc(func(p []byte) (int, error) {
		n, err := stdin.Read(p)
		if err != nil && err != io.EOF {
			readErr = err
		}
		return n, err
	})
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", pgRestore, err)
	}
	StreamLines(stderr, func(line string) {
		st.observe(line)
		if log != nil {
			log(line)
		}
	})
	err = cmd.Wait()
	switch {
	case readErr != nil:
		return readErr
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return st.failure(err)
	}
	return nil
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// runTool runs a client tool with stderr streamed line by line to onLine.
// Cancelling ctx sends SIGTERM, then SIGKILL after 5 seconds.
func runToolEnv(ctx context.Context, path string, args, env []string, onLine func(string)) error {
	return runToolIn(ctx, testenv.Sandbox{}, path, args, env, nil, onLine)
}

// archiveArg is the archive as pg_restore is to open it: /dev/fd/3 with
// the open file handed over (ArchiveFile), else its path.
func (o Options) archiveArg() (string, []*os.File) {
	if o.ArchiveFile != nil {
		return "/dev/fd/3", []*os.File{o.ArchiveFile}
	}
	return o.Archive, nil
}

// runToolIn runs a tool as runTool does, in the sandbox sb (no network: a
// proof's pg_restore only needs the proof server's Unix socket).
func runToolIn(ctx context.Context, sb testenv.Sandbox, path string, args, env []string, files []*os.File, onLine func(string)) error {
	cmd := toolCommand(ctx, sb, path, args, env)
	cmd.ExtraFiles = files // fd 3 onwards
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	StreamLines(stderr, onLine)
	return cmd.Wait()
}

// toolCommand is how pgattest runs pg_restore, every time: the environment env (nil: no
// PG* variable of the user's), SIGTERM on cancel, never outliving a killed
// pgattest, in sb.
func toolCommand(ctx context.Context, sb testenv.Sandbox, path string, args, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	if env == nil {
		cmd.Env = toolEnv()
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed pgattest
	sb.Apply(cmd.SysProcAttr)
	return cmd
}

// StreamLines calls fn for every line read from r until EOF.
func StreamLines(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		fn(sc.Text())
	}
	io.Copy(io.Discard, r)
}

// toolEnv is the environment for pg_restore in a proof, and pg_restore -l:
// testenv.ToolEnv, with no PG* variable or secret of the caller's (the
// target is given whole with -d; nothing that reads the archive holds a
// password).
func toolEnv() []string { return testenv.ToolEnv() }

// countRows counts the rows of every table and materialized view in the
// database, a few at a time; the extensions' tables only when they are in
// before, which holds their rows before the restore: those are taken off.
//
// It runs as the cluster's superuser, after the restore: a superuser
// bypasses row-level security (so no policy of the archive's runs and the
// counts are whole), and the search path is pg_catalog alone, so no
// function or operator the archive made can stand in for a built-in.
func countRows(ctx context.Context, connString string, before map[[2]string]int64) ([]TableCount, error) {
	connect := func() (*pgx.Conn, error) {
		cfg, err := pgx.ParseConfig(connString)
		if err != nil {
			return nil, err
		}
		cfg.RuntimeParams["client_encoding"] = "UTF8"
		cfg.RuntimeParams["search_path"] = "pg_catalog"
		// The archive's code may have set the database's defaults (ALTER
		// DATABASE … SET role, as its owner): what the session asks for
		// wins over them, so the count runs as the superuser, bypassing
		// row-level security, with no timeout of the archive's.
		cfg.RuntimeParams["role"] = "none"
		cfg.RuntimeParams["row_security"] = "on"
		cfg.RuntimeParams["statement_timeout"] = "0"
		cfg.RuntimeParams["lock_timeout"] = "0"
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
		return pgx.ConnectConfig(ctx, cfg)
	}
	conn, err := connect()
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'm') AND c.relispopulated
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
		  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
		                  AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 1, 2`)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	var tables []TableCount
	for rows.Next() {
		var t TableCount
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			conn.Close(ctx)
			return nil, err
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	for k := range before {
		tables = append(tables, TableCount{Schema: k[0], Name: k[1]})
	}
	slices.SortFunc(tables, func(a, b TableCount) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	workers := min(4, len(tables))
	conns := []*pgx.Conn{conn}
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for len(conns) < workers {
		c, err := connect()
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(tables))
	next := make(chan int)
	for _, c := range conns {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			for i := range next {
				q := "SELECT pg_catalog.count(*) FROM ONLY " + pgx.Identifier{tables[i].Schema, tables[i].Name}.Sanitize()
				errs[i] = c.QueryRow(ctx, q).Scan(&tables[i].Rows)
			}
		}(c)
	}
	for i := range tables {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, t := range tables {
		tables[i].Rows -= before[[2]string{t.Schema, t.Name}]
	}
	return tables, errors.Join(errs...)
}
