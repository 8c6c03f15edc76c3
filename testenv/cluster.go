package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure a throwaway cluster. The zero value is a fine default:
// the newest installed server, a Unix socket only, trust authentication.
type Options struct {
	// Toolchain runs the server; zero means Find(Want{MinMajor: MinMajor, Dirs: BinDirs}).
	Toolchain Toolchain
	MinMajor  int
	BinDirs   []string

	// Parent is the folder the cluster's own folder is made in (default
	// the temp folder). As root it must be enterable by the postgres user.
	Parent string
	// StrictParent: the cluster goes in Parent or nowhere (a folder the
	// user chose for the proof's data, say an encrypted volume), never in
	// /tmp instead when the server user cannot reach it.
	StrictParent bool
	// CacheDir holds the initdb templates (default $XDG_CACHE_HOME/pgattest).
	CacheDir string
	// Data, when set, is a data folder saved by SaveData to start from
	// instead of a fresh initdb template.
	Data string

	// TCP also listens on 127.0.0.1 (and ::1) on a free port (PgBouncer tests need one).
	TCP bool
	// Port, without TCP, is the number the Unix socket is named by
	// (default 5432): tests that need a socket and a TCP server on one
	// port number.
	Port int
	// TLS also accepts SSL connections on TCP (implies TCP), with a fresh
	// self-signed certificate: for sslmode=require.
	TLS bool
	// Password, when set, becomes the superuser's password and every
	// connection must use scram-sha-256.
	Password string
	// Settings are extra postgresql.conf settings; they win over the defaults.
	Settings map[string]string

	// Superuser names the cluster's bootstrap superuser. Empty means a new
	// random name ("pgattest_su_" and 12 hex digits) that no archive can
	// know beforehand: the proof's clusters use that. Tests' source
	// clusters pass the name they want (Superuser, "rdsadmin", …).
	Superuser string
	// OwnSystemID runs initdb for this cluster instead of copying the
	// template, so its system identifier is its own (clusters copied from
	// one template share theirs, as a primary and its replicas do): for
	// tests of sources told apart by what their servers say.
	OwnSystemID bool
	// NoNetwork starts the server in a network namespace of its own where
	// the kernel allows (see Sandbox): only its Unix socket reaches it.
	// It cannot be combined with TCP.
	NoNetwork bool
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir       string    // the cluster's own folder; Stop removes it
	DataDir   string    // Dir/data
	SocketDir string    // Dir/run, mode 0700
	Port      int       // also names the socket file: SocketDir/.s.PGSQL.<Port>
	TCP       bool      // also listening on 127.0.0.1:Port
	TLS       bool      // TCP connections must use SSL (hostssl)
	Password  string    // the superuser's password, "" for trust
	Toolchain Toolchain // binaries the server runs from
	Superuser string    // the bootstrap superuser's name
	// ServerUser is the system user the server runs as; Network says what
	// network it has ("none (a network namespace of its own)", or the
	// host's and why).
	ServerUser string
	Network    string

	scratch  *Scratch
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	logPath  string
	stopOnce sync.Once
	stopErr  error
}

// ClusterPrefix begins the name of every throwaway cluster's folder.
const ClusterPrefix = "pgattest-pg-"

const clusterPrefix = ClusterPrefix

// fastSettings trade durability for speed: a throwaway cluster never has to
// survive a crash.
var fastSettings = map[string]string{
	"fsync":                "off",
	"synchronous_commit":   "off",
	"full_page_writes":     "off",
	"wal_level":            "minimal",
	"max_wal_senders":      "0",
	"autovacuum":           "off",
	"maintenance_work_mem": "256MB",
	// A proof restores in one transaction, which locks every table, index
	// and sequence it makes: room for ~100,000 of them (the default's
	// 6,400 runs "out of shared memory" on a large schema).
	"max_locks_per_transaction":  "1024",
	"max_wal_size":               "4GB",
	"checkpoint_timeout":         "1h",
	"logging_collector":          "on", // the CSV log: serverlog.go
	"log_destination":            "csvlog",
	"log_directory":              "log",
	"log_filename":               "postgresql.log",
	"log_rotation_age":           "0",
	"log_rotation_size":          "0",
	"log_error_verbosity":        "verbose", // where in the server an error was raised
	"unix_socket_permissions":    "0700",
	"log_min_messages":           "warning",
	"log_min_error_statement":    "panic",
	"lc_messages":                "C",
	"dynamic_shared_memory_type": "posix",
	"huge_pages":                 "off",
}

