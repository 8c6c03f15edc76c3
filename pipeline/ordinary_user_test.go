package pipeline_test

import (
	"context"
	"os"
	"os/user"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestProofAsOrdinaryUser: most users are not root. Run by one, the proof's
// server runs as that user, and where the kernel allows unprivileged user
// namespaces (Debian and most distributions do) the server and pg_restore
// still get no network; a hostile archive still runs nothing as a
// superuser. Run as root (CI), the test runs itself again as "nobody".
func TestProofAsOrdinaryUser(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t)
		return
	}
	markers, err := os.MkdirTemp("", "pgattest-markers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(markers) })
	src := pgtest.New(t, testenv.Options{Superuser: "rdsadmin"})
	execAs(t, src.ConnString("postgres"), `CREATE ROLE postgres LOGIN`)
	execAs(t, src.ConnString("postgres"), `CREATE DATABASE app OWNER postgres`)
	writer := func(sql string) {
		execAs(t, src.ConnStringAs("app", "postgres"), strings.ReplaceAll(sql, "MARKERS", markers))
	}
	writer(pwn)
	writer(hostileVectors[0].setup) // the materialized view
	writer(hostileVectors[1].setup) // the CHECK constraint

	o := backupOptions(t, src.ConnString("app"))
	o.Name = "app"
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if got, _ := os.ReadDir(markers); len(got) > 0 {
		t.Errorf("markers %v appeared: the archive's code ran as a superuser", got)
	}
	p := res.Record.LastProof()
	if res.Record.Status != catalog.StatusVerified || proofRows(res.Record)["public.chk"] != 3 {
		t.Fatalf("status %s, rows %v: %s", res.Record.Status, proofRows(res.Record), p.Error)
	}
	me, _ := user.Current()
	if p.Isolation == nil || p.Isolation.ServerUser != me.Username {
		t.Errorf("isolation %+v: want the server run as %s", p.Isolation, me.Username)
	}
	// Where the kernel refuses user namespaces the record must say so;
	// here (Debian, CI) it allows them.
	if p.Isolation != nil && !strings.HasPrefix(p.Isolation.Network, "none") {
		if os.Getenv(pgtest.RequirePGEnv) == "1" {
			t.Errorf("network %q: want none, through an unprivileged user namespace", p.Isolation.Network)
		} else {
			t.Logf("network %q", p.Isolation.Network)
		}
	}
}

// asNobody runs this test again as the "nobody" user.
func asNobody(t *testing.T) {
	_, out, err := pgtest.RunAsNobody(t, []string{"-test.run", "^TestProofAsOrdinaryUser$", "-test.count", "1", "-test.v"},
		[]string{pgtest.RequirePGEnv + "=" + os.Getenv(pgtest.RequirePGEnv)})
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("the test as nobody failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestProofAsOrdinaryUser") {
		t.Fatal("the test did not run as nobody")
	}
}
