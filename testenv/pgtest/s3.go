package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is a real S3 server on loopback for tests: versitygw (Apache-2.0)
// with its posix backend in a folder of the test's, versioning on (so
// buckets can have Object Lock). Credentials go to it in its environment,
// never its command line.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Addr      string // 127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string

	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// ErrNoVersitygw: the versitygw program is not installed.
var ErrNoVersitygw = errors.New("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0, as .ci/ensure-deps does)")

// FindVersitygw looks for versitygw: PGATTEST_VERSITYGW, PATH, then Go's
// bin folder.
func FindVersitygw() (string, error) {
	if p := os.Getenv("PGATTEST_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	for _, d := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("GOPATH"), "bin"), filepath.Join(os.Getenv("HOME"), "go", "bin")} {
		if p := filepath.Join(d, "versitygw"); d != "" && isExecutable(p) {
			return p, nil
		}
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := filepath.Join(string(trimNL(out)), "bin", "versitygw"); isExecutable(p) {
			return p, nil
		}
	}
	return "", ErrNoVersitygw
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// StartS3 starts versitygw on a free loopback port with a folder of its
// own under dir, and waits until it answers.
func StartS3(ctx context.Context, dir string) (*S3Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	var key [10]byte
	rand.Read(key[:])
	var secret [20]byte
	rand.Read(secret[:])
	return startS3(ctx, dir, addr, "PGATTEST"+hex.EncodeToString(key[:4]), hex.EncodeToString(secret[:]))
}

func startS3(ctx context.Context, dir, addr, accessKey, secretKey string) (*S3Server, error) {
	bin, err := FindVersitygw()
	if err != nil {
		return nil, err
	}
	s := &S3Server{Endpoint: "http://" + addr, Addr: addr, AccessKey: accessKey,
		SecretKey: secretKey, Dir: dir, exited: make(chan struct{}), log: filepath.Join(dir, "versitygw.log")}
	for _, d := range []string{"root", "versions"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--versioning-dir", filepath.Join(dir, "versions"), filepath.Join(dir, "root"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s.cmd = cmd
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.log)
			return nil, fmt.Errorf("versitygw exited before answering:\n%s", lastLines(string(b), 10))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("versitygw did not answer within 30s")
		}
	}
}

// Restart starts the server again after Kill or Stop, on the same port
// and folder, with the same credentials.
func (s *S3Server) Restart(ctx context.Context) error {
	n, err := startS3(ctx, s.Dir, s.Addr, s.AccessKey, s.SecretKey)
	if err != nil {
		return err
	}
	s.cmd, s.exited = n.cmd, n.exited
	return nil
}

// CPUTime is the CPU time (user and system) the server has used so far,
// from /proc: for benchmarks that share the machine with it.
func (s *S3Server) CPUTime() time.Duration {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// Port is the server's TCP port.
func (s *S3Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *S3Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Stop shuts the server down.
func (s *S3Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// Env is what points an S3 client of the AWS conventions at the server.
func (s *S3Server) Env() []string {
	return []string{"AWS_ENDPOINT_URL_S3=" + s.Endpoint, "AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=us-east-1"}
}

// NewS3 starts an S3 server for a test and stops it when the test ends. A
// missing versitygw skips the test, or fails it under
// PGATTEST_REQUIRE_PG=1 (CI installs it).
func NewS3(tb testing.TB) *S3Server {
	tb.Helper()
	if _, err := FindVersitygw(); err != nil {
		if os.Getenv(RequirePGEnv) != "1" {
			tb.Skipf("skipping: %v; set %s=1 to fail instead", err, RequirePGEnv)
		}
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartS3(ctx, tb.TempDir())
	if err != nil {
		tb.Fatalf("start the S3 server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Client is an S3 client of the server's, for tests to look at what is
// stored without pgattest.
func (s *S3Server) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// MakeBucket makes a bucket, with Object Lock when lock is set.
func (s *S3Server) MakeBucket(tb testing.TB, name string, lock bool) {
	tb.Helper()
	if err := s.Client(tb).MakeBucket(context.Background(), name, minio.MakeBucketOptions{ObjectLocking: lock, Region: "us-east-1"}); err != nil {
		tb.Fatalf("make bucket %s: %v", name, err)
	}
}

// SetEnv points the AWS variables of the test's process at the server.
func (s *S3Server) SetEnv(t *testing.T) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
}
