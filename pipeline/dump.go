package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
	"golang.org/x/sys/unix"
)

// archiveMagic starts every custom-format archive.
var archiveMagic = []byte("PGDMP")

// progressEvery is how often the dump reports bytes written.
const progressEvery = 250 * time.Millisecond

// dump runs pg_dump into the staging folder. A custom-format archive comes
// from pg_dump's stdout through the BLAKE3 hasher into the file, so the
// digest costs no second read; a directory-format archive (--jobs > 1) is
// written by pg_dump's workers and hashed file by file afterwards.
func (r *run) dump(ctx context.Context) error {
	level := r.o.Compress
	r.deflate = r.format == verify.FormatCustom && deflatesArchive(r.client.Version.Major, level)
	if r.deflate {
		level = 0 // pgattest compresses: see deflate.go
	}
	args := []string{"--no-password", "--verbose", "--compress=" + strconv.Itoa(level)}
	if r.format == verify.FormatDirectory {
		r.archive = filepath.Join(r.staging.Dir, r.base+".dir")
		args = append(args, "--format=directory", "--jobs="+strconv.Itoa(r.o.Jobs), "--file="+r.archive)
	} else {
		args = append(args, "--format=custom")
	}
	args = append(args, "--dbname="+r.src.ChildConnInfo())
	path := r.client.Path("pg_dump")
	r.log("dump", r.red.String(commandLine(path, args)))

	var err error
	if r.format == verify.FormatDirectory {
		err = r.dumpDirectory(ctx, path, args)
	} else {
		err = r.dumpCustom(ctx, path, args)
	}
	if err != nil {
		return err
	}
	r.rec.Archive.Format = r.format
	r.rec.Archive.Compression = r.o.Compress
	if r.o.Jobs > 1 {
		r.rec.Archive.Jobs = r.o.Jobs
	}
	if r.deflate {
		r.rec.Archive.Compressor = "pgattest"
	}
	return nil
}

