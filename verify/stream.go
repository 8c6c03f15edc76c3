package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
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
	rep     *Report // what preparing found: facts, skipped, created, isolation
	keep    []Entry // the entries pg_restore restores

	removeList func()

	mu       sync.Mutex
	writeErr error
}

// StartStream prepares the proof database in the running cluster c for the
// archive whose table of contents is toc (read from the stream's first
// bytes, HeadTOC), as Prove does, and starts pg_restore reading from its
// standard input. An error that reports ProofFailed (a missing extension)
// is a verdict on the archive: the caller proves the file instead, after
// DropProofDB, to report it whole.
func StartStream(ctx context.Context, o Options, c *testenv.Cluster, toc *TOC) (*Stream, error) {
	s := &Stream{o: o, c: c, done: make(chan struct{}), started: time.Now().UTC()}
	s.rep = &Report{Mode: ModeRestore, TOC: toc, Facts: FactsOf(toc), Streamed: true,
		ServerVersion: c.Toolchain.Version.String(), RestoreVersion: o.Client.Version.String(), cluster: c, need: o.Need}
	if o.Scratch == "" {
		o.Scratch = os.TempDir()
	}
	set, err := prepareProof(ctx, o, c, s.rep)
	if err != nil {
		return nil, shortage(err, c, s.rep.Isolation.RestoreRole, o.Need)
	}
	s.keep = set.keep
	list, remove, err := restoreList(o.Scratch, set.keep)
	if err != nil {
		return nil, err
	}
	s.removeList = remove
	args, _ := restoreArgs(Options{}, c, set.restorer) // one job, one transaction
	args = append(args, "-L", list)
	cmd := toolCommand(ctx, set.sandbox, o.Client.Path("pg_restore"), args, nil)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		remove()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		remove()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		remove()
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
		remove()
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

// DropProofDB removes the proof database and every role but the built-in
// ones and the cluster's superuser from c, so that another proof can run in
// the same cluster.
func DropProofDB(ctx context.Context, c *testenv.Cluster) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect to throwaway cluster: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{ProofDB}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop the proof database: %w", err)
	}
	rows, _ := conn.Query(ctx, `SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user ORDER BY 1`)
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the proof's roles: %w", err)
	}
	for _, r := range roles {
		if _, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{r}.Sanitize()); err != nil {
			return fmt.Errorf("drop the proof's role %q: %w", r, err)
		}
	}
	return nil
}

// ProveFromFile reports whether a streamed proof's failure is to be proven
// again from the archive as a file: an incomplete stream (pg_restore may
// have wanted a block out of the stream's order).
func ProveFromFile(failure error) bool { return errors.Is(failure, ErrIncomplete) }

// Abort stops pg_restore: the dump failed and there is nothing to prove.
// Killing it first frees a Write blocked on its full input.
func (s *Stream) Abort() {
	s.cmd.Process.Kill()
	s.stdin.Close()
	<-s.done
}

// Finish ends pg_restore's input, waits for it, checks that it read the data
// of every table it was to restore and counts the restored rows. toc is the
// archive's table of contents read from the file after the dump (with
// pg_restore's header), recorded in the report. As with Prove, err is for a
// proof that could not be carried out; a restore that failed is a Report
// with Passed false.
func (s *Stream) Finish(ctx context.Context, toc *TOC) (*Report, error) {
	s.mu.Lock()
	s.stdin.Close()
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		<-s.done // the command's context kills it
		return nil, ctx.Err()
	}
	rep := s.rep
	rep.StartedAt = s.started
	if toc != nil {
		rep.TOC = toc
	}
	defer func() { rep.Duration = time.Since(rep.StartedAt) }()
	fail := func(err error) (*Report, error) { return rep.failed(ctx, err) }
	if s.waitErr != nil {
		return fail(explainSuperuser(s.st.failure(s.waitErr), rep.TOC, s.o.Superusers, loggedBy(s.c, rep.Isolation.RestoreRole)))
	}
	if err := s.st.readAll(s.keep); err != nil {
		return fail(err)
	}
	return rep.counted(ctx, s.c)
}
