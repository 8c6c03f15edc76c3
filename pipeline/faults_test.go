package pipeline_test

// The fault suite (go tool task test:faults): every test here breaks a
// backup on purpose — a killed pg_dump, a killed pgattest, a source that
// goes away, a full disk — and checks that the failure is loud and harmless:
// a clear error, no archive under its final name, no record, nothing left
// behind after the next run, and the next run succeeds.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// childEnv makes the test binary a backup process that stops at a given
// point and waits to be killed.
const childEnv = "PGATTEST_TEST_CHILD_BACKUP"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childBackup(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what the child backs up, where, and where it stops: "dump"
// (the archive is half written) or "prove" (pg_restore is loading data
// into the throwaway cluster).
type childSpec struct{ DB, Name, Dir, Repo, Catalog, HoldAt string }

func childBackup(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	o := pipeline.Options{DB: cs.DB, Name: cs.Name, Dir: cs.Dir, Repo: cs.Repo, CatalogPath: cs.Catalog, Compress: 1}
	o.OnEvent = func(ev pipeline.Event) {
		hold := false
		switch cs.HoldAt {
		case "dump":
			hold = ev.Stage == "dump" && ev.Kind == pipeline.Progress && ev.Bytes > 0
		case "prove":
			hold = ev.Stage == "prove" && ev.Kind == pipeline.Log && strings.Contains(ev.Text, "processing data for table")
		}
		if hold {
			fmt.Println("HOLDING")
			select {} // until the parent kills us
		}
	}
	pipeline.SetStepHook(func(step string) {
		if step == cs.HoldAt {
			fmt.Println("HOLDING")
			select {}
		}
	})
	_, err := pipeline.Backup(context.Background(), o)
	fmt.Println("finished:", err)
	return 1
}

func TestFaultKilledMidDump(t *testing.T) {
	forEachStore(t, func(t *testing.T, st faultStore) { killedMidRun(t, st, "dump") })
}
func TestFaultKilledMidProof(t *testing.T) {
	forEachStore(t, func(t *testing.T, st faultStore) { killedMidRun(t, st, "prove") })
}

// faultStore is one backend the fault suite runs on, as TestRepoSuite
// runs on both: a folder, or a bucket of the real S3 server on loopback.
type faultStore struct {
	name string
	// use points a backup of NAME at the store.
	use func(o *pipeline.Options)
	// look says what is under NAME/: archives and manifests under their
	// final names; pending (partial files, unfinished uploads); anything
	// else (staging folders, set-aside runs).
	look func(name string) (finals, pending, other []string)
}

// forEachStore runs test on a folder and on a bucket, each a subtest.
func forEachStore(t *testing.T, test func(t *testing.T, st faultStore)) {
	t.Run("folder", func(t *testing.T) {
		var dir string
		test(t, faultStore{name: "folder",
			use: func(o *pipeline.Options) { dir = o.Dir },
			look: func(name string) (finals, pending, other []string) {
				entries, _ := os.ReadDir(filepath.Join(dir, name))
				for _, e := range entries {
					switch n := e.Name(); {
					case strings.Contains(n, ".partial-"):
						pending = append(pending, n)
					case strings.HasPrefix(n, name+"-"):
						finals = append(finals, n)
					default:
						other = append(other, n)
					}
				}
				return
			}})
	})
	t.Run("s3", func(t *testing.T) {
		s := pgtest.NewS3(t)
		s.MakeBucket(t, "faults", false)
		s.SetEnv(t)
		c := s.Client(t)
		test(t, faultStore{name: "s3",
			use: func(o *pipeline.Options) { o.Repo = "s3://faults/pg" },
			look: func(name string) (finals, pending, other []string) {
				ctx := context.Background()
				for o := range c.ListObjects(ctx, "faults", minio.ListObjectsOptions{Prefix: "pg/" + name + "/", Recursive: true}) {
					switch k := strings.TrimPrefix(o.Key, "pg/"+name+"/"); {
					case o.Err != nil:
						other = append(other, o.Err.Error())
					case strings.HasPrefix(k, name+"-"):
						finals = append(finals, k)
					default:
						other = append(other, k)
					}
				}
				for u := range c.ListIncompleteUploads(ctx, "faults", "pg/"+name+"/", true) {
					if u.Err == nil {
						pending = append(pending, u.Key)
					}
				}
				return
			}})
	})
}

// startHeld runs a backup in a child process (this test binary, as
// childBackup) and returns once it holds at spec.HoldAt, to be killed.
func startHeld(t *testing.T, spec childSpec) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l := <-line:
		if l != "HOLDING" {
			cmd.Process.Kill()
			t.Fatalf("child said %q", l)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("child never reached the %s", spec.HoldAt)
	}
	return cmd
}