// Start starts a new throwaway cluster and waits until it accepts
// connections. Clusters left behind by killed processes in the same parent
// folder are removed first.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	tc := o.Toolchain
	if tc.Dir == "" {
		if tc, err = Find(Want{Tools: ServerTools, MinMajor: o.MinMajor, Dirs: o.BinDirs}); err != nil {
			return nil, err
		}
	}
	as, err := serverUser()
	if err != nil {
		return nil, err
	}
	if o.CacheDir == "" {
		o.CacheDir = CacheDir()
	}
	if o.Parent == "" {
		o.Parent = os.TempDir()
	}
	if o.StrictParent {
		if as != nil && !as.reachable(o.Parent) {
			return nil, fmt.Errorf("the throwaway server runs as %q, which cannot enter %s: let it in (chmod o+x on the folder and those above it) or name another folder", as.name, o.Parent)
		}
	} else if o.Parent, err = clusterParent(o.Parent, as); err != nil {
		return nil, err
	}
	if o.NoNetwork && (o.TCP || o.TLS) {
		return nil, errors.New("a cluster without network cannot listen on TCP")
	}
	from := o.Data
	switch {
	case from != "":
	case o.OwnSystemID: // initdb of its own: a system identifier no other cluster shares
		sc, err := initdbScratch(ctx, tc, as)
		if err != nil {
			return nil, err
		}
		defer sc.Remove()
		from = filepath.Join(sc.Dir, "data")
	default: // a fresh cluster: a copy of the cached initdb template
		tmpl, err := template(ctx, tc, o.CacheDir, as)
		if err != nil {
			return nil, err
		}
		from = filepath.Join(tmpl, "data")
	}
	initial, err := savedSuperuser(from)
	if err != nil {
		return nil, err
	}
	want := o.Superuser
	if want == "" {
		want = RandomName("pgattest_su_")
	}
	SweepScratch(o.Parent, clusterPrefix, stopLeftover)

	sc, err := NewScratch(o.Parent, clusterPrefix)
	if err != nil {
		return nil, err
	}
	c = &Cluster{
		Dir:       sc.Dir,
		DataDir:   filepath.Join(sc.Dir, "data"),
		SocketDir: filepath.Join(sc.Dir, "run"),
		TCP:       o.TCP,
		Password:  o.Password,
		Toolchain: tc,
		Superuser: initial,
		scratch:   sc,
		logPath:   filepath.Join(sc.Dir, "postgres.log"),
	}
	defer func() {
		if err != nil {
			c.Stop(context.Background())
			c = nil
		}
	}()
	if err := as.own(sc.Dir); err != nil {
		return c, err
	}
	if err := copyTree(c.DataDir, from, as); err != nil {
		return c, fmt.Errorf("copy template into %q: %w", c.DataDir, err)
	}
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return c, err
	}
	if err := as.own(c.SocketDir); err != nil {
		return c, err
	}
	c.Port = 5432
	if o.Port != 0 {
		c.Port = o.Port
	}
	if o.TLS {
		o.TCP, c.TCP, c.TLS = true, true, true
		if err := c.writeTLS(as); err != nil {
			return c, fmt.Errorf("write TLS certificate: %w", err)
		}
		settings := map[string]string{"ssl": "on"}
		for k, v := range o.Settings { // the caller's map stays as it was
			settings[k] = v
		}
		o.Settings = settings
	}
	if o.TCP {
		if c.Port, err = freePort(); err != nil {
			return c, err
		}
	}
	if err := c.writeConfig(o.Settings); err != nil {
		return c, err
	}
	if err := c.writeHBA(false); err != nil {
		return c, err
	}
	c.ServerUser = as.Name()
	sb := Sandbox{why: "not asked for"}
	if o.NoNetwork {
		sb = NetworkSandbox(tc.Path("postgres"), "--version")
	}
	c.Network = sb.Network()
	if err := c.startServer(ctx, as, sb); err != nil {
		return c, err
	}
	if want != c.Superuser {
		if err := c.renameSuperuser(ctx, want); err != nil {
			return c, err
		}
	}
	if o.Password != "" {
		if err := c.requirePassword(ctx); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Cluster) writeConfig(extra map[string]string) error {
	set := map[string]string{}
	for k, v := range fastSettings {
		set[k] = v
	}
	set["port"] = strconv.Itoa(c.Port)
	set["unix_socket_directories"] = c.SocketDir
	set["listen_addresses"] = ""
	if c.TCP { // loopback only; ::1 too where the host has it (a failed one is a warning)
		set["listen_addresses"] = "127.0.0.1,::1"
	}
	if c.Toolchain.Version.Major < 13 {
		delete(set, "max_wal_size")
	}
	for k, v := range extra {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# pgattest throwaway cluster: fast, not durable\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(set[k], "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write settings: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write settings: %w", err)
	}
	return f.Close()
}

