package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/rogpeppe/go-internal/testscript"
)

var updateScripts = flag.Bool("update", false, "rewrite the golden files of testdata/script from what the commands print")

// TestScripts runs the command-line scripts of testdata/script: each pins
// one command's exit codes, the words it prints and the shape of its
// --json, against the real main and a real Postgres (the sample shop in
// $SHOP_URL, one server for every script). Commands of the scripts, beside
// testscript's own:
//
//	pgattest ARGS...        the real main, in a process of its own (must succeed; ! must fail)
//	exits N ARGS...         pgattest ARGS..., which must exit with code N
//	json SHAPE [KEYS]       stdout is one JSON document: "object" (with the comma-separated KEYS) or "array"
//	setid VAR               VAR = the "id" of the first record in stdout's JSON
//	createdb NAME           a database NAME on the shop's server; its URL in $NAME_URL
func TestScripts(t *testing.T) {
	src := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := testenv.LoadSample(ctx, src, "shop"); err != nil {
		t.Fatal(err)
	}
	var dbs atomic.Int32
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join("testdata", "script"),
		UpdateScripts: *updateScripts,
		Setup: func(env *testscript.Env) error {
			env.Setenv("SHOP_URL", src.URL("shop", "", ""))
			env.Setenv("PGATTEST_CATALOG", filepath.Join(env.WorkDir, "catalog.db"))
			env.Setenv("PGATTEST_DIR", filepath.Join(env.WorkDir, "backups"))
			env.Setenv("PGATTEST_CATALOG_WAIT", "5s")
			env.Setenv("HOME", env.WorkDir)
			// Throwaway clusters live where the server user can reach them
			// (not in $WORK, which is this process's own), and share the
			// test process's initdb template.
			env.Setenv("TMPDIR", os.TempDir())
			env.Setenv("PGATTEST_CACHE_DIR", testenv.CacheDir())
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				want, err := strconv.Atoi(args[0])
				if err != nil || neg {
					ts.Fatalf("usage: exits N ARGS...")
				}
				err = ts.Exec("pgattest", args[1:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("run pgattest: %v", err)
				}
				if got != want {
					ts.Fatalf("pgattest %s: exit %d, want %d", strings.Join(args[1:], " "), got, want)
				}
			},
			"json": func(ts *testscript.TestScript, neg bool, args []string) {
				var v any
				if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
					ts.Fatalf("stdout is not one JSON document: %v", err)
				}
				switch x := v.(type) {
				case map[string]any:
					if args[0] != "object" {
						ts.Fatalf("stdout is a JSON object, want %s", args[0])
					}
					if len(args) > 1 {
						for _, k := range strings.Split(args[1], ",") {
							if _, ok := x[k]; !ok {
								ts.Fatalf("the JSON object has no %q", k)
							}
						}
					}
				case []any:
					if args[0] != "array" {
						ts.Fatalf("stdout is a JSON array, want %s", args[0])
					}
				default:
					ts.Fatalf("stdout is JSON %T", v)
				}
			},
			"setid": func(ts *testscript.TestScript, neg bool, args []string) {
				var one struct {
					ID string `json:"id"`
				}
				var many []struct {
					ID string `json:"id"`
				}
				out := []byte(ts.ReadFile("stdout"))
				if json.Unmarshal(out, &many) == nil && len(many) > 0 {
					one.ID = many[0].ID
				} else if err := json.Unmarshal(out, &one); err != nil || one.ID == "" {
					ts.Fatalf("no record id in stdout: %v", err)
				}
				ts.Setenv(args[0], one.ID)
			},
			"createdb": func(ts *testscript.TestScript, neg bool, args []string) {
				name := args[0] + "_" + strconv.Itoa(int(dbs.Add(1)))
				conn, err := src.Connect(context.Background(), "postgres")
				ts.Check(err)
				defer conn.Close(context.Background())
				_, err = conn.Exec(context.Background(), "CREATE DATABASE "+name)
				ts.Check(err)
				ts.Setenv(strings.ToUpper(args[0])+"_URL", src.URL(name, "", ""))
			},
		},
	})
}