// killedMidRun runs a backup in a child process, SIGKILLs it at holdAt,
// and checks what it leaves: no final archive, no record, its pg_dump or
// pg_restore and its throwaway server dead, its archive pending (a partial
// file, an unfinished upload); then the next backup of the name succeeds,
// says it removed what the killed run left, and leaves only its archive
// and manifest (no partial, no upload, no staging folder, no cluster
// folder of the dead run's).
func killedMidRun(t *testing.T, st faultStore, holdAt string) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	st.use(&o)
	cmd := startHeld(t, childSpec{DB: o.DB, Name: o.Name, Dir: o.Dir, Repo: o.Repo, Catalog: o.CatalogPath, HoldAt: holdAt})
	if _, pending, _ := st.look("shop"); len(pending) != 1 {
		t.Fatalf("expected the archive pending (one partial file or upload), found %q", pending)
	}
	tool := map[string]string{"dump": "pg_dump", "prove": "pg_restore"}[holdAt]
	toolPID := pgtest.ChildProcess(cmd.Process.Pid, tool)
	if toolPID == 0 {
		t.Errorf("could not find the child's %s process", tool)
	}
	clusters := clusterFolders(cmd.Process.Pid)
	if holdAt == "prove" && len(clusters) != 1 {
		t.Fatalf("expected the child's throwaway cluster mid-proof, found %q", clusters)
	}
	var postmasters []int
	for _, dir := range clusters {
		if pid := postmasterPID(dir); pid > 0 {
			postmasters = append(postmasters, pid)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// Its children die with it (the parent-death signal), not hours later.
	for _, pid := range append([]int{toolPID}, postmasters...) {
		if pid > 0 && !pgtest.WaitGone(pid, 20*time.Second) {
			t.Errorf("process %d outlived its killed parent", pid)
		}
	}
	if finals, _, _ := st.look("shop"); len(finals) > 0 {
		t.Fatalf("killed run left final files: %q", finals)
	}
	assertNoRecords(t, o.CatalogPath)

	// The next backup of the name succeeds and removes the leftovers.
	logged := logLines(&o)
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("next backup: %v", err)
	}
	if res.Record.Status != catalog.StatusVerified {
		t.Fatalf("next backup status %s", res.Record.Status)
	}
	if !slices.ContainsFunc(logged(), func(l string) bool { return strings.Contains(l, "aborted 1 unfinished upload(s) of killed runs") }) {
		t.Errorf("the next run did not say it removed the killed run's pending archive: %q", logged())
	}
	finals, pending, other := st.look("shop")
	if len(finals) != 2 || len(pending) != 0 || len(other) != 0 {
		t.Errorf("after the next run: finals %q, pending %q, other %q; want one archive and its manifest", finals, pending, other)
	}
	for _, dir := range clusters {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed run's cluster folder %s survived the next run (%v)", dir, err)
		}
	}
}

// TestFaultPgDumpKilled: pg_dump killed mid-dump is a DumpError saying
// so, and nothing is left: no record, nothing under the name (no partial
// file, no unfinished upload). On a folder and a bucket.
func TestFaultPgDumpKilled(t *testing.T) { forEachStore(t, pgDumpKilled) }

