package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// fakeBin makes a folder of scripts that answer --version as PostgreSQL
// version v does, and otherwise leave a mark that they were run and fail.
func fakeBin(t *testing.T, v string, tools ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), v, "bin")
	os.MkdirAll(dir, 0o755)
	for _, tool := range tools {
		script := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = --version ]; then echo '%s (PostgreSQL) %s'; exit 0; fi\ntouch %q\nexit 1\n",
			tool, v, filepath.Join(dir, "RAN-"+tool))
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Tool choice for servers of majors 14 to 18 against sets of installed
// client tools: the newest installed that is at least the server's major,
// and when none is, a refusal naming both versions and the package.
func TestChooseToolsAcrossMajors(t *testing.T) {
	bins := map[string]string{}
	for _, v := range []string{"14.13", "15.8", "16.4", "17.2", "18beta3"} {
		bins[v] = fakeBin(t, v, "pg_dump", "pg_restore", "initdb", "postgres")
	}
	dirs := func(vs ...string) []string {
		var out []string
		for _, v := range vs {
			out = append(out, bins[v])
		}
		return out
	}
	tests := []struct {
		server    string
		installed []string
		want      string // the version chosen, or "" for a refusal
	}{
		{"14.13", dirs("14.13"), "14.13"},
		{"14.13", dirs("14.13", "16.4"), "16.4"}, // newer pg_dump reads older servers: take the newest
		{"15.18", dirs("14.13", "16.4"), "16.4"},
		{"16.4", dirs("16.4", "17.2"), "17.2"},
		{"17.0", dirs("16.4", "15.8", "14.13"), ""}, // server newer than every pg_dump
		{"17.2", dirs("18beta3"), "18beta3"},
		{"18.1", dirs("17.2"), ""},
		{"18.1", dirs("18beta3", "17.2"), "18beta3"},
		{"15.18", dirs("14.13"), ""},
	}
	for _, tt := range tests {
		server, err := testenv.ParseVersion("PostgreSQL " + tt.server + " on x86_64-pc-linux-gnu")
		if err != nil {
			t.Fatal(err)
		}
		tc, err := pipeline.ChooseTools(server, tt.installed)
		if tt.want != "" {
			if err != nil || tc.Dir != bins[tt.want] {
				t.Errorf("server %s, installed %v: got %v in %s, %v; want %s", tt.server, tt.installed, tc.Version, tc.Dir, err, tt.want)
			}
			// The proof server comes from --pg-bin too, when it fits.
			if sv, err := pipeline.ChooseServer(server, tt.installed); err != nil || sv.Dir != bins[tt.want] {
				t.Errorf("proof server for %s from %v: got %s, %v; want %s", tt.server, tt.installed, sv.Dir, err, tt.want)
			}
			continue
		}
		var te *pipeline.ToolsError
		if !errors.As(err, &te) {
			t.Errorf("server %s, installed %v: got %v, %v; want a ToolsError", tt.server, tt.installed, tc.Version, err)
			continue
		}
		major := strings.Split(tt.server, ".")[0]
		newest := filepath.Base(filepath.Dir(tt.installed[0])) // the first listed is the newest here
		if !strings.Contains(err.Error(), tt.server) || !strings.Contains(err.Error(), strings.TrimSuffix(newest, "beta3")) {
			t.Errorf("error %q does not name the server %s and the newest pg_dump %s", err, tt.server, newest)
		}
		if !strings.Contains(te.Hint(), "postgresql-client-"+major) {
			t.Errorf("hint %q does not name postgresql-client-%s", te.Hint(), major)
		}
	}
}

// The real path: a real PostgreSQL server, and only a pg_dump older than it
// (--pg-bin): backup refuses before running pg_dump, naming both versions.
func TestServerNewerThanPgDump(t *testing.T) {
	src := pgtest.New(t)
	old := fmt.Sprintf("%d.9", src.Toolchain.Version.Major-1)
	bin := fakeBin(t, old, "pg_dump", "pg_restore")
	o := backupOptions(t, src.ConnString("postgres"))
	o.PGBin = []string{bin}
	_, err := pipeline.Backup(context.Background(), o)
	var te *pipeline.ToolsError
	if !errors.As(err, &te) {
		t.Fatalf("Backup = %v, want a ToolsError", err)
	}
	msg := err.Error() + "\n" + te.Hint()
	for _, want := range []string{src.Toolchain.Version.String(), old, fmt.Sprintf("postgresql-client-%d", src.Toolchain.Version.Major)} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "RAN-pg_dump")); err == nil {
		t.Error("pg_dump was run although it is older than the server")
	}
	if _, err := os.Stat(o.CatalogPath); err == nil {
		t.Error("a catalog was written")
	}
}

// An archive whose format version this pg_restore does not know (written
// by a newer pg_dump): the proof fails, explaining so, not with a raw
// pg_restore error.
func TestArchiveFromNewerPgDump(t *testing.T) {
	src := pgtest.New(t)
	o := backupOptions(t, src.ConnString("postgres"))
	o.Verify = verify.ModeNone
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(res.Record.Archive.Path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:5]) != "PGDMP" {
		t.Fatalf("archive starts with %q", data[:8])
	}
	data[6] = 99 // format 1.x → 1.99
	newer := filepath.Join(t.TempDir(), "newer.dump")
	os.WriteFile(newer, data, 0o600)
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	rep, err := verify.Prove(context.Background(), verify.Options{Archive: newer, Format: verify.FormatCustom, Mode: verify.ModeRestore, Client: tc})
	if err != nil {
		t.Fatalf("proof could not run: %v", err)
	}
	var ne *verify.NewerArchiveError
	if rep.Passed || !errors.As(rep.Failure, &ne) {
		t.Fatalf("proof passed=%v failure=%v, want a NewerArchiveError", rep.Passed, rep.Failure)
	}
	if !strings.Contains(ne.Error(), "1.99") || !strings.Contains(ne.Error(), tc.Version.String()) || !strings.Contains(ne.Error(), "newer pg_dump") {
		t.Errorf("message %q should name format 1.99, pg_restore %s and a newer pg_dump", ne.Error(), tc.Version)
	}
	if p := pipeline.ProofOf(rep, nil); p.Status != catalog.ProofFailed || !strings.Contains(p.Error, "1.99") {
		t.Errorf("recorded proof %s: %q", p.Status, p.Error)
	}
}
