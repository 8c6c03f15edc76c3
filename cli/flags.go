package cli

import (
	ucli "github.com/urfave/cli/v2"
)

// Every command binds its flags to fields of its options struct (restic's
// cmd_<name>.go style): the Action checks the arguments and calls
// runX(ctx, e, opts); nothing reads a flag by its name. The flags several
// commands share are declared here, once.

// listFlag is a repeatable flag bound to dst (the values given, or the
// environment's).
func listFlag(dst *[]string, name, usage string, env ...string) *ucli.StringSliceFlag {
	return &ucli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env,
		Action: func(_ *ucli.Context, v []string) error { *dst = v; return nil }}
}

// pgBinFlag: where the PostgreSQL programs this command runs are.
func pgBinFlag(dst *[]string, programs string) ucli.Flag {
	return listFlag(dst, "pg-bin", "folder with "+programs+"; repeatable")
}

// jobsFlag: parallel jobs, and what they mean to this command.
func jobsFlag(dst *int, usage string) ucli.Flag {
	return &ucli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: usage, Value: 1, Destination: dst}
}

// identityFlag: the age identity that decrypts encrypted archives.
func identityFlag(dst *string, usage string) ucli.Flag {
	return &ucli.StringFlag{Name: "identity", Usage: "age identity `FILE` (age-keygen's, or an SSH private key) " + usage + "; keep it off the backup host",
		EnvVars: []string{"PGATTEST_IDENTITY"}, Destination: dst}
}

// recipientOptions are the age recipients an archive is encrypted to.
type recipientOptions struct {
	to    []string // --encrypt-to
	files []string // --encrypt-to-file
}

func (r recipientOptions) any() bool { return len(r.to)+len(r.files) > 0 }

// recipientFlags: --encrypt-to and --encrypt-to-file; which says whose
// recipients they are ("the archive", "the new archive").
func recipientFlags(dst *recipientOptions, which string) []ucli.Flag {
	return []ucli.Flag{
		listFlag(&dst.to, "encrypt-to", "encrypt "+which+" to this age `RECIPIENT` (age1…, or an SSH ssh-ed25519/ssh-rsa public key); repeatable: any one identity decrypts"),
		listFlag(&dst.files, "encrypt-to-file", "encrypt "+which+" to the recipients in this `FILE` (one per line, # comments, as age -R reads); repeatable", "PGATTEST_RECIPIENTS_FILE"),
	}
}

// signKeyFlag: the ed25519 private key that signs receipts, from
// PGATTEST_SIGN_KEY too when fromEnv (a backup's and a verify's, which
// sign what they prove; an audit signs its report only when asked, so the
// variable a nightly job sets for its backups does not change its audit).
func signKeyFlag(dst *string, usage string, fromEnv bool) ucli.Flag {
	f := &ucli.StringFlag{Name: "sign-key", Usage: usage, Destination: dst}
	if fromEnv {
		f.EnvVars = []string{"PGATTEST_SIGN_KEY"}
	}
	return f
}

// trustKeyFlag: the public keys whose receipts are trusted.
func trustKeyFlag(dst *[]string, usage string) ucli.Flag {
	return listFlag(dst, "trust-key", usage, "PGATTEST_TRUST_KEY")
}

// skipExtensionFlag: extensions the proving Postgres may lack.
func skipExtensionFlag(dst *[]string) ucli.Flag {
	return listFlag(dst, "verify-skip-extension", "when the proving Postgres lacks extension `NAME`, prove the rest without it (recorded in the proof); repeatable")
}

// repoFlag: the repository of archives.
func repoFlag(dst *string, usage string) ucli.Flag {
	return &ucli.StringFlag{Name: "repo", Usage: usage, EnvVars: []string{"PGATTEST_REPO"}, Destination: dst}
}

// dirFlag: the folder of archives.
func dirFlag(dst *string, usage string) ucli.Flag {
	return &ucli.StringFlag{Name: "dir", Usage: usage, EnvVars: []string{"PGATTEST_DIR"}, Value: "backups", Destination: dst}
}

// allowPooledFlag: accept a connection through a pooler.
func allowPooledFlag(dst *bool, usage string) ucli.Flag {
	return &ucli.BoolFlag{Name: "allow-pooled", Usage: usage, Destination: dst}
}

// noArgs refuses arguments to a command that takes none.
func noArgs(c *ucli.Context, command, hint string) error {
	if c.NArg() > 0 {
		return usageErrorf(hint, "%s takes no arguments, got %q", command, c.Args().First())
	}
	return nil
}
