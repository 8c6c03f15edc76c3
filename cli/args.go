package cli

import (
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// normalizeArgs lets flags go anywhere, as users expect from restic or git:
// global flags (--json, --catalog PATH, …) after the command, and command
// flags after positional arguments ("pgattest show ID --json"). urfave/cli
// parses flags only before the command and before the first positional
// argument, so the arguments are put in that order first:
//
//	prog [global flags] command [subcommand] [command flags] [positionals]
//
// Everything after a bare "--" is left alone, as positionals.
func normalizeArgs(app *ucli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	rest := args[1:]
	var tail []string // after "--"
	for i, a := range rest {
		if a == "--" {
			rest, tail = rest[:i], rest[i:]
			break
		}
	}

	// Pull the global flags out from wherever they are.
	var globals, others []string
	for i := 0; i < len(rest); i++ {
		f := lookupFlag(app.Flags, rest[i])
		if f == nil {
			others = append(others, rest[i])
			continue
		}
		globals = append(globals, rest[i])
		if takesValue(f, rest[i]) && i+1 < len(rest) {
			i++
			globals = append(globals, rest[i])
		}
	}

	// Find the command (and subcommand) among the rest.
	var path []string
	cmds := app.Commands
	var cmd *ucli.Command
	var cmdFlags, positionals []string
	for i := 0; i < len(others); i++ {
		a := others[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			cmdFlags = append(cmdFlags, a)
			if cmd != nil {
				if f := lookupFlag(cmd.Flags, a); f != nil && takesValue(f, a) && i+1 < len(others) {
					i++
					cmdFlags = append(cmdFlags, others[i])
				}
			}
			continue
		}
		if len(positionals) == 0 {
			if c := findCommand(cmds, a); c != nil {
				path = append(path, a)
				cmd = c
				cmds = c.Subcommands
				// Flags seen before the command belong to the app; keep
				// them there.
				globals = append(globals, cmdFlags...)
				cmdFlags = nil
				continue
			}
		}
		positionals = append(positionals, a)
	}
	out := []string{args[0]}
	out = append(out, globals...)
	out = append(out, path...)
	out = append(out, cmdFlags...)
	out = append(out, positionals...)
	return append(out, tail...)
}

func lookupFlag(flags []ucli.Flag, arg string) ucli.Flag {
	if !strings.HasPrefix(arg, "-") {
		return nil
	}
	name := strings.TrimLeft(arg, "-")
	name, _, _ = strings.Cut(name, "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether flag f, written as arg, consumes the next
// argument as its value.
func takesValue(f ucli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	if _, ok := f.(*ucli.BoolFlag); ok {
		return false
	}
	return true
}

func findCommand(cmds []*ucli.Command, name string) *ucli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
