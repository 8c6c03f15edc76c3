package cli

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeArgs(t *testing.T) {
	app := newApp(&env{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)})
	tests := []struct{ in, want string }{
		{"pgattest demo --json", "pgattest --json demo"},
		{"pgattest --json demo", "pgattest --json demo"},
		{"pgattest demo --catalog x.db -v", "pgattest --catalog x.db -v demo"},
		{"pgattest demo --catalog=x.db", "pgattest --catalog=x.db demo"},
		{"pgattest demo -- --json", "pgattest demo -- --json"},
		{"pgattest nosuch --json", "pgattest --json nosuch"},
	}
	for _, tt := range tests {
		got := normalizeArgs(app, strings.Fields(tt.in))
		if want := strings.Fields(tt.want); !reflect.DeepEqual(got, want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tt.in, got, want)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"nosuch"}, {"--bogus"}, {"demo", "--bogus"}} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), append([]string{"pgattest"}, args...), &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("pgattest %v: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "pgattest: error: ") || !strings.Contains(stderr.String(), "pgattest: hint: ") {
			t.Errorf("pgattest %v: stderr lacks error and hint lines:\n%s", args, stderr.String())
		}
	}
}
