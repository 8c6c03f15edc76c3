package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestRestoreNeverLandsOnTheSource: a backup taken over TCP, then restore
// --clean aimed at the same database written every other way (the Unix
// socket in key=value form and as a URL, localhost, ::1, a session-mode
// PgBouncer in front): every one is refused, the source untouched; another
// database on the same server restores. Once as the superuser (the
// server's system identifier is known), once as an ordinary role that may
// not read it (start time, port, OID and name decide).
func TestRestoreNeverLandsOnTheSource(t *testing.T) {
	for _, who := range []string{"superuser", "ordinary role without pg_control_system"} {
		t.Run(who, func(t *testing.T) {
			src := shop(t, testenv.Options{TCP: true})
			user, pass := testenv.Superuser, ""
			if who != "superuser" {
				user, pass = "backup_bot", "bot-pw-31"
				exec1(t, src, "postgres", "CREATE ROLE backup_bot LOGIN PASSWORD 'bot-pw-31' IN ROLE shop_owner, shop_reader",
					"CREATE DATABASE shop_copy OWNER shop_owner")
				exec1(t, src, "shop", "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC") // as on some managed services
			} else {
				exec1(t, src, "postgres", "CREATE DATABASE shop_copy")
			}
			w := newWorkdir(t)
			tcp := func(host, db string) string {
				u := url.URL{Scheme: "postgresql", Host: host + ":" + strconv.Itoa(src.Port), Path: "/" + db}
				u.User = url.User(user)
				if pass != "" {
					u.User = url.UserPassword(user, pass)
				}
				return u.String()
			}
			rec := w.mustBackup(t, "--db", tcp("127.0.0.1", "shop"), "--name", "shop")
			id := rec.Source.Identity
			if id == nil || id.Database != "shop" || id.Port != src.Port || (who == "superuser") != (id.SystemID != "") {
				t.Fatalf("recorded identity %+v", id)
			}
			before := query1(t, src, "shop", "SELECT count(*)::text FROM shop.orders")
			bouncer := pgtest.NewBouncer(t, src, "session")
			socketKV := testenv.KeyValue([][2]string{{"host", src.SocketDir}, {"port", strconv.Itoa(src.Port)}, {"user", user}, {"dbname", "shop"}, {"password", pass}})
			socketURL := fmt.Sprintf("postgresql://%s:%s@/shop?host=%s&port=%d", user, pass, url.QueryEscape(src.SocketDir), src.Port)
			spellings := map[string]string{
				"socket, key=value": socketKV,
				"socket, URL":       socketURL,
				"localhost":         tcp("localhost", "shop"),
				"::1":               tcp("[::1]", "shop"),
				"a session pooler":  strings.Replace(tcp("127.0.0.1", "shop"), ":"+strconv.Itoa(src.Port), ":"+strconv.Itoa(bouncer.Port), 1),
			}
			if who != "superuser" { // the bouncer trusts only the superuser
				delete(spellings, "a session pooler")
			}
			for spelling, target := range spellings {
				code, out, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--clean", "--target", target)
				if code == 0 || !strings.Contains(errOut, "is the database this backup was taken from") || !strings.Contains(errOut, "hint: ") {
					t.Errorf("%s: exit %d, want a refusal\n%s%s", spelling, code, out, errOut)
				}
			}
			if after := query1(t, src, "shop", "SELECT count(*)::text FROM shop.orders"); after != before {
				t.Errorf("the source changed: %s orders, then %s", before, after)
			}
			code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--target", tcp("127.0.0.1", "shop_copy"))
			if code != 0 {
				t.Errorf("restore into another database of the same server: exit %d\n%s", code, errOut)
			}
		})
	}
}

