package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/verify"
)

// TestHintOfWrappedError: an error that can carry a hint but has none for
// its cause (a store's failure wrapping a digest mismatch) does not hide
// the hint of the error it wraps.
func TestHintOfWrappedError(t *testing.T) {
	mismatch := &verify.DigestMismatchError{Path: "s3://b/k", Want: "aa", Got: "bb"}
	err := &pipeline.StoreError{Repo: "s3://b", Err: fmt.Errorf("read: %w", mismatch)}
	if got := hintOf(err); got != mismatch.Hint() || !strings.Contains(got, "restore from another backup") {
		t.Errorf("hint %q, want the mismatch's %q", got, mismatch.Hint())
	}
	if exitCode(err) != exitProofFailed {
		t.Errorf("exit %d, want 3", exitCode(err))
	}
}