// writeHBA writes pg_hba.conf: trust, or scram-sha-256 for everything once
// the superuser has a password.
func (c *Cluster) writeHBA(scram bool) error {
	method := "trust"
	if scram {
		method = "scram-sha-256"
	}
	host := "host"
	if c.TLS {
		host = "hostssl"
	}
	hba := fmt.Sprintf("local all all %s\n%s all all 127.0.0.1/32 %s\n%s all all ::1/128 %s\n", method, host, method, host, method)
	if err := os.WriteFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

func (c *Cluster) startServer(ctx context.Context, as *runAs, sb Sandbox) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Not CommandContext: cancelling the start must shut the server down in
	// order (Stop), not SIGKILL it and leave shared memory behind.
	cmd := exec.Command(c.Toolchain.Path("postgres"), "-D", c.DataDir)
	cmd.SysProcAttr = as.attr()
	sb.Apply(cmd.SysProcAttr)
	cmd.Env = as.env()
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres (%s): %w", c.Toolchain, err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.ready() {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("start postgres (%s): server exited (%v) before accepting connections; its log ends:\n%s",
				c.Toolchain, c.waitErr, c.LogTail(10))
		case <-ctx.Done():
			return fmt.Errorf("start postgres: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("start postgres (%s): not ready after 60s; its log ends:\n%s", c.Toolchain, c.LogTail(10))
		case <-tick.C:
		}
	}
}

// ready reads postmaster.pid: its eighth line says "ready" once the server
// accepts connections (PostgreSQL 10 and later).
func (c *Cluster) ready() bool {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready"
}

// superuserFile, in a template's or a saved data folder, names the
// bootstrap superuser it was made with (Postgres ignores the file).
const superuserFile = "pgattest.superuser"

// savedSuperuser reads the superuser's name from a data folder's
// superuserFile; a folder saved before pgattest kept one has "postgres".
func savedSuperuser(data string) (string, error) {
	b, err := os.ReadFile(filepath.Join(data, superuserFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Superuser, nil
	}
	if err != nil {
		return "", fmt.Errorf("read the superuser of %q: %w", data, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// RandomName returns prefix and 12 random hex digits: a role name nobody
// can guess before it exists.
func RandomName(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// renameSuperuser gives the bootstrap superuser its name for this cluster,
// in one round trip: the session user cannot be renamed, so a second
// superuser does it, then goes.
func (c *Cluster) renameSuperuser(ctx context.Context, name string) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to name the superuser: %w", err)
	}
	defer conn.Close(context.Background())
	tmp := pgx.Identifier{RandomName("pgattest_tmp_")}.Sanitize()
	sql := fmt.Sprintf("CREATE ROLE %s SUPERUSER; SET SESSION AUTHORIZATION %s; ALTER ROLE %s RENAME TO %s; RESET SESSION AUTHORIZATION; DROP ROLE %s",
		tmp, tmp, pgx.Identifier{c.Superuser}.Sanitize(), pgx.Identifier{name}.Sanitize(), tmp)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("name the superuser %q: %w", name, err)
	}
	c.Superuser = name
	return nil
}

// Connect opens a pgx connection to database db as the superuser, over the
// socket, in UTF8 whatever the database's encoding.
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return ConnectUTF8(ctx, c.ConnString(db))
}

// ConnectUTF8 opens a pgx connection that speaks UTF8 to the server
// whatever the database's encoding (pgx needs it; a LATIN1 database would
// otherwise answer in LATIN1).
func ConnectUTF8(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	return pgx.ConnectConfig(ctx, cfg)
}

// requirePassword gives the superuser its password, then switches every
// connection to scram-sha-256 and waits until the server enforces it.
func (c *Cluster) requirePassword(ctx context.Context) error {
	conn, err := ConnectUTF8(ctx, c.connString("postgres", false))
	if err != nil {
		return fmt.Errorf("connect to set password: %w", err)
	}
	defer conn.Close(ctx)
	// ALTER ROLE takes no parameters; quote the literal ourselves.
	lit := "'" + strings.ReplaceAll(c.Password, "'", "''") + "'"
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'; ALTER ROLE "+pgx.Identifier{c.Superuser}.Sanitize()+" PASSWORD "+lit); err != nil {
		return fmt.Errorf("set superuser password: %w", err)
	}
	if err := c.writeHBA(true); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload pg_hba.conf: %w", err)
	}
	for i := 0; i < 500; i++ {
		probe, err := pgx.Connect(ctx, c.connString("postgres", false))
		if err != nil {
			return nil // refused without a password: enforced
		}
		probe.Close(ctx)
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("server still accepts connections without a password after reload")
}

// ConnString returns a libpq key=value connection string for database db
// over the Unix socket, with the password when the cluster has one.
func (c *Cluster) ConnString(db string) string { return c.connString(db, true) }

