package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
	}{
		{"pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 15, 18},
		{"pg_restore (PostgreSQL) 14.13", 14, 13},
		{"postgres (PostgreSQL) 16.4 (Ubuntu 16.4-1.pgdg22.04+1)", 16, 4},
		{"pg_dump (PostgreSQL) 17.0", 17, 0},
		{"pg_dump (PostgreSQL) 18beta1", 18, 0},
		{"initdb (PostgreSQL) 19devel", 19, 0},
		{"PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc", 15, 18},
		{"PostgreSQL 9.6.24 on x86_64", 9, 6},
		{"16.2", 16, 2},
		{"17devel", 17, 0},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", tt.in, err)
			continue
		}
		if v.Major != tt.major || v.Minor != tt.minor {
			t.Errorf("ParseVersion(%q) = %d.%d, want %d.%d", tt.in, v.Major, v.Minor, tt.major, tt.minor)
		}
	}
	for _, bad := range []string{"", "pg_dump", "MySQL 8.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

func TestFind(t *testing.T) {
	tc := Require(t, Want{Tools: ClientTools})
	if tc.Version.Major < 10 {
		t.Fatalf("found %s, want a real major version", tc)
	}
	// The same folder named explicitly is found, and is the only one looked at.
	got, err := Find(Want{Tools: ClientTools, Dirs: []string{tc.Dir}})
	if err != nil || got.Dir != tc.Dir {
		t.Fatalf("Find(explicit %s) = %v, %v", tc.Dir, got, err)
	}
	// A folder without the tools is an error naming it.
	empty := t.TempDir()
	if _, err := Find(Want{Tools: ClientTools, Dirs: []string{empty}}); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("Find(empty folder) = %v, want an error naming %s", err, empty)
	}
	// Too new a requirement names what was found.
	_, err = Find(Want{Tools: ClientTools, MinMajor: tc.Version.Major + 1})
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(MinMajor %d) = %v, want a NotFoundError", tc.Version.Major+1, err)
	}
	if !strings.Contains(err.Error(), tc.Version.String()) {
		t.Errorf("error %q does not name the version found (%s)", err, tc.Version)
	}
}

func TestFindOnPathThroughSymlink(t *testing.T) {
	tc := Require(t, Want{})
	// A PATH folder holding symlinks to the real binaries resolves to the
	// real folder.
	bin := t.TempDir()
	for _, tool := range ServerTools {
		if err := os.Symlink(tc.Path(tool), filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	all, err := Toolchains(Want{})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range all {
		if got.Dir == bin {
			t.Errorf("toolchain listed under the symlink folder %s, want the real one", bin)
		}
	}
}