func (r *run) dumpCustom(ctx context.Context, path string, args []string) error {
	// Reads from the pipe come in chunks of up to 1 MiB; each goes to the
	// file as it is (a buffer in between measured slower), or to the
	// store's upload, which buffers parts in its staging folder.
	//
	// Encrypted, the plaintext goes to its hasher, the head, the proof and
	// age; what age writes (the stored bytes) to the stored hasher and the
	// file or upload. No plaintext reaches the disk or the store.
	h := verify.NewHasher()
	if r.seal == nil {
		h = verify.NewSegmentedHasher() // h hashes the stored bytes
		if r.signer != nil {
			h.WithSHA256() // for the receipt's subject
		}
	}
	// The key is claimed as the upload starts: a run of the same name in
	// the same second (here or on another machine) that got there first
	// keeps it, and this one takes the next free -N.
	var u repo.Upload
	for {
		var err error
		u, err = r.repo.Create(ctx, r.key, repo.CreateOptions{RetainUntil: r.retainUntil, LockMode: r.o.LockMode,
			Metadata: map[string]string{"pgattest-name": r.rec.Name, "pgattest-id": r.rec.ID}, Exclusive: true})
		if errors.Is(err, repo.ErrExists) && r.keyTry < 1000 {
			if err := r.pickKey(ctx, r.keyTry+1); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return writeErrOf(r.repo, err)
		}
		break
	}
	r.upload = u
	if d, ok := u.(repo.OnDisk); ok && r.seal == nil { // the plain archive, as it is written: a proof may read it
		f, err := d.Reopen()
		if err != nil {
			return writeErrOf(r.repo, err)
		}
		r.archive, r.archiveFile = d.Path(), f // pg_restore gets the file, never the name
	}
	out := []io.Writer{u} // where the stored bytes go
	sinks := []io.Writer{h}
	stored := h
	var enc io.WriteCloser
	if r.seal != nil {
		stored = verify.NewSegmentedHasher()
		if r.signer != nil {
			stored.WithSHA256()
		}
		var err error
		if enc, err = r.seal.Encrypt(io.MultiWriter(append(out, stored)...)); err != nil {
			return fmt.Errorf("start encrypting: %w", err)
		}
		sinks = append(sinks, enc)
	} else {
		sinks = append(sinks, out...)
	}
	r.head = &headKeeper{}
	sinks = append(sinks, r.head)
	if r.o.Verify == verify.ModeRestore {
		// Prove while dumping: the third branch of the tee feeds pg_restore.
		r.stream = newProofSink(ctx, r)
		sinks = append(sinks, r.stream)
	}
	w := &progressWriter{w: io.MultiWriter(sinks...), report: r.reportDump}
	cmd, errs := r.dumpCommand(ctx, path, args, w)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &DumpError{Err: err}
	}
	if f, ok := stdout.(*os.File); ok {
		// pg_dump writes its raw output 4 KiB at a time; a 1 MiB pipe
		// wakes pgattest less often (measured: a tenth off the dump).
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	if err := cmd.Start(); err != nil {
		return &DumpError{Err: fmt.Errorf("start %s: %w", path, err)}
	}
	var copyErr error
	var read int64
	if r.deflate {
		read, copyErr = deflateArchive(w, stdout, r.o.Compress)
	} else {
		_, copyErr = io.CopyBuffer(w, stdout, make([]byte, 1<<20))
	}
	var formatErr *archiveFormatError
	if errors.As(copyErr, &formatErr) {
		// Cut short: pg_dump died, and its exit says why; or pg_dump wrote
		// what pgattest cannot read, and that is the error.
		if errors.Is(copyErr, io.ErrUnexpectedEOF) {
			if err := cmd.Wait(); err != nil {
				return errs.result(ctx, err)
			}
		} else {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if read == 0 {
			return &DumpError{Err: errors.New("pg_dump wrote nothing")}
		}
		return &DumpError{Err: copyErr}
	}
	if copyErr != nil { // the disk is full, the store failed: stop pg_dump, keep nothing
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return writeErrOf(r.repo, fmt.Errorf("write archive: %w", copyErr))
	}
	err = cmd.Wait()
	w.flush()
	if err != nil {
		return errs.result(ctx, err)
	}
	if h.Size() == 0 {
		return &DumpError{Err: errors.New("pg_dump wrote nothing")}
	}
	if !bytes.HasPrefix(w.head, archiveMagic) {
		return &DumpError{Err: fmt.Errorf("pg_dump's output does not start with %q: not a custom-format archive", archiveMagic)}
	}
	if enc != nil {
		if err := enc.Close(); err != nil { // the last chunk
			return writeErrOf(r.repo, fmt.Errorf("write archive: %w", err))
		}
		r.rec.Archive.Encryption = &catalog.Encryption{Scheme: seal.Scheme, Recipients: r.seal.Public,
			PlaintextBLAKE3: h.Sum(), PlaintextSize: h.Size()}
	}
	r.rec.Archive.Size = stored.Size()
	r.rec.Archive.BLAKE3 = stored.Sum()
	r.rec.Archive.SHA256 = stored.SHA256()
	r.rec.Archive.Segments = &catalog.Segments{Size: verify.SegmentSize, BLAKE3: stored.Segments()}
	return nil
}

func (r *run) dumpDirectory(ctx context.Context, path string, args []string) error {
	w := &progressWriter{report: r.reportDump}
	cmd, errs := r.dumpCommand(ctx, path, args, w)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if err := cmd.Start(); err != nil {
		return &DumpError{Err: fmt.Errorf("start %s: %w", path, err)}
	}
	wg.Add(1)
	go func() { // the folder's size stands in for bytes written
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				w.set(dirSize(r.archive))
			}
		}
	}()
	err := cmd.Wait()
	close(stop)
	wg.Wait()
	if err != nil {
		return errs.result(ctx, err)
	}
	// pg_dump leaves the folder 0700 and its files as the umask says;
	// make them private, then durable, then hash them.
	err = filepath.WalkDir(r.archive, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
	if err != nil {
		return &DirError{Dir: r.o.Dir, Err: fmt.Errorf("sync archive: %w", err)}
	}
	d, files, err := verify.HashFolder(r.archive, r.signer != nil) // each file's SHA-256 for the receipt
	if err != nil {
		return &DumpError{Err: err}
	}
	r.files = files
	w.set(d.Size)
	w.flush()
	r.rec.Archive.Size, r.rec.Archive.BLAKE3, r.rec.Archive.Files = d.Size, d.BLAKE3, d.Files
	return nil
}

