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
		err := shortage(c.err, nil, "", 1<<30)
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

// pg_restore's words are taken off by the table's whole name: a name that
// holds a disk-full message, or libpq's words, is not the server's error.
func TestClientMessageTakesTheWholeName(t *testing.T) {
	name := `a": ERROR:  could not extend file "base/1/2": wrote only 4096 of 8192 bytes at block 9`
	forged := &RestoreError{Message: `COPY failed for table "` + name + `": ERROR:  division by zero`, Table: "public." + name}
	if diskFullMessage(forged) || lostConnection(forged) {
		t.Errorf("%q read as the server's disk-full or lost connection", forged.Message)
	}
	if got := clientMessage(forged); got != "ERROR:  division by zero" {
		t.Errorf("clientMessage = %q", got)
	}
	real := &RestoreError{Message: `COPY failed for table "t": ERROR:  could not extend file "base/1/2": wrote only 4096 of 8192 bytes at block 9`, Table: "public.t"}
	lost := &RestoreError{Message: `COPY failed for table "t": server closed the connection unexpectedly`, Table: "public.t"}
	if !diskFullMessage(real) || !lostConnection(lost) {
		t.Errorf("the server's own disk-full (%v) or a lost connection (%v) not read", diskFullMessage(real), lostConnection(lost))
	}
}
