package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgattest/pgattest/testenv"
)

// Bouncer is a PgBouncer started in front of a throwaway cluster, listening
// on 127.0.0.1 only, for tests of how pgattest treats a pooler.
type Bouncer struct {
	Port int
	Mode string // "session", "transaction" or "statement"

	superuser string
	scratch   *testenv.Scratch
	cmd       *exec.Cmd
	exited    chan struct{}
	logPath   string
}

// ErrNoPgBouncer: the pgbouncer program is not installed.
var ErrNoPgBouncer = errors.New("pgbouncer not found (install the Debian package pgbouncer)")

// FindPgBouncer returns the pgbouncer program's path: on PATH or in /usr/sbin.
func FindPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if isExecutable("/usr/sbin/pgbouncer") {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNoPgBouncer
}

// StartBouncer starts PgBouncer in pool mode mode in front of c (over its
// Unix socket), trusting the superuser, and waits until it accepts TCP
// connections. As root it runs as the server's user, as postgres does.
func StartBouncer(ctx context.Context, c *testenv.Cluster, mode string) (*Bouncer, error) {
	switch mode {
	case "session", "transaction", "statement":
	default:
		return nil, fmt.Errorf("pool mode %q: want session, transaction or statement", mode)
	}
	bin, err := FindPgBouncer()
	if err != nil {
		return nil, err
	}
	as, err := testenv.ServerSystemUser()
	if err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	sc, err := testenv.NewTempScratch("pgattest-bouncer-")
	if err != nil {
		return nil, err
	}
	b := &Bouncer{Port: port, Mode: mode, superuser: c.Superuser, scratch: sc, logPath: filepath.Join(sc.Dir, "pgbouncer.log")}
	ini := filepath.Join(sc.Dir, "pgbouncer.ini")
	users := filepath.Join(sc.Dir, "users.txt")
	conf := strings.Join([]string{
		"[databases]",
		fmt.Sprintf("* = host=%s port=%d", c.SocketDir, c.Port),
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		fmt.Sprintf("listen_port = %d", port),
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + users,
		"pool_mode = " + mode,
		"default_pool_size = 4",
		"max_client_conn = 100",
		"logfile = " + b.logPath,
		"ignore_startup_parameters = extra_float_digits",
		"",
	}, "\n")
	for path, body := range map[string]string{ini: conf, users: fmt.Sprintf("%q \"\"\n", c.Superuser), b.logPath: ""} {
		err := os.WriteFile(path, []byte(body), 0o600)
		if err == nil {
			err = as.Own(path)
		}
		if err != nil {
			sc.Remove()
			return nil, err
		}
	}
	if err := as.Own(sc.Dir); err != nil {
		sc.Remove()
		return nil, err
	}
	cmd := exec.Command(bin, ini)
	cmd.SysProcAttr = as.ProcAttr()
	cmd.Env = as.Env()
	cmd.Dir = sc.Dir
	if err := cmd.Start(); err != nil {
		sc.Remove()
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	b.cmd, b.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(b.exited) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			log := b.LogTail(10)
			sc.Remove()
			return nil, fmt.Errorf("pgbouncer exited before accepting connections; its log ends:\n%s", log)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := b.LogTail(10)
			b.Stop()
			return nil, fmt.Errorf("pgbouncer not accepting connections after 20s; its log ends:\n%s", log)
		}
	}
}

// URL is a postgresql:// URL for database db through the pooler, as the
// superuser.
func (b *Bouncer) URL(db string) string {
	u := url.URL{Scheme: "postgresql", User: url.User(b.superuser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)), Path: "/" + db}
	return u.String()
}

// LogTail returns the last n lines of PgBouncer's log.
func (b *Bouncer) LogTail(n int) string {
	data, _ := os.ReadFile(b.logPath)
	return lastLines(string(data), n)
}

// Stop stops PgBouncer and removes its folder.
func (b *Bouncer) Stop() error {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown; SIGINT would wait for clients
		select {
		case <-b.exited:
		case <-time.After(5 * time.Second):
			b.cmd.Process.Kill()
			<-b.exited
		}
	}
	return b.scratch.Remove()
}
