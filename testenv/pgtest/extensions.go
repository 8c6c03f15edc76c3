package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgattest/pgattest/testenv"
)

// WithExtensions makes, under root, a copy of tc's server binaries whose
// share folder also holds files (extension control files and SQL scripts,
// by file name): a Postgres of the same version with extensions the
// installed one lacks. Tests use it to make an archive that needs an
// extension the proving Postgres does not have. Nothing outside root is
// touched, and no privilege is needed.
//
// Postgres finds its share and library folders relative to its own
// executable (a relocatable install), so the copy mirrors the install's
// layout: initdb, postgres, pg_dump and pg_restore are copied, everything else in the share
// folder and the library folder is a symbolic link into the install. It
// needs tc's pg_config to learn that layout.
func WithExtensions(tc testenv.Toolchain, root string, files map[string]string) (testenv.Toolchain, error) {
	dirs := map[string]string{}
	for _, what := range []string{"bindir", "sharedir", "pkglibdir"} {
		out, err := exec.Command(tc.Path("pg_config"), "--"+what).Output()
		if err != nil {
			return testenv.Toolchain{}, fmt.Errorf("pg_config --%s in %s: %w", what, tc.Dir, err)
		}
		d, err := filepath.EvalSymlinks(strings.TrimSpace(string(out)))
		if err != nil {
			return testenv.Toolchain{}, err
		}
		dirs[what] = d
	}
	common := dirs["bindir"]
	for _, d := range dirs {
		for !strings.HasPrefix(d+"/", common+"/") {
			common = filepath.Dir(common)
		}
	}
	mirror := func(d string) string { return filepath.Join(root, strings.TrimPrefix(d, common)) }

	bin := mirror(dirs["bindir"])
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return testenv.Toolchain{}, err
	}
	// The client tools too, so that the copy serves as --pg-bin alone.
	for _, tool := range append(slices.Clone(testenv.ServerTools), testenv.ClientTools...) {
		src := filepath.Join(dirs["bindir"], tool)
		if err := os.Link(src, filepath.Join(bin, tool)); err != nil {
			if err := testenv.CopyFile(filepath.Join(bin, tool), src, 0o755); err != nil {
				return testenv.Toolchain{}, err
			}
		}
	}
	lib := mirror(dirs["pkglibdir"])
	os.MkdirAll(filepath.Dir(lib), 0o755)
	if err := os.Symlink(dirs["pkglibdir"], lib); err != nil {
		return testenv.Toolchain{}, err
	}
	// share/: links to the install's entries, except extension/, which is a
	// folder of links plus the new files.
	share := mirror(dirs["sharedir"])
	ext := filepath.Join(share, "extension")
	if err := os.MkdirAll(ext, 0o755); err != nil {
		return testenv.Toolchain{}, err
	}
	for _, sub := range []string{"", "extension"} {
		entries, err := os.ReadDir(filepath.Join(dirs["sharedir"], sub))
		if err != nil {
			return testenv.Toolchain{}, err
		}
		for _, e := range entries {
			if sub == "" && e.Name() == "extension" {
				continue
			}
			if err := os.Symlink(filepath.Join(dirs["sharedir"], sub, e.Name()), filepath.Join(share, sub, e.Name())); err != nil {
				return testenv.Toolchain{}, err
			}
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(ext, name), []byte(text), 0o644); err != nil {
			return testenv.Toolchain{}, err
		}
	}
	// The server user (when root) must be able to walk down to the copy.
	for d := bin; len(d) >= len(root); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return testenv.Find(testenv.Want{Tools: testenv.ServerTools, Dirs: []string{bin}, MinMajor: tc.Version.Major})
}
