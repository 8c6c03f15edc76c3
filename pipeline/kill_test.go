package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
)

// childEnv makes the test binary a backup process that stops half way
// through the dump and waits to be killed.
const childEnv = "PGATTEST_TEST_CHILD_BACKUP"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childBackup(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what the child backs up, and where.
type childSpec struct{ DB, Name, Dir, Catalog string }

func childBackup(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	o := pipeline.Options{DB: cs.DB, Name: cs.Name, Dir: cs.Dir, CatalogPath: cs.Catalog, Compress: 1}
	o.OnEvent = func(ev pipeline.Event) {
		if ev.Stage == "dump" && ev.Kind == pipeline.Progress && ev.Bytes > 0 {
			fmt.Println("DUMPING")
			select {} // hold the dump here until the parent kills us
		}
	}
	_, err := pipeline.Backup(context.Background(), o)
	fmt.Println("finished:", err)
	return 1
}

func TestKilledMidDumpLeavesNothing(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	spec, err := json.Marshal(childSpec{DB: o.DB, Name: o.Name, Dir: o.Dir, Catalog: o.CatalogPath})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
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
		if l != "DUMPING" {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("child never reached the dump")
	}
	// The dump is half written, in staging.
	nameDir := filepath.Join(o.Dir, "shop")
	partial, _ := filepath.Glob(filepath.Join(nameDir, ".pgattest-staging-*", "*.dump"))
	if len(partial) != 1 {
		t.Fatalf("expected one partial archive in staging, found %q", partial)
	}
	dumpPID := pgDumpChild(cmd.Process.Pid)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// pg_dump dies with its parent (the death signal), not hours later.
	if dumpPID > 0 {
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(dumpPID, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(dumpPID, 0) == nil {
			t.Errorf("pg_dump (pid %d) outlived its killed parent", dumpPID)
		}
	} else {
		t.Error("could not find the child's pg_dump process")
	}
	// No final archive, no record.
	finals, _ := filepath.Glob(filepath.Join(nameDir, "shop-*"))
	if len(finals) > 0 {
		t.Fatalf("killed run left final files: %q", finals)
	}
	if c, err := catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true}); err == nil {
		recs, _ := c.List(catalog.Query{})
		c.Close()
		if len(recs) > 0 {
			t.Fatalf("killed run left %d records", len(recs))
		}
	}
	// The next backup in that folder succeeds and removes the leftovers.
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("next backup: %v", err)
	}
	if res.Record.Status != catalog.StatusVerified {
		t.Fatalf("next backup status %s", res.Record.Status)
	}
	entries, _ := os.ReadDir(nameDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".pgattest-staging-") {
			t.Errorf("leftover staging folder %s survived the next run", e.Name())
		}
	}
	if len(names) != 2 {
		t.Errorf("folder holds %q, want one archive and its manifest", names)
	}
}

// pgDumpChild finds the pg_dump process whose parent is pid.
func pgDumpChild(pid int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(pg_dump") {
			continue
		}
		var state string
		var ppid, self int
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		fmt.Sscanf(s, "%d", &self)
		if ppid == pid {
			return self
		}
	}
	return 0
}
