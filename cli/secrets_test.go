package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgattest/pgattest/testenv"
)

// processWatch samples every process's command line while commands run:
// none may hold the password, and pg_dump and pg_restore must have been
// seen (or the check proved nothing). It also reads the listen address of
// every throwaway cluster this process starts, except the given ones.
type processWatch struct {
	mu      sync.Mutex
	seen    map[string]int // tool → command lines seen
	leaked  []string
	listen  map[string]string // cluster folder → listen_addresses from postmaster.pid
	stop    chan struct{}
	done    sync.WaitGroup
	secrets []string
}

func watchProcesses(secrets []string, ignore ...string) *processWatch {
	w := &processWatch{seen: map[string]int{}, listen: map[string]string{}, stop: make(chan struct{}), secrets: secrets}
	skip := map[string]bool{}
	for _, d := range ignore {
		skip[d] = true
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				b, err := os.ReadFile(p)
				if err != nil || bytes.Contains(b, []byte("go-build")) {
					continue
				}
				argv := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
				w.mu.Lock()
				for _, tool := range []string{"pg_dump", "pg_restore"} {
					if strings.Contains(argv, "/"+tool+" ") {
						w.seen[tool]++
					}
				}
				for _, s := range w.secrets {
					if strings.Contains(argv, s) {
						w.leaked = append(w.leaked, argv)
					}
				}
				w.mu.Unlock()
			}
			locks, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgattest-pg-*", ".owner.lock"))
			for _, l := range locks {
				dir := filepath.Dir(l)
				owner, _ := os.ReadFile(l)
				if skip[dir] || strings.TrimSpace(string(owner)) != strconv.Itoa(os.Getpid()) {
					continue
				}
				if pid, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
					if lines := strings.Split(string(pid), "\n"); len(lines) > 7 { // complete once the server is up
						w.mu.Lock()
						w.listen[dir] = lines[5]
						w.mu.Unlock()
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

func (w *processWatch) Stop() { close(w.stop); w.done.Wait() }

// TestSecretsNeverShown runs every command that takes a connection string,
// and those that only read, with a password-bearing URL, in --verbose and
// --json, and looks for the password everywhere it could leak: stdout,
// stderr, every file pgattest wrote (catalog, manifests), and the command
// line of every process on the machine while they ran. It also checks the
// files' modes and that throwaway clusters listen on no TCP port.
func TestSecretsNeverShown(t *testing.T) {
	const password = `s3cr:t@/?#%'" p w`
	src := shop(t, testenv.Options{Password: "superuser-pw-9f2c"})
	exec1(t, src, "postgres",
		`SET password_encryption = 'scram-sha-256'`,
		`CREATE ROLE alice LOGIN SUPERUSER PASSWORD `+quoteSQL(password),
		`CREATE DATABASE restored`)
	url := src.URL("shop", "alice", password)
	target := src.URL("restored", "alice", password)
	secrets := []string{password, "s3cr:t", url, "superuser-pw-9f2c"}

	w := newWorkdir(t)
	watch := watchProcesses(secrets, src.Dir)
	type step struct {
		args []string
		code int
	}
	var id string
	var outputs []string
	steps := []step{
		{[]string{"-v", "backup", "--db", url, "--name", "shop"}, 0},
		{[]string{"-v", "--json", "backup", "--db", url, "--name", "shop", "--jobs", "2", "--verify", "read"}, 0},
		{[]string{"backup", "--db", src.URL("shop", "alice", "wrong "+password), "--name", "shop"}, exitFailure},
		{[]string{"-v", "list"}, 0},
		{[]string{"-v", "show", "ID"}, 0},
		{[]string{"-v", "toc", "ID", "--live"}, 0},
		{[]string{"-v", "verify", "ID"}, 0},
		{[]string{"-v", "restore", "--id", "ID", "--target", target, "--dry-run"}, 0},
		{[]string{"-v", "restore", "--id", "ID", "--target", target}, 0},
		{[]string{"-v", "--json", "restore", "--id", "ID", "--target", target, "--table", "shop.orders"}, exitProofFailed}, // exists by now: pg_restore fails
		{[]string{"-v", "catalog", "verify", "--archives"}, 0},
		{[]string{"-v", "audit", "--from", "2026-01-01", "--to", "2026-01-02"}, 0},
		{[]string{"-v", "prune", "--keep-last", "1", "--dry-run"}, 0},
	}
	for _, s := range steps {
		args := append([]string{"--catalog", w.catalog}, s.args...)
		for i, a := range args {
			if a == "ID" {
				args[i] = id
			}
		}
		if args[len(args)-1] == "shop" || strings.Contains(strings.Join(args, " "), " backup ") {
			args = append(args, "--dir", w.dir)
		}
		code, out, errOut := run(t, args...)
		if code != s.code {
			t.Errorf("%q: exit %d, want %d\n%s%s", s.args, code, s.code, out, errOut)
		}
		if id == "" && code == 0 {
			if i := strings.Index(out, "backup "); i >= 0 {
				id = strings.Fields(out[i+len("backup "):])[0]
			}
		}
		outputs = append(outputs, strings.Join(s.args[:min(2, len(s.args))], " ")+"\x00"+out+"\x00"+errOut)
	}
	watch.Stop()
	if id == "" {
		t.Fatal("the first backup printed no ID")
	}

	for _, o := range outputs {
		for _, sec := range secrets {
			if strings.Contains(o, sec) {
				t.Errorf("secret %q in the output of %q", sec, strings.Split(o, "\x00")[0])
			}
		}
	}
	if watch.seen["pg_dump"] == 0 || watch.seen["pg_restore"] == 0 {
		t.Errorf("saw pg_dump %d times, pg_restore %d times: the command-line check proved nothing", watch.seen["pg_dump"], watch.seen["pg_restore"])
	}
	if len(watch.leaked) > 0 {
		t.Errorf("secret in a command line: %q", watch.leaked)
	}
	if len(watch.listen) == 0 {
		t.Error("never saw a throwaway cluster start")
	}
	for dir, addr := range watch.listen {
		if strings.TrimSpace(addr) != "" {
			t.Errorf("throwaway cluster %s listened on %q; it must take Unix-socket connections only", dir, addr)
		}
	}

	// Every file pgattest wrote: no secret inside (archives may hold a
	// role's SCRAM verifier, never the password), private modes.
	var files int
	filepath.Walk(filepath.Dir(w.catalog), func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == filepath.Dir(w.catalog) {
			return nil
		}
		files++
		if fi.IsDir() {
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("folder %s has mode %v, want 0700", p, fi.Mode().Perm())
			}
			return nil
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file %s has mode %v, want 0600", p, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("secret %q in %s", sec, p)
			}
		}
		return nil
	})
	if files < 8 { // catalog, backups/, shop/, two archives (one a folder), files in it, two manifests
		t.Errorf("only %d files and folders written; the file checks proved little", files)
	}
}
