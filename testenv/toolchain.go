package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is a PostgreSQL version as a tool reports it.
type Version struct {
	Major int    // 15 for 15.18; 9 for 9.6 (older than anything supported)
	Minor int    // 18 for 15.18; 0 for a development build
	Raw   string // the whole --version line, e.g. "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
}

// String returns the short form, e.g. "15.18".
func (v Version) String() string {
	if v.Major == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

var versionRE = regexp.MustCompile(`(?:\(PostgreSQL\)|PostgreSQL)\s+(\d+)(?:\.(\d+))?`)

// ParseVersion reads a version out of a tool's --version line or a server's
// version() string ("PostgreSQL 15.18 (Debian …) on x86_64…"), and also accepts
// a bare "15.18" or "17devel".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		m = regexp.MustCompile(`^(\d+)(?:\.(\d+))?`).FindStringSubmatch(s)
	}
	if m == nil {
		return Version{}, fmt.Errorf("no PostgreSQL version in %q", s)
	}
	major, _ := strconv.Atoi(m[1])
	minor := 0
	if m[2] != "" {
		minor, _ = strconv.Atoi(m[2])
	}
	return Version{Major: major, Minor: minor, Raw: s}, nil
}

// Toolchain is one folder of PostgreSQL binaries of one version.
type Toolchain struct {
	Dir     string  // folder holding the binaries
	Version Version // as the first required tool reports it
	source  string  // where it was found: "explicit", "PATH", "standard"
}

// Path returns the full path of tool (e.g. "pg_dump") in this toolchain.
func (t Toolchain) Path(tool string) string { return filepath.Join(t.Dir, tool) }

// String describes the toolchain for messages: "15.18 in /usr/lib/postgresql/15/bin".
func (t Toolchain) String() string { return t.Version.String() + " in " + t.Dir }

// Tool sets callers ask for.
var (
	ClientTools = []string{"pg_dump", "pg_restore"}
	ServerTools = []string{"initdb", "postgres"}
)

// Want says which toolchain a caller needs.
type Want struct {
	Tools    []string // every one must be present; default ServerTools
	MinMajor int      // lowest acceptable major version; 0 = any
	Dirs     []string // look only here (e.g. --pg-bin); empty = PATH and standard folders
}

// NotFoundError says no toolchain met a Want, and lists what was found instead.
type NotFoundError struct {
	Want  Want
	Found []Toolchain // toolchains that had the tools but too old a version
}

func (e *NotFoundError) Error() string {
	tools := strings.Join(e.Want.Tools, " and ")
	where := "on PATH or in /usr/lib/postgresql/*/bin"
	if len(e.Want.Dirs) > 0 {
		where = "in " + strings.Join(e.Want.Dirs, ", ")
	}
	if len(e.Found) == 0 {
		return fmt.Sprintf("no %s found %s", tools, where)
	}
	return fmt.Sprintf("need %s of PostgreSQL %d or newer, but the newest found is %s",
		tools, e.Want.MinMajor, e.Found[0])
}

// ErrNotFound matches every *NotFoundError with errors.Is.
var ErrNotFound = errors.New("postgres binaries not found")

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Find returns the newest toolchain that has every tool in w.Tools with a
// major version of at least w.MinMajor.
func Find(w Want) (Toolchain, error) {
	all, err := Toolchains(w)
	if err != nil {
		return Toolchain{}, err
	}
	if len(all) > 0 && all[0].Version.Major >= w.MinMajor {
		return all[0], nil
	}
	if len(w.Tools) == 0 {
		w.Tools = ServerTools
	}
	return Toolchain{}, &NotFoundError{Want: w, Found: all}
}

// Toolchains lists every toolchain that has all of w.Tools, newest first,
// ignoring w.MinMajor. Folders named in w.Dirs that lack a tool are an error,
// so a mistyped --pg-bin says so instead of silently using something else.
func Toolchains(w Want) ([]Toolchain, error) {
	tools := w.Tools
	if len(tools) == 0 {
		tools = ServerTools
	}
	type cand struct {
		dir, source string
	}
	var cands []cand
	if len(w.Dirs) > 0 {
		for _, d := range w.Dirs {
			for _, t := range tools {
				if !isExecutable(filepath.Join(d, t)) {
					return nil, fmt.Errorf("no executable %s in %q", t, d)
				}
			}
			cands = append(cands, cand{d, "explicit"})
		}
	} else {
		for _, d := range filepath.SplitList(os.Getenv("PATH")) {
			if d == "" {
				continue
			}
			p := filepath.Join(d, tools[0])
			if !isExecutable(p) {
				continue
			}
			// A symlink to the real binary (/usr/local/bin/initdb →
			// /usr/lib/postgresql/15/bin/initdb) names its real folder; a
			// symlink to something else (Debian's pg_wrapper) stays as is.
			if r, err := filepath.EvalSymlinks(p); err == nil && filepath.Base(r) == tools[0] {
				d = filepath.Dir(r)
			}
			cands = append(cands, cand{d, "PATH"})
		}
		for _, pat := range standardDirs {
			m, _ := filepath.Glob(pat)
			sort.Sort(sort.Reverse(sort.StringSlice(m)))
			for _, d := range m {
				cands = append(cands, cand{d, "standard"})
			}
		}
	}
	seen := map[string]bool{}
	var out []Toolchain
	for _, c := range cands {
		abs, err := filepath.Abs(c.dir)
		if err == nil {
			c.dir = abs
		}
		if seen[c.dir] {
			continue
		}
		seen[c.dir] = true
		ok := true
		for _, t := range tools {
			if !isExecutable(filepath.Join(c.dir, t)) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		v, err := ToolVersion(filepath.Join(c.dir, tools[0]))
		if err != nil {
			if c.source == "explicit" {
				return nil, err
			}
			continue
		}
		out = append(out, Toolchain{Dir: c.dir, Version: v, source: c.source})
	}
	// Newest first; for one version, prefer an explicit folder, then the
	// version's own folder over a wrapper found on PATH.
	rank := map[string]int{"explicit": 0, "standard": 1, "PATH": 2}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Version, out[j].Version
		if a.Major != b.Major {
			return a.Major > b.Major
		}
		if a.Minor != b.Minor {
			return a.Minor > b.Minor
		}
		return rank[out[i].source] < rank[out[j].source]
	})
	return out, nil
}

// standardDirs are where distributions put PostgreSQL binaries by version.
var standardDirs = []string{
	"/usr/lib/postgresql/*/bin",          // Debian, Ubuntu
	"/usr/pgsql-*/bin",                   // RHEL, Fedora (PGDG)
	"/opt/homebrew/opt/postgresql@*/bin", // macOS, Homebrew on arm64
	"/usr/local/opt/postgresql@*/bin",    // macOS, Homebrew on x86_64
	"/usr/local/pgsql/bin",               // built from source
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

var versionCache sync.Map // path → Version

// ToolVersion runs "tool --version" and parses its answer. Answers are cached
// per path for the life of the process.
func ToolVersion(path string) (Version, error) {
	if v, ok := versionCache.Load(path); ok {
		return v.(Version), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = ToolEnv()
	out, err := cmd.Output()
	if err != nil {
		return Version{}, fmt.Errorf("run %s --version: %w", path, err)
	}
	v, err := ParseVersion(strings.TrimSpace(string(out)))
	if err != nil {
		return Version{}, fmt.Errorf("read version of %s: %w", path, err)
	}
	versionCache.Store(path, v)
	return v, nil
}
