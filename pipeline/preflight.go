package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/verify"
)

// Source is the database being backed up, as preflight found it.
type Source struct {
	Conn          *ConnInfo
	Host          string // the first host, or the socket folder
	Port          int
	Database      string
	User          string
	ServerVersion testenv.Version
	InRecovery    bool // a standby
	// What a proof streamed during the dump needs to know beforehand, read
	// from the source (the archive says the same, but only once written).
	Roles      []string // every role but the built-in pg_* ones
	Encoding   string   // the database's encoding, "UTF8"
	Extensions []string // installed in the database
	// Superusers are the roles that are superusers on the server, and
	// Memberships who is a member of whom (pg_auth_members): role
	// memberships are the server's, not the database's, so pg_dump does
	// not save them, and the proof makes them as they are here.
	Superusers  []string
	Memberships []verify.Membership
	// Size is the database's size on the server (pg_database_size), 0 when
	// it may not be read: about what a proof of it needs on disk.
	Size int64
	// Identity is what the server says the database is, whichever way
	// it was reached.
	Identity catalog.Identity
	password string // what pgx resolved: the string's, PGPASSWORD's or the password file's
	child    string // ChildConnInfo
}

// Display is the source for messages: postgresql://user@host:port/db, no password.
func (s *Source) Display() string {
	host := s.Host
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("postgresql://%s@/%s?host=%s", s.User, s.Database, host)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("postgresql://%s@%s:%d/%s", s.User, host, s.Port, s.Database)
}

// ChildEnv is the environment for the child that connects to this
// database (pg_dump, or pg_restore into a target): testenv.ToolEnv, no PG*
// variable of the caller's, and the password pgattest resolved.
func (s *Source) ChildEnv() []string {
	if s.password != "" {
		return testenv.ToolEnv("PGPASSWORD=" + s.password)
	}
	return testenv.ToolEnv()
}

// ChildConnInfo is the connection string that child connects with: every
// setting pgattest resolved, pinned to the server that answered (see
// childConnInfo); no password.
func (s *Source) ChildConnInfo() string { return s.child }

// ConnectError is a failure to reach or log in to the source.
type ConnectError struct {
	Display string
	Err     error
	hint    string
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot connect to %s: %v", e.Display, e.Err)
}
func (e *ConnectError) Unwrap() error { return e.Err }
func (e *ConnectError) Hint() string  { return e.hint }

// PooledError refuses a pooled connection.
type PooledError struct {
	Host, Direct string
	Reason       string
	Tool         string // what needs a session of its own: "pg_dump" (default) or "pg_restore"
}

func (e *PooledError) Error() string {
	tool := e.Tool
	if tool == "" {
		tool = "pg_dump"
	}
	return fmt.Sprintf("%s is a pooled connection (%s); %s needs a direct one", e.Host, e.Reason, tool)
}

// Hint shows the direct host.
func (e *PooledError) Hint() string {
	if e.Direct != "" && e.Direct != e.Host {
		return fmt.Sprintf("use the direct host %s (drop \"-pooler\" from the first label)", e.Direct)
	}
	return "connect to the database directly, not through the pooler"
}