func pgDumpKilled(t *testing.T, st faultStore) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	st.use(&o)
	killed := 0
	o.OnEvent = func(ev pipeline.Event) {
		if ev.Stage == "dump" && ev.Kind == pipeline.Progress && ev.Bytes > 0 && killed == 0 {
			// We hold the reading end: pg_dump cannot finish meanwhile.
			killed = pgtest.ChildProcess(os.Getpid(), "pg_dump")
			if killed > 0 {
				syscall.Kill(killed, syscall.SIGKILL)
			}
		}
	}
	_, err := pipeline.Backup(context.Background(), o)
	t.Logf("error: %v", err)
	if killed == 0 {
		t.Fatal("never found pg_dump to kill")
	}
	var de *pipeline.DumpError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "pg_dump was killed") {
		t.Fatalf("error %v (%T), want a DumpError saying pg_dump was killed", err, err)
	}
	assertNothingLeft(t, st)
	assertNoRecords(t, o.CatalogPath)
}

// TestFaultSourceStoppedMidDump: the source stopped mid-dump is a
// DumpError quoting why, and nothing is left. On a folder and a bucket.
func TestFaultSourceStoppedMidDump(t *testing.T) { forEachStore(t, sourceStoppedMidDump) }

func sourceStoppedMidDump(t *testing.T, st faultStore) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	st.use(&o)
	stopped := false
	o.OnEvent = func(ev pipeline.Event) {
		if ev.Stage == "dump" && ev.Kind == pipeline.Progress && ev.Bytes > 0 && !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := src.Stop(ctx); err != nil {
				t.Errorf("stop source: %v", err)
			}
		}
	}
	_, err := pipeline.Backup(context.Background(), o)
	t.Logf("error: %v", err)
	if !stopped {
		t.Fatal("the dump never started")
	}
	var de *pipeline.DumpError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want a DumpError", err, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "terminating connection due to administrator command") && !strings.Contains(msg, "server closed the connection") {
		t.Errorf("error does not quote why pg_dump stopped: %s", msg)
	}
	assertNothingLeft(t, st)
	assertNoRecords(t, o.CatalogPath)
}

func TestFaultDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// 512 KiB: the shop archive is about 1.6 MiB.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", o.Dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", o.Dir).Run() })

	_, err := pipeline.Backup(context.Background(), o)
	t.Logf("error: %v", err)
	var de *pipeline.DirError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v (%T), want a DirError for a full disk", err, err)
	}
	if !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(de.Hint(), "full") {
		t.Errorf("error %q, hint %q: want them to say the disk is full", err, de.Hint())
	}
	assertEmptyFolder(t, filepath.Join(o.Dir, "shop"))
	assertNoRecords(t, o.CatalogPath)
	var st syscall.Statfs_t
	if err := syscall.Statfs(o.Dir, &st); err == nil && st.Bfree != st.Blocks {
		t.Errorf("the full disk still holds %d KiB after the failed run", (st.Blocks-st.Bfree)*uint64(st.Bsize)/1024)
	}

	// Once there is room, the same command works.
	exec.Command("mount", "-o", "remount,size=64m", o.Dir).Run()
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil || res.Record.Status != catalog.StatusVerified {
		t.Fatalf("backup after making room: %v", err)
	}
	if res.Record.Proofs[0].Mode != string(verify.ModeRestore) || res.Record.Proofs[0].Rows == 0 {
		t.Errorf("proof %+v", res.Record.Proofs[0])
	}
}

