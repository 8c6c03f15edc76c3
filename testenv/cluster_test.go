package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The test binary doubles as a helper process: with PGATTEST_TESTENV_HELPER
// set, it starts a cluster and does what the variable says instead of
// running tests. Tests use it to kill an owner with -9 and to run two
// processes at once.
func TestMain(m *testing.M) {
	switch os.Getenv("PGATTEST_TESTENV_HELPER") {
	case "":
		os.Exit(m.Run())
	case "hold": // start, print the folder, wait to be killed
		c, err := Start(context.Background(), Options{Parent: os.Getenv("PGATTEST_TESTENV_PARENT")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(c.Dir)
		time.Sleep(time.Hour)
	case "roundtrip": // start, write and read a row, stop; exit 0 only if all worked
		if err := roundTrip(context.Background(), Options{Parent: os.Getenv("PGATTEST_TESTENV_PARENT")}); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	os.Exit(2)
}

// roundTrip starts a cluster, creates a database and a row in it, reads the
// row back, stops the cluster and checks that its folder is gone.
func roundTrip(ctx context.Context, o Options) error {
	c, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer c.Stop(ctx)
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE app"); err != nil {
		return err
	}
	conn.Close(ctx)
	app, err := pgx.Connect(ctx, c.ConnString("app"))
	if err != nil {
		return fmt.Errorf("connect to app: %w", err)
	}
	defer app.Close(ctx)
	var n int
	if _, err := app.Exec(ctx, "CREATE TABLE t(x int); INSERT INTO t VALUES (42)"); err != nil {
		return err
	}
	err = app.QueryRow(ctx, "SELECT sum(x) FROM t").Scan(&n)
	if err != nil || n != 42 {
		return fmt.Errorf("round trip: got %d, %v", n, err)
	}
	app.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		return fmt.Errorf("cluster folder %s still there after Stop (%v)", c.Dir, err)
	}
	return nil
}

func TestStartConnectStop(t *testing.T) {
	Require(t, Want{})
	ctx := context.Background()
	parent := t.TempDir()
	if os.Geteuid() == 0 {
		parent = "" // t.TempDir is 0700 root: the postgres user cannot enter it
	}
	c, err := Start(ctx, Options{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(ctx) })

	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var listen, fsync, wal string
	if err := conn.QueryRow(ctx, "SELECT current_setting('listen_addresses'), current_setting('fsync'), current_setting('wal_level')").Scan(&listen, &fsync, &wal); err != nil {
		t.Fatal(err)
	}
	if listen != "" || fsync != "off" || wal != "minimal" {
		t.Errorf("settings: listen_addresses=%q fsync=%q wal_level=%q, want '', off, minimal", listen, fsync, wal)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE shop"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	shop, err := pgx.Connect(ctx, c.ConnString("shop"))
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if _, err := shop.Exec(ctx, `CREATE TABLE item(id int); INSERT INTO item SELECT generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	err = shop.QueryRow(ctx, `SELECT count(*) FROM item`).Scan(&rows)
	shop.Close(ctx)
	if err != nil || rows != 1000 {
		t.Fatalf("count: %d, %v", rows, err)
	}

	for _, p := range []string{c.SocketDir, c.DataDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", p, fi.Mode().Perm())
		}
	}
	pid := c.cmd.Process.Pid
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("cluster folder still exists after Stop: %v", err)
	}
	if alive(pid) {
		t.Errorf("postmaster %d still running after Stop", pid)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestTwoClustersAtOnce(t *testing.T) {
	a, b := New(t), New(t)
	if a.Dir == b.Dir {
		t.Fatalf("both clusters in %s", a.Dir)
	}
	ctx := context.Background()
	ca, err := pgx.Connect(ctx, a.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a(x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table made in cluster a is visible in cluster b (n=%d, err=%v)", n, err)
	}
}

func TestPasswordAndTCP(t *testing.T) {
	const pw = `p@ss:/?#%'" w0rd`
	c := New(t, Options{Password: pw, TCP: true})
	ctx := context.Background()
	if c.Port == 5432 || c.Port == 0 {
		t.Errorf("TCP cluster on port %d, want a free port", c.Port)
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres", "", "")); err == nil {
		t.Fatal("connected over TCP without a password")
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres", "", "wrong")); err == nil {
		t.Fatal("connected with a wrong password")
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres", "", pw))
	if err != nil {
		t.Fatalf("connect with the password over TCP: %v", err)
	}
	var method string
	err = conn.QueryRow(ctx, "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host'").Scan(&method)
	conn.Close(ctx)
	if err != nil || method != "scram-sha-256" {
		t.Errorf("hba method for TCP: %q, %v", method, err)
	}
	sock, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatalf("connect with the password over the socket: %v", err)
	}
	sock.Close(ctx)
}

func TestNoTCPUnlessAsked(t *testing.T) {
	c := New(t)
	// Nothing may listen on 127.0.0.1 at the cluster's port on its behalf.
	if l, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), time.Second); err == nil {
		l.Close()
		// Another server may own that port on a shared machine: check ours.
		conn, err := pgx.Connect(context.Background(), c.ConnString("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var listen string
		conn.QueryRow(context.Background(), "SHOW listen_addresses").Scan(&listen)
		if listen != "" {
			t.Errorf("listen_addresses = %q, want ''", listen)
		}
	}
}

func TestStartFailureQuotesLog(t *testing.T) {
	Require(t, Want{})
	_, err := Start(context.Background(), Options{Settings: map[string]string{"shared_buffers": "lots"}})
	if err == nil {
		t.Fatal("started with shared_buffers = 'lots'")
	}
	msg := err.Error()
	if !strings.Contains(msg, "start postgres") || !strings.Contains(msg, "shared_buffers") {
		t.Errorf("error does not name the step and quote the log:\n%s", msg)
	}
}

// helper starts this test binary as a helper process.
func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"PGATTEST_TESTENV_HELPER=" + mode}, env...)...)
	return cmd
}

