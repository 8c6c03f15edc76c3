package cli

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/pipeline"
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

// Every command's --help teaches by example: an "Examples:" section with at
// least one command line of that very command, and the exit codes.
func TestHelpShowsExamples(t *testing.T) {
	app := newApp(&env{stdout: io.Discard, stderr: io.Discard, red: &pipeline.Redactor{}})
	var paths [][]string
	for _, c := range app.Commands {
		if len(c.Subcommands) == 0 {
			paths = append(paths, []string{c.Name})
		}
		for _, s := range c.Subcommands {
			paths = append(paths, []string{c.Name, s.Name})
		}
	}
	if len(paths) < 10 {
		t.Fatalf("only %d commands: %v", len(paths), paths)
	}
	for _, p := range paths {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), append(append([]string{"pgattest"}, p...), "--help"), &stdout, &stderr)
		help := stdout.String()
		example := "   pgattest " + strings.Join(p, " ")
		if code != 0 || !strings.Contains(help, "Examples:") || !strings.Contains(help, example) {
			t.Errorf("pgattest %s --help (exit %d) has no example %q:\n%s%s", strings.Join(p, " "), code, example, help, stderr.String())
		}
		if p[0] != "demo" && !strings.Contains(help, "Exit codes:") {
			t.Errorf("pgattest %s --help does not list its exit codes", strings.Join(p, " "))
		}
	}
}