// ConnStringAs is ConnString for another role (which must be able to log
// in, and needs no password: the socket uses trust).
func (c *Cluster) ConnStringAs(db, user string) string {
	return KeyValue([][2]string{{"host", c.SocketDir}, {"port", strconv.Itoa(c.Port)}, {"user", user}, {"dbname", db}})
}

func (c *Cluster) connString(db string, withPassword bool) string {
	kv := [][2]string{{"host", c.SocketDir}, {"port", strconv.Itoa(c.Port)}, {"user", c.Superuser}, {"dbname", db}}
	if withPassword && c.Password != "" {
		kv = append(kv, [2]string{"password", c.Password})
	}
	return KeyValue(kv)
}

// URL returns a postgresql:// URL for database db as user (the superuser
// when empty) with password (none when empty): over TCP when the cluster
// listens on TCP, else over the socket.
func (c *Cluster) URL(db, user, password string) string {
	if user == "" {
		user = c.Superuser
	}
	u := url.URL{Scheme: "postgresql", Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	if c.TCP {
		u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port))
	} else {
		u.RawQuery = url.Values{"host": {c.SocketDir}, "port": {strconv.Itoa(c.Port)}}.Encode()
	}
	return u.String()
}

// KeyValue renders libpq key=value pairs, quoting each value.
func KeyValue(kv [][2]string) string {
	parts := make([]string, len(kv))
	for i, p := range kv {
		v := strings.ReplaceAll(p[1], `\`, `\\`)
		v = strings.ReplaceAll(v, `'`, `\'`)
		parts[i] = p[0] + "='" + v + "'"
	}
	return strings.Join(parts, " ")
}

// Stop shuts the server down (fast, then immediate, then SIGKILL) and removes
// the cluster's folder. It is safe to call more than once.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.cmd != nil && c.cmd.Process != nil {
			c.stopErr = stopProcess(ctx, c.cmd.Process.Pid, c.exited)
		}
		if err := c.scratch.Remove(); err != nil && c.stopErr == nil {
			c.stopErr = err
		}
	})
	return c.stopErr
}

// stopProcess sends the postmaster SIGINT (fast shutdown), then SIGQUIT
// (immediate), then SIGKILL, waiting between each for done to close. A
// cancelled ctx cuts the wait for the fast shutdown short, not the others.
func stopProcess(ctx context.Context, pid int, done <-chan struct{}) error {
	steps := []struct {
		sig  syscall.Signal
		wait time.Duration
		ctx  context.Context
	}{
		{syscall.SIGINT, 20 * time.Second, ctx},
		{syscall.SIGQUIT, 5 * time.Second, context.Background()},
		{syscall.SIGKILL, 5 * time.Second, context.Background()},
	}
	for _, s := range steps {
		if err := syscall.Kill(pid, s.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("signal postgres (pid %d): %w", pid, err)
		}
		t := time.NewTimer(s.wait)
		select {
		case <-done:
			t.Stop()
			return nil
		case <-s.ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return fmt.Errorf("postgres (pid %d) did not stop", pid)
}

// stopLeftover stops a server still running in a swept cluster folder (its
// owner was killed before it could stop it). It checks that the pid in
// postmaster.pid really is a postgres serving that folder before signalling.
func stopLeftover(dir string) {
	data := filepath.Join(dir, "data")
	f, err := os.Open(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return
	}
	sc := bufio.NewScanner(f)
	sc.Scan()
	pid, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
	f.Close()
	if pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), data) {
		return
	}
	done := make(chan struct{})
	go func() {
		for alive(pid) {
			time.Sleep(10 * time.Millisecond)
		}
		close(done)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an orphan gets no fast shutdown: immediate, then kill
	stopProcess(ctx, pid, done)
}

// alive reports whether pid runs and is not a zombie (an orphan's zombie may
// linger where the container's init does not reap).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// LogTail returns the last n lines of the server log, indented: what it
// wrote before its logging collector started, and its CSV log's last
// messages.
func (c *Cluster) LogTail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	tail := lastLines(string(b), n)
	if t := c.csvTail(n); t != "" {
		tail += "\n" + t
	}
	return tail
}

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SaveData stops the cluster and copies its data folder to dst (which must
// not exist), for Options.Data of later clusters: a generated database is
// made once and copied in seconds after that.
func (c *Cluster) SaveData(ctx context.Context, dst string) error {
	if c.cmd != nil && c.cmd.Process != nil {
		if err := stopProcess(ctx, c.cmd.Process.Pid, c.exited); err != nil {
			return err
		}
	}
	tmp := dst + ".saving"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := copyTree(tmp, c.DataDir, nil); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, superuserFile), []byte(c.Superuser+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