// assertEmptyFolder checks that a failed run left nothing in dir (no
// archive, no staging folder); a missing dir is fine.
func assertEmptyFolder(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

// assertNothingLeft checks that a failed run left nothing under its name
// in the store: no archive, no partial file or unfinished upload, no
// staging folder.
func assertNothingLeft(t *testing.T, st faultStore) {
	t.Helper()
	finals, pending, other := st.look("shop")
	if len(finals)+len(pending)+len(other) > 0 {
		t.Errorf("left behind in the %s: finals %q, pending %q, other %q", st.name, finals, pending, other)
	}
}

// assertNoRecords checks that the catalog, if there is one, holds no record.
func assertNoRecords(t *testing.T, path string) {
	t.Helper()
	c, err := catalog.Open(path, catalog.Options{ReadOnly: true})
	if errors.Is(err, catalog.ErrNoCatalog) {
		return
	}
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	defer c.Close()
	recs, _ := c.List(catalog.Query{})
	if len(recs) > 0 {
		t.Errorf("the failed run left %d records", len(recs))
	}
}

// clusterFolders lists the throwaway cluster folders in the temp folder
// that process pid owns (its pid is in their lock file).
func clusterFolders(pid int) []string {
	locks, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgattest-pg-*", ".owner.lock"))
	var out []string
	for _, l := range locks {
		b, err := os.ReadFile(l)
		if err == nil && strings.TrimSpace(string(b)) == fmt.Sprint(pid) {
			out = append(out, filepath.Dir(l))
		}
	}
	return out
}

func postmasterPID(clusterDir string) int {
	b, err := os.ReadFile(filepath.Join(clusterDir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	return pid
}

// TestFaultKilledAtCompletion: a backup to S3 SIGKILLed at each step of
// its completion (the fault proxy kills it as a request reaches the store,
// or once the store answered). Whatever the step, the next run of the name
// leaves nothing under a final name without a manifest: it aborts the
// unfinished uploads, and an archive a killed run completed without its
// manifest (the old code left it there for good, and its manifest's upload
// open) is said and set aside under NAME/.pgattest-unrecorded/, also after
// a reboot emptied the temp folder (the marks live in the state folder).
func TestFaultKilledAtCompletion(t *testing.T) {
	src := shopCluster(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "completion", false)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_PROFILE", "")
	c := s.Client(t)
	keys := func(prefix string) (archives, manifests, aside []string) {
		for o := range c.ListObjects(context.Background(), "completion", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			switch {
			case o.Err != nil:
			case strings.Contains(o.Key, pipeline.UnrecordedDir):
				aside = append(aside, o.Key)
			case strings.HasSuffix(o.Key, ".manifest.json"):
				manifests = append(manifests, strings.TrimSuffix(o.Key, ".manifest.json"))
			default:
				archives = append(archives, strings.TrimSuffix(o.Key, ".dump"))
			}
		}
		return
	}
	uploads := func(prefix string) (n int) {
		for u := range c.ListIncompleteUploads(context.Background(), "completion", prefix, true) {
			if u.Err == nil {
				n++
			}
		}
		return n
	}
	for _, step := range []struct {
		name   string
		kind   string
		n      int
		after  bool // kill once the store answered
		orphan bool // the kill leaves an archive without a manifest
	}{
		{"archive completing", "CompleteMultipartUpload", 1, false, false},
		{"archive completed", "CreateMultipartUpload", 2, false, true},
		{"manifest completing", "CompleteMultipartUpload", 2, false, true},
		{"manifest stored", "CompleteMultipartUpload", 2, true, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			prefix := strings.ReplaceAll(step.name, " ", "-")
			o := backupOptions(t, src.ConnString("shop"))
			o.Name, o.Repo = "shop", "s3://completion/"+prefix
			var pid atomic.Int64
			kill := func(r *http.Request, kind string, n int) bool {
				if kind != step.kind || n != step.n {
					return false
				}
				syscall.Kill(int(pid.Load()), syscall.SIGKILL)
				return true
			}
			p := pgtest.NewFaultProxy(t, s, func(r *http.Request, kind string, n int) pgtest.Fault {
				if !step.after && kill(r, kind, n) {
					return pgtest.Stall
				}
				return pgtest.Pass
			})
			p.After(func(r *http.Request, kind string, n int) {
				if step.after {
					kill(r, kind, n)
				}
			})
			t.Setenv("AWS_ENDPOINT_URL_S3", p.Endpoint)
			spec, _ := json.Marshal(childSpec{DB: o.DB, Name: o.Name, Repo: o.Repo, Catalog: o.CatalogPath})
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid.Store(int64(cmd.Process.Pid))
			cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("the backup was not killed at %s: %v", step.name, cmd.ProcessState)
			}
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its pg_dump, pg_restore
			archives, manifests, _ := keys(prefix + "/")
			if step.orphan && (len(archives) != 1 || len(manifests) != 0) {
				t.Fatalf("after the kill: archives %v, manifests %v; want one archive without a manifest", archives, manifests)
			}

			t.Setenv("AWS_ENDPOINT_URL_S3", s.Endpoint)
			t.Setenv("TMPDIR", t.TempDir()) // a reboot empties the temp folder
			logged := logLines(&o)
			res, err := pipeline.Backup(context.Background(), o)
			if err != nil || res.Record.Status != catalog.StatusVerified {
				t.Fatalf("next backup: %v", err)
			}
			archives, manifests, aside := keys(prefix + "/")
			for _, a := range archives {
				if !slices.Contains(manifests, a) {
					t.Errorf("%s is under its final name without a manifest (archives %v, manifests %v)", a, archives, manifests)
				}
			}
			if n := uploads(prefix + "/"); n != 0 {
				t.Errorf("%d unfinished uploads left", n)
			}
			lines := logged()
			said := slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "set aside") })
			if step.orphan && (len(aside) != 1 || !said) {
				t.Errorf("the killed run's archive was not said and set aside: under %s %v; log %q", pipeline.UnrecordedDir, aside, lines)
			}
			if !step.orphan && len(aside) != 0 {
				t.Errorf("set aside %v, which had its manifest", aside)
			}
		})
	}
}