// sharedParent makes a parent folder for clusters that, as root, the postgres
// user can enter.
func sharedParent(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pgattest-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestStartAfterOwnerKilled(t *testing.T) {
	Require(t, Want{})
	parent := sharedParent(t)
	cmd := helper(t, "hold", "PGATTEST_TESTENV_PARENT="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(strings.TrimSpace(line), parent) {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	stale := strings.TrimSpace(line)
	pidBytes, err := os.ReadFile(filepath.Join(stale, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, _ := strconv.Atoi(strings.SplitN(string(pidBytes), "\n", 2)[0])

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	go io.Copy(io.Discard, out)

	// The next start in that folder must work and clear what was left.
	if err := roundTrip(context.Background(), Options{Parent: parent}); err != nil {
		t.Fatalf("start after kill -9 of the previous owner: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale cluster folder %s not removed (%v)", stale, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(postmaster) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(postmaster) {
		t.Errorf("postmaster %d of the killed owner still runs", postmaster)
	}
}

func TestTwoProcessesShareOneNewCache(t *testing.T) {
	Require(t, Want{})
	parent := sharedParent(t)
	cache := t.TempDir() // empty: both processes race to make the template
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 2; i++ {
		cmd := helper(t, "roundtrip", "PGATTEST_TESTENV_PARENT="+parent, "PGATTEST_CACHE_DIR="+cache)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	tmpls, _ := filepath.Glob(filepath.Join(cache, "templates", "pg*"))
	var dirs []string
	for _, p := range tmpls {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		}
	}
	if len(dirs) != 1 {
		t.Errorf("want exactly one template, found %v", dirs)
	}
	left, _ := filepath.Glob(filepath.Join(parent, clusterPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("clusters left behind: %v", left)
	}
}

// TestClusterNamesAndSandbox: a cluster's superuser gets a random name
// unless asked for one (no archive can name the proof's superuser, and no
// "postgres" role exists); with NoNetwork the server runs in a network
// namespace of its own; as root it runs as pgattest's system user.
func TestClusterNamesAndSandbox(t *testing.T) {
	Require(t, Want{})
	ctx := context.Background()
	var names []string
	for range 2 {
		c, err := Start(ctx, Options{NoNetwork: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop(context.Background()) })
		names = append(names, c.Superuser)
		conn, err := c.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		var me string
		var super, postgresExists bool
		err = conn.QueryRow(ctx, `SELECT current_user, rolsuper, EXISTS (SELECT FROM pg_roles WHERE rolname = 'postgres')
			FROM pg_roles WHERE rolname = current_user`).Scan(&me, &super, &postgresExists)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if me != c.Superuser || !super || postgresExists || !strings.HasPrefix(me, "pgattest_su_") {
			t.Errorf("connected as %q (superuser %v), role postgres exists: %v", me, super, postgresExists)
		}
		pid := c.cmd.Process.Pid
		ours, _ := os.Readlink("/proc/self/ns/net")
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			t.Fatal(err)
		}
		if NetworkSandbox(c.Toolchain.Path("postgres"), "--version").On() {
			if ours == theirs || !strings.HasPrefix(c.Network, "none") {
				t.Errorf("server in network namespace %s (ours %s), recorded %q", theirs, ours, c.Network)
			}
		} else if os.Getenv("PGATTEST_REQUIRE_PG") == "1" {
			t.Errorf("no network sandbox on this machine: %s", c.Network)
		}
		if os.Geteuid() == 0 {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			u, err := user.Lookup(ServerUserName)
			if err != nil || !strings.Contains(string(st), "\nUid:\t"+u.Uid+"\t") || c.ServerUser != ServerUserName {
				t.Errorf("as root the server must run as %s (%v): %s", ServerUserName, err, st)
			}
		}
	}
	if names[0] == names[1] {
		t.Errorf("two clusters share the superuser name %q", names[0])
	}
	if c := New(t, Options{Superuser: "rdsadmin"}); c.Superuser != "rdsadmin" {
		t.Errorf("asked for rdsadmin, got %q", c.Superuser)
	}
}

// Where there is no sandbox, the description says why, for the record.
func TestSandboxOffSaysWhy(t *testing.T) {
	t.Setenv("PGATTEST_NO_SANDBOX", "1")
	if s := probeSandbox("/bin/true", nil); s.On() || s.Network() != "the host's: turned off by PGATTEST_NO_SANDBOX=1" {
		t.Errorf("off by the variable: on %v, %q", s.On(), s.Network())
	}
	t.Setenv("PGATTEST_NO_SANDBOX", "")
	if s := probeSandbox("/nonexistent/postgres", []string{"--version"}); s.On() || !strings.Contains(s.Network(), "could not probe") {
		t.Errorf("no probe: on %v, %q", s.On(), s.Network())
	}
	var a syscall.SysProcAttr
	Sandbox{}.Apply(&a)
	if a.Cloneflags != 0 || a.UidMappings != nil {
		t.Errorf("an off sandbox changed the attributes: %+v", a)
	}
}