// Connect parses the connection string (one that cannot be read is a
// *UsageError), refuses a Neon pooled host unless
// allowPooled, connects with pgx and reads what the pipeline needs to know
// about the server. red learns the password before anything can print it.
func Connect(ctx context.Context, connString string, allowPooled bool, red *Redactor) (*Source, error) {
	ci, err := ParseConnString(connString)
	var schemeless *SchemelessURLError
	if errors.As(err, &schemeless) {
		red.Add(schemeless.Password())
		return nil, &UsageError{Err: err, hint: "write it as postgresql://USER@HOST:5432/DB, and keep the password out of the command line: in DATABASE_URL, PGPASSWORD or ~/.pgpass"}
	}
	if err != nil {
		return nil, &UsageError{Err: err, hint: connStringHint}
	}
	if p, ok := ci.Password(); ok {
		red.Add(p)
	}
	if !allowPooled {
		for _, h := range ci.Hosts() {
			if direct, pooled := PooledHost(h); pooled {
				return nil, &PooledError{Host: h, Direct: direct, Reason: "a Neon -pooler endpoint"}
			}
		}
	}
	cfg, err := pgx.ParseConfig(ci.withPassword())
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("%w: %s", ErrBadConnString, red.String(err.Error())), hint: connStringHint}
	}
	red.Add(cfg.Password)
	settings, err := resolveSettings(ci)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("%w: %s", ErrBadConnString, red.String(err.Error())), hint: connStringHint}
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	// The simple protocol works through every pooler mode, so preflight
	// can get far enough to tell the user what it found. pgx needs UTF8
	// for it, whatever the database's encoding (pg_dump sets its own).
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	if !allowPooled {
		if direct, pooled := PooledHost(cfg.Host); pooled {
			return nil, &PooledError{Host: cfg.Host, Direct: direct, Reason: "a Neon -pooler endpoint"}
		}
	}
	src := &Source{Conn: ci, Host: cfg.Host, Port: int(cfg.Port), Database: cfg.Database, User: cfg.User, password: cfg.Password}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(src, err, red)
	}
	defer conn.Close(context.Background())
	src.Host, src.Port = connectedTo(cfg, conn)
	src.child = childConnInfo(settings, src.Host, src.Port, conn.PgConn().Conn().RemoteAddr(), cfg.Database, cfg.User)
	var version string
	var num int
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		current_database(), current_user, pg_is_in_recovery()`).Scan(&version, &num, &src.Database, &src.User, &src.InRecovery)
	if err != nil {
		return nil, fmt.Errorf("read server version from %s: %s", src.Display(), red.String(err.Error()))
	}
	err = conn.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding),
		ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1),
		ARRAY(SELECT extname::text FROM pg_extension ORDER BY 1)
		FROM pg_database WHERE datname = current_database()`).Scan(&src.Encoding, &src.Roles, &src.Extensions)
	if err != nil {
		return nil, fmt.Errorf("read roles and extensions of %s: %s", src.Display(), red.String(err.Error()))
	}
	if err := readMemberships(ctx, conn, src); err != nil {
		return nil, fmt.Errorf("read the roles' memberships on %s: %s", src.Display(), red.String(err.Error()))
	}
	// A role without CONNECT on the database (a managed service's) may not
	// read its size: then it is not known.
	conn.QueryRow(ctx, `SELECT coalesce(pg_database_size(current_database()), 0)`).Scan(&src.Size)
	if src.Identity, err = readIdentity(ctx, conn); err != nil {
		return nil, fmt.Errorf("read what %s says it is: %s", src.Display(), red.String(err.Error()))
	}
	src.ServerVersion = testenv.Version{Major: num / 10000, Minor: num % 10000, Raw: version}
	if num < 100000 { // 9.6.24 is 90624
		src.ServerVersion = testenv.Version{Major: num / 10000, Minor: num / 100 % 100, Raw: version}
	}
	if !allowPooled {
		reason, err := detectPooling(ctx, cfg, conn)
		if err != nil {
			return nil, fmt.Errorf("check %s for a connection pooler: %s", src.Display(), red.String(err.Error()))
		}
		if reason != "" {
			return nil, &PooledError{Host: src.Display(), Reason: reason}
		}
	}
	return src, nil
}

// readMemberships reads the server's superusers (and a managed service's
// administrators: members of rds_superuser, cloudsqlsuperuser,
// azure_pg_admin, neon_superuser) and role memberships, but for the
// built-in pg_* roles (pg_read_server_files and the like, which a proof
// never grants).
func readMemberships(ctx context.Context, conn *pgx.Conn, src *Source) error {
	// A managed service's administrators are no superusers, but members of
	// its administrators' role: they stand for the service's superuser.
	err := conn.QueryRow(ctx, `SELECT ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.rolname !~ '^pg_' AND (r.rolsuper OR EXISTS (
		SELECT FROM pg_roles a WHERE a.rolname IN ('rds_superuser', 'cloudsqlsuperuser', 'azure_pg_admin', 'neon_superuser')
		AND pg_has_role(r.oid, a.oid, 'MEMBER'))) ORDER BY 1)`).Scan(&src.Superusers)
	if err != nil {
		return err
	}
	rows, _ := conn.Query(ctx, `SELECT r.rolname::text, m.rolname::text FROM pg_auth_members a
		JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
		WHERE r.rolname !~ '^pg_' AND m.rolname !~ '^pg_' ORDER BY 1, 2`)
	var role, member string
	_, err = pgx.ForEachRow(rows, []any{&role, &member}, func() error {
		src.Memberships = append(src.Memberships, verify.Membership{Role: role, Member: member})
		return nil
	})
	return err
}