// TestFaultKilledAtCompletionFolder: the same kills on a folder, which
// backups write through the same repository interface: killed once its
// archive is completed (no manifest yet), the next run of the name says so
// and sets the archive aside; killed once the manifest is stored, it sets
// nothing aside. Either way nothing stays under a final name without its
// manifest, and no partial file is left.
func TestFaultKilledAtCompletionFolder(t *testing.T) {
	src := shopCluster(t)
	for _, step := range []struct {
		name   string
		orphan bool
	}{{"archive completed", true}, {"manifest stored", false}} {
		t.Run(step.name, func(t *testing.T) {
			o := backupOptions(t, src.ConnString("shop"))
			o.Name = "shop"
			cmd := startHeld(t, childSpec{DB: o.DB, Name: o.Name, Dir: o.Dir, Catalog: o.CatalogPath, HoldAt: step.name})
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			nameDir := filepath.Join(o.Dir, "shop")
			files := func(pattern string) []string {
				m, _ := filepath.Glob(filepath.Join(nameDir, pattern))
				return m
			}
			if step.orphan && (len(files("*.dump")) != 1 || len(files("*.manifest.json")) != 0) {
				t.Fatalf("after the kill: %q; want one archive without a manifest", files("*"))
			}
			assertNoRecords(t, o.CatalogPath)

			t.Setenv("TMPDIR", t.TempDir()) // a reboot empties the temp folder
			logged := logLines(&o)
			res, err := pipeline.Backup(context.Background(), o)
			if err != nil || res.Record.Status != catalog.StatusVerified {
				t.Fatalf("next backup: %v", err)
			}
			for _, a := range files("*.dump") {
				if _, err := os.Stat(strings.TrimSuffix(a, ".dump") + ".manifest.json"); err != nil {
					t.Errorf("%s is under its final name without a manifest", a)
				}
			}
			if p := files(".*partial*"); len(p) != 0 {
				t.Errorf("partial files left: %q", p)
			}
			aside, _ := filepath.Glob(filepath.Join(nameDir, pipeline.UnrecordedDir, "*.dump"))
			lines := logged()
			said := slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "set aside") })
			if step.orphan && (len(aside) != 1 || !said) {
				t.Errorf("the killed run's archive was not said and set aside: under %s %q; log %q", pipeline.UnrecordedDir, aside, lines)
			}
			if !step.orphan && len(aside) != 0 {
				t.Errorf("set aside %q, which had its manifest", aside)
			}
		})
	}
}

