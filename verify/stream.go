package verify

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgattest/pgattest/testenv"
)

// Stream is a proof by restore of a custom-format archive while pg_dump is
// still writing it: pg_restore reads the archive from its standard input as
// the bytes arrive (a custom-format archive restores sequentially when its
// entries come in the order pg_dump wrote them, which one job keeps). The
// proof then ends moments after the dump instead of a whole restore later,
// and it proves exactly the bytes that went to the file and the hasher.
//
// Write the archive's bytes to it, then call Finish; or Abort when the dump
// failed.
type Stream struct {
	o       Options
	c       *testenv.Cluster
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	st      restoreState
	done    chan struct{}
	waitErr error
	started time.Time

	mu       sync.Mutex
	writeErr error
}

// StartStream prepares the proof database (the roles, the encoding, both
// known from the source before the archive exists) in the running cluster
// c and starts pg_restore reading from its standard input.
func StartStream(ctx context.Context, o Options, c *testenv.Cluster, roles []string, encoding string) (*Stream, error) {
	s := &Stream{o: o, c: c, done: make(chan struct{}), started: time.Now().UTC()}
	if err := prepareDB(ctx, c, roles, encoding); err != nil {
		return nil, err
	}
	args, _ := restoreArgs(Options{}, c) // one job, one transaction
	cmd := exec.CommandContext(ctx, o.Client.Path("pg_restore"), args...)
	cmd.Env = toolEnv()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", o.Client.Path("pg_restore"), err)
	}
	s.cmd, s.stdin = cmd, stdin
	go func() {
		StreamLines(stderr, func(line string) {
			s.st.observe(line)
			if o.Log != nil {
				o.Log(line)
			}
		})
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// Write passes archive bytes to pg_restore. Once pg_restore has stopped
// (it failed, and Finish will say why), Write returns an error; the caller
// keeps writing its file regardless.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	n, err := s.stdin.Write(p)
	if err != nil {
		s.writeErr = err
	}
	return n, err
}

// DropProofDB removes the proof database from c, so that another proof can
// run in the same cluster.
func DropProofDB(ctx context.Context, c *testenv.Cluster) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{ProofDB}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop the proof database: %w", err)
	}
	return nil
}

// Abort stops pg_restore: the dump failed and there is nothing to prove.
// Killing it first frees a Write blocked on its full input.
func (s *Stream) Abort() {
	s.cmd.Process.Kill()
	s.stdin.Close()
	<-s.done
}

// Finish ends pg_restore's input, waits for it, checks that it read the data
// of every table in toc (the archive's table of contents, read from the file
// after the dump) and counts the restored rows. As with Prove, err is for a
// proof that could not be carried out; a restore that failed is a Report
// with Passed false.
func (s *Stream) Finish(ctx context.Context, toc *TOC, facts SchemaFacts) (*Report, error) {
	s.mu.Lock()
	s.stdin.Close()
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		<-s.done // the command's context kills it
		return nil, ctx.Err()
	}
	rep := &Report{Mode: ModeRestore, StartedAt: s.started, TOC: toc, Facts: facts, Streamed: true,
		ServerVersion: s.c.Toolchain.Version.String(), RestoreVersion: s.o.Client.Version.String()}
	defer func() { rep.Duration = time.Since(rep.StartedAt) }()
	fail := func(err error) (*Report, error) { return rep.failed(ctx, err) }
	if s.waitErr != nil {
		return fail(s.st.failure(s.waitErr))
	}
	if err := s.st.readAll(toc.Entries); err != nil {
		return fail(err)
	}
	return rep.counted(ctx, s.c)
}