func (r *run) reportDump(n int64, table string) {
	r.o.OnEvent(Event{Stage: "dump", Kind: Progress, Bytes: n, Text: table})
}

// dumpCommand prepares pg_dump: the password in its environment, its own
// process group (Ctrl-C reaches it through us, and a cancel kills all its
// workers), killed with us if we die, stderr read line by line.
func (r *run) dumpCommand(ctx context.Context, path string, args []string, w *progressWriter) (*exec.Cmd, *dumpErrors) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = r.src.ChildEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	errs := &dumpErrors{}
	cmd.Stderr = &lineWriter{fn: func(line string) {
		if t, ok := dumpingTable(line); ok { // a table's name is data, not pg_dump's words
			w.table(t)
		}
		line = r.red.String(line)
		errs.observe(line)
		r.log("dump", line)
	}}
	return cmd, errs
}

// dumpingTable reads the table name from pg_dump's verbose
// `pg_dump: dumping contents of table "shop.orders"`.
func dumpingTable(line string) (string, bool) {
	const marker = "dumping contents of table "
	i := strings.Index(line, marker)
	if i < 0 {
		return "", false
	}
	return strings.Trim(line[i+len(marker):], `"`), true
}

// dumpErrors keeps pg_dump's error lines to explain a failure.
type dumpErrors struct {
	mu    sync.Mutex
	lines []string
}

func (d *dumpErrors) observe(line string) {
	if strings.Contains(line, "error:") || strings.Contains(line, "FATAL:") || strings.HasPrefix(line, "DETAIL:") || strings.HasPrefix(line, "pg_dump: detail:") {
		d.mu.Lock()
		if len(d.lines) < 4 {
			d.lines = append(d.lines, strings.TrimSpace(strings.TrimPrefix(line, "pg_dump: ")))
		}
		d.mu.Unlock()
	}
}

func (d *dumpErrors) result(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	detail := strings.Join(d.lines, "; ")
	if detail == "" {
		var ee *exec.ExitError
		if errors.As(err, &ee) && !ee.Exited() {
			detail = "pg_dump was killed (" + ee.String() + ")"
		}
	}
	return &DumpError{Err: err, Detail: detail}
}

// progressWriter counts bytes, remembers the archive's first bytes and
// reports progress at most every progressEvery.
type progressWriter struct {
	w      io.Writer
	mu     sync.Mutex
	n      int64
	head   []byte
	tbl    string
	last   time.Time
	report func(n int64, table string)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.mu.Lock()
	if len(p.head) < len(archiveMagic) {
		p.head = append(p.head, b[:min(n, len(archiveMagic)-len(p.head))]...)
	}
	p.n += int64(n)
	p.maybeReport()
	p.mu.Unlock()
	return n, err
}

func (p *progressWriter) set(n int64) {
	p.mu.Lock()
	p.n = n
	p.maybeReport()
	p.mu.Unlock()
}

func (p *progressWriter) table(t string) {
	p.mu.Lock()
	p.tbl = t
	p.mu.Unlock()
}

func (p *progressWriter) maybeReport() {
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.report(p.n, p.tbl)
	}
}

func (p *progressWriter) flush() {
	p.mu.Lock()
	p.report(p.n, "")
	p.mu.Unlock()
}

// lineWriter calls fn for every complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64*1024 { // a runaway line: pass it on in pieces
		l.fn(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

func dirSize(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// commandLine renders a command for --verbose, quoting where needed.
func commandLine(path string, args []string) string {
	parts := []string{path}
	for _, a := range args {
		if strings.ContainsAny(a, " '\"\\$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