// readIdentity asks the server what the database is: its system
// identifier where the role may read it (superusers and pg_monitor; not
// on every managed service), and what every role may read.
func readIdentity(ctx context.Context, conn *pgx.Conn) (catalog.Identity, error) {
	var id catalog.Identity
	var oid int64
	err := conn.QueryRow(ctx, `SELECT pg_postmaster_start_time(), current_setting('port')::int, d.oid::bigint, d.datname::text
		FROM pg_catalog.pg_database d WHERE d.datname = current_database()`).Scan(&id.ServerStarted, &id.Port, &oid, &id.Database)
	if err != nil {
		return id, err
	}
	id.ServerStarted = id.ServerStarted.UTC()
	id.DatabaseOID = uint32(oid)
	var sys string
	if conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_catalog.pg_control_system()`).Scan(&sys) == nil {
		id.SystemID = sys
	}
	return id, nil
}

// connectedTo returns the host and port conn reached: with several hosts
// in the connection string (host=a,b), the one that answered, found by the
// connection's remote address; otherwise the first.
func connectedTo(cfg *pgx.ConnConfig, conn *pgx.Conn) (string, int) {
	type hp struct {
		host string
		port uint16
	}
	cands := []hp{{cfg.Host, cfg.Port}}
	for _, f := range cfg.Fallbacks {
		cands = append(cands, hp{f.Host, f.Port})
	}
	addr, ok := conn.PgConn().Conn().RemoteAddr().(*net.TCPAddr)
	if len(cands) == 1 || !ok {
		for _, c := range cands { // a socket: the first socket folder
			if !ok && strings.HasPrefix(c.host, "/") {
				return c.host, int(c.port)
			}
		}
		return cfg.Host, int(cfg.Port)
	}
	var samePort []hp
	for _, c := range cands {
		if int(c.port) == addr.Port && !strings.HasPrefix(c.host, "/") {
			samePort = append(samePort, c)
		}
	}
	for _, c := range samePort {
		if ip := net.ParseIP(c.host); ip != nil && ip.Equal(addr.IP) {
			return c.host, int(c.port)
		}
	}
	for _, c := range samePort {
		if ips, err := net.LookupIP(c.host); err == nil && slices.ContainsFunc(ips, addr.IP.Equal) {
			return c.host, int(c.port)
		}
	}
	if len(samePort) > 0 {
		return samePort[0].host, int(samePort[0].port)
	}
	return cfg.Host, int(cfg.Port)
}

// detectPooling tells whether conn goes through a pooler that hands server
// connections out per transaction or per statement (PgBouncer's transaction
// and statement modes, Neon's pooler, Supavisor, …), under which pg_dump's
// snapshot and session settings do not hold. A second client opens a
// transaction right after conn's query: directly or in session mode it gets
// a server process of its own; in transaction mode it gets the one conn
// just released (poolers reuse the most recent), and conn's next query
// lands on another. In statement mode the transaction itself is refused.
// It returns "" for a direct (or session-pooled) connection, else why not.
func detectPooling(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) (string, error) {
	other, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer other.Close(context.Background())
	pid := func(c interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (int, error) {
		var p int
		err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p)
		return p, err
	}
	for round := 0; round < 2; round++ {
		first, err := pid(conn)
		if err != nil {
			return "", err
		}
		tx, err := other.Begin(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "statement pooling mode") {
				return "PgBouncer in statement pooling mode: it refused a transaction", nil
			}
			return "", err
		}
		held, err := pid(tx)
		if err != nil {
			tx.Rollback(ctx)
			return "", err
		}
		again, err := pid(conn)
		tx.Rollback(ctx)
		if err != nil {
			return "", err
		}
		if held == first || again != first {
			return fmt.Sprintf("a pooler in transaction mode: one client's queries ran in server processes %d and %d, "+
				"and another client's transaction in %d", first, again, held), nil
		}
	}
	return "", nil
}

func connectError(src *Source, err error, red *Redactor) error {
	msg := oneLine(red.String(err.Error()))
	ce := &ConnectError{Display: src.Display(), Err: errors.New(msg)}
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "28P01":
		ce.Err = fmt.Errorf("password authentication failed for user %q", src.User)
		ce.hint = "check the password; pgattest reads it from the connection string, PGPASSWORD or ~/.pgpass"
	case errors.As(err, &pgErr) && pgErr.Code == "28000":
		ce.Err = errors.New(red.String(pgErr.Message))
		ce.hint = "the server refused this user from here (pg_hba.conf, or the provider's IP allowlist)"
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		ce.Err = fmt.Errorf("database %q does not exist", src.Database)
		ce.hint = "check the database name at the end of the URL; psql -l lists the databases"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		ce.Err = errors.New("timed out")
		ce.hint = "check the host and port, and that the server accepts connections from this machine (firewall, allowlist)"
	case strings.Contains(msg, "server refused TLS"), strings.Contains(msg, "server does not support SSL"):
		ce.hint = "the server does not offer SSL (TLS): for a local server use sslmode=prefer or disable, or turn ssl on in its postgresql.conf; a cloud provider's direct endpoint always offers it"
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "network is unreachable"):
		ce.hint = "check the host and port, and that the server is running and reachable from this machine"
	default:
		ce.hint = "check the connection string; test it with: psql \"$DATABASE_URL\" -c 'select 1'"
	}
	return ce
}

// ToolsError says no pg_dump/pg_restore (or server, for the proof) fits the
// source's version.
type ToolsError struct {
	Err    error
	Server testenv.Version
	Proof  bool // the server binaries for the proof are missing, not the client tools
}

func (e *ToolsError) Error() string {
	if e.Proof {
		return fmt.Sprintf("no PostgreSQL server %d or newer to prove the backup in: %v", e.Server.Major, e.Err)
	}
	var nf *testenv.NotFoundError
	if errors.As(e.Err, &nf) && len(nf.Found) > 0 {
		return fmt.Sprintf("server is PostgreSQL %s but the newest pg_dump found is %s", e.Server, nf.Found[0].Version)
	}
	return fmt.Sprintf("server is PostgreSQL %s: %v", e.Server, e.Err)
}
func (e *ToolsError) Unwrap() error { return e.Err }

// Hint names the Debian package to install.
func (e *ToolsError) Hint() string {
	if e.Proof {
		return fmt.Sprintf("install postgresql-%d (Debian/Ubuntu, from apt.postgresql.org for new versions)", e.Server.Major)
	}
	return fmt.Sprintf("install postgresql-client-%d (Debian/Ubuntu, from apt.postgresql.org for new versions)", e.Server.Major)
}

// ChooseTools picks pg_dump/pg_restore whose major version is at least the
// server's (newer pg_dump reads older servers; never the other way round).
func ChooseTools(server testenv.Version, pgBin []string) (testenv.Toolchain, error) {
	tc, err := testenv.Find(testenv.Want{Tools: testenv.ClientTools, MinMajor: server.Major, Dirs: pgBin})
	if err != nil {
		return tc, &ToolsError{Err: err, Server: server}
	}
	return tc, nil
}

// ChooseServer picks the server binaries for the throwaway proof cluster:
// at least the source's major version, from --pg-bin when it has them.
func ChooseServer(server testenv.Version, pgBin []string) (testenv.Toolchain, error) {
	if len(pgBin) > 0 {
		if tc, err := testenv.Find(testenv.Want{Tools: testenv.ServerTools, MinMajor: server.Major, Dirs: pgBin}); err == nil {
			return tc, nil
		}
	}
	tc, err := testenv.Find(testenv.Want{Tools: testenv.ServerTools, MinMajor: server.Major})
	if err != nil {
		return tc, &ToolsError{Err: err, Server: server, Proof: true}
	}
	return tc, nil
}

// oneLine folds pgx's multi-line connect errors (one line per address
// tried) into one line, without repeats.
func oneLine(s string) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}