// logLines collects the run's log lines (they come from its goroutines);
// the function returned gives those so far.
func logLines(o *pipeline.Options) func() []string {
	var mu sync.Mutex
	var lines []string
	o.OnEvent = func(ev pipeline.Event) {
		if ev.Kind == pipeline.Log {
			mu.Lock()
			lines = append(lines, ev.Text)
			mu.Unlock()
		}
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

// TestManifestRefusedKeepsTheArchive: the manifest's name is taken (a
// writer of the folder planted a file there) once the archive is stored:
// the proven archive is not deleted (the old code deleted it) but set aside
// with its manifest for catalog import, and the error says where.
func TestManifestRefusedKeepsTheArchive(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	nameDir := filepath.Join(o.Dir, "shop")
	pipeline.SetStepHook(func(step string) {
		if step != "archive completed" {
			return
		}
		archives, _ := filepath.Glob(filepath.Join(nameDir, "shop-*.dump"))
		for _, a := range archives {
			os.WriteFile(strings.TrimSuffix(a, ".dump")+".manifest.json", []byte("planted"), 0o600)
		}
	})
	t.Cleanup(func() { pipeline.SetStepHook(func(string) {}) })
	_, err := pipeline.Backup(context.Background(), o)
	var nr *pipeline.NotRecordedError
	if !errors.As(err, &nr) || nr.Manifest == "" || !strings.Contains(nr.Archive, pipeline.UnrecordedDir) {
		t.Fatalf("error %v (%T), want the archive set aside with its manifest", err, err)
	}
	m, err := pipeline.ReadManifest(nr.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Record.Status != catalog.StatusVerified || m.Record.Archive.Path != nr.Archive {
		t.Errorf("the set-aside manifest: status %s, archive %s", m.Record.Status, m.Record.Archive.Path)
	}
	d, err := verify.HashArchive(nr.Archive, verify.FormatCustom)
	if err != nil || d.BLAKE3 != m.Record.Archive.BLAKE3 {
		t.Errorf("the set-aside archive %s (%v) is not the one proven", nr.Archive, err)
	}
	assertNoRecords(t, o.CatalogPath)
}

// TestProofReadsTheFileWritten: a writer of the backups folder swaps the
// partial archive for its own as the proof starts (--verify read reads the
// file); the proof reads the bytes the dump wrote (handed to pg_restore as
// /dev/fd/3), not theirs (the old code read the name, and failed on the
// planted file), and what is committed is the dump's.
func TestProofReadsTheFileWritten(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name, o.Verify = "shop", verify.ModeRead
	nameDir := filepath.Join(o.Dir, "shop")
	swapped := 0
	o.OnEvent = func(ev pipeline.Event) {
		if ev.Stage != "prove" || ev.Kind != pipeline.StageStart {
			return
		}
		partials, _ := filepath.Glob(filepath.Join(nameDir, ".shop-*.dump.partial-*"))
		for _, p := range partials {
			if os.Rename(p, p+".moved") == nil && os.WriteFile(p, []byte("PGDMP hostile, not an archive"), 0o600) == nil {
				swapped++
			}
		}
	}
	res, err := pipeline.Backup(context.Background(), o)
	if swapped != 1 {
		t.Fatalf("swapped %d partial files, want 1", swapped)
	}
	if err != nil {
		t.Fatalf("backup: %v (the proof read the planted file)", err)
	}
	if p := res.Record.LastProof(); p == nil || p.Status != catalog.ProofPassed || p.Mode != "read" {
		t.Errorf("proof %+v, want a passed read-through", p)
	}
	d, err := verify.HashArchive(res.Record.Archive.Path, verify.FormatCustom)
	if err != nil || d.BLAKE3 != res.Record.Archive.BLAKE3 {
		t.Errorf("the committed archive is not the one written: %v", err)
	}
}
