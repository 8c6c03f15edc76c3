package verify

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// What the machine ran short of is no verdict; what the archive did is.
func TestShortageIsNoVerdict(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "/tmp/small/pgattest-pg-123/data/pg_wal/000000010000000000000001", Err: syscall.ENOSPC}
	for _, c := range []struct {
		err    error
		kind   string
		folder string
	}{
		{fmt.Errorf("copy template: %w", full), ShortDisk, "/tmp/small"},
		{&os.PathError{Op: "write", Path: "/srv/b/shop/.pgattest-staging-1/proof-1.list", Err: syscall.ENOSPC}, ShortDisk, "/srv/b/shop/.pgattest-staging-1"},
		{&RestoreError{Entry: "3; 0 1 TABLE DATA public t app", Exit: "was killed by killed"}, ShortKilled, ""},
		{&RestoreError{Entry: "3; 0 1 TABLE DATA public t app", Exit: "was killed by segmentation fault"}, "", ""},
		{&RestoreError{Message: "ERROR:  permission denied for table t"}, "", ""},
		{errors.New("count rows after restore: boom"), "", ""},
	} {
		err := shortage(c.err, nil, 1<<30)
		var se *ShortageError
		got := ""
		if errors.As(err, &se) {
			got = se.Kind
		}
		if got != c.kind {
			t.Errorf("%v: kind %q, want %q", c.err, got, c.kind)
			continue
		}
		if ProofFailed(err) == (c.kind != "") && c.kind != "" {
			t.Errorf("%v: a shortage must not be evidence", c.err)
		}
		if se != nil && c.folder != "" && se.Folder != c.folder {
			t.Errorf("%v: folder %q, want %q", c.err, se.Folder, c.folder)
		}
		if se != nil && se.Kind == ShortDisk && se.Temp && (!strings.Contains(se.Hint(), "needs more than 1.0 GiB") || !strings.Contains(se.Hint(), "TMPDIR")) {
			t.Errorf("hint %q: want what a proof needs, and TMPDIR", se.Hint())
		}
		if se != nil && se.Kind == ShortDisk && !se.Temp && (strings.Contains(se.Hint(), "TMPDIR") || !strings.Contains(se.Hint(), "the disk of "+c.folder+" is full")) {
			t.Errorf("hint %q: want the folder that filled, not TMPDIR", se.Hint())
		}
	}
}