// TestNamesNeverMixSources: shop on two servers gets two default names
// (the whole host and the port), and a backup of another source under a
// taken name is refused (exit 2) unless --force-name.
func TestNamesNeverMixSources(t *testing.T) {
	// Two servers of their own (clusters copied from one template share a
	// system identifier, as a primary and its replicas do).
	a, b := shop(t, testenv.Options{TCP: true, OwnSystemID: true}), shop(t, testenv.Options{TCP: true, OwnSystemID: true})
	w := newWorkdir(t)
	ra := w.mustBackup(t, "--db", a.URL("shop", "", ""))
	rb := w.mustBackup(t, "--db", b.URL("shop", "", ""))
	if want := "shop@127.0.0.1+" + strconv.Itoa(a.Port); ra.Name != want {
		t.Errorf("default name %q, want %q", ra.Name, want)
	}
	if ra.Name == rb.Name {
		t.Fatalf("two servers share the name %q", ra.Name)
	}
	// The same source, however it is reached, keeps its name.
	socket := testenv.KeyValue([][2]string{{"host", a.SocketDir}, {"port", strconv.Itoa(a.Port)}, {"user", testenv.Superuser}, {"dbname", "shop"}})
	if code, _, errOut := w.backup(t, "--db", socket, "--name", ra.Name); code != 0 {
		t.Errorf("the same source over its socket: exit %d\n%s", code, errOut)
	}
	code, _, errOut := w.backup(t, "--db", b.URL("shop", "", ""), "--name", ra.Name)
	if code != exitUsage || !strings.Contains(errOut, "belongs to another source") || !strings.Contains(errOut, "--force-name") {
		t.Errorf("another source under a taken name: exit %d, want 2\n%s", code, errOut)
	}
	if code, _, errOut := w.backup(t, "--db", b.URL("shop", "", ""), "--name", ra.Name, "--force-name"); code != 0 {
		t.Errorf("--force-name: exit %d\n%s", code, errOut)
	}
}

// TestNamesBoundInTheRepository: two machines, each with its own catalog,
// back up into one folder or bucket. The second backing up another source
// under a name the repository's manifests bind to the first's is refused
// (exit 2, naming the repository), as a catalog refuses it (the old code
// took it: the name then held two sources); the same source from the second
// machine is fine, and --force-name forces it.
func TestNamesBoundInTheRepository(t *testing.T) {
	a, b := shop(t, testenv.Options{OwnSystemID: true}), shop(t, testenv.Options{OwnSystemID: true})
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "bound", false)
	s.SetEnv(t)
	for _, backend := range []string{"folder", "s3"} {
		t.Run(backend, func(t *testing.T) {
			one, two := newWorkdir(t), newWorkdir(t)
			where := []string{"--dir", one.dir}
			if backend == "s3" {
				where = []string{"--repo", "s3://bound/" + backend}
			}
			backup := func(w workdir, db string, extra ...string) (int, string) {
				args := append([]string{"--catalog", w.catalog, "backup", "--db", db, "--name", "shop"}, where...)
				code, _, errOut := run(t, append(args, extra...)...)
				return code, errOut
			}
			if code, errOut := backup(one, a.ConnString("shop")); code != 0 {
				t.Fatalf("first machine: exit %d\n%s", code, errOut)
			}
			code, errOut := backup(two, b.ConnString("shop"))
			if code != exitUsage || !strings.Contains(errOut, "belongs to another source") || !strings.Contains(errOut, "its backups in ") {
				t.Errorf("another source under the repository's name: exit %d, want 2 naming the repository\n%s", code, errOut)
			}
			if code, errOut := backup(two, a.ConnString("shop")); code != 0 {
				t.Errorf("the same source from the second machine: exit %d\n%s", code, errOut)
			}
			if code, errOut := backup(two, b.ConnString("shop"), "--force-name"); code != 0 {
				t.Errorf("--force-name: exit %d\n%s", code, errOut)
			}

			// A rebuild keeps the two sources apart: the name stays with
			// its oldest backup's source, the other's go under shop~2.
			repoURL := "s3://bound/" + backend
			if backend == "folder" {
				repoURL = one.dir
			}
			fresh := filepath.Join(t.TempDir(), "rebuilt.db")
			code, out, errOut := run(t, "--catalog", fresh, "catalog", "rebuild", "--repo", repoURL)
			if code != 0 || !strings.Contains(out, "holds another source") || !strings.Contains(out, "recorded as shop~2") {
				t.Fatalf("rebuild: exit %d, want the two sources reported\n%s%s", code, out, errOut)
			}
			sysid := func(c *testenv.Cluster) string {
				return query1(t, c, "shop", "SELECT system_identifier::text FROM pg_control_system()")
			}
			sources := map[string]map[string]int{}
			for _, name := range []string{"shop", "shop~2"} {
				code, out, _ := run(t, "--catalog", fresh, "--json", "list", "--name", name)
				var recs []catalog.Record
				if code != 0 || json.Unmarshal([]byte(out), &recs) != nil {
					t.Fatalf("list --name %s: exit %d\n%s", name, code, out)
				}
				sources[name] = map[string]int{}
				for _, r := range recs {
					sources[name][r.Source.Identity.SystemID]++
				}
			}
			if len(sources["shop"]) != 1 || len(sources["shop~2"]) != 1 || sources["shop"][sysid(a)] != 2 || sources["shop~2"][sysid(b)] != 1 {
				t.Errorf("after rebuild, sources by name: %v; want shop: 2 of the first, shop~2: 1 of the other", sources)
			}
		})
	}
}
