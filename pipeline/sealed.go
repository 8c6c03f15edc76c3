package pipeline

import (
	"errors"
	"fmt"
	"os"

	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
)

// chooseSeal reads --encrypt-to and --encrypt-to-file: the archive is then
// encrypted as it is written, and everything that would read it as a file
// before it is stored (a directory-format dump's workers, a read-through
// proof) is refused, so no plaintext archive touches the disk.
func (r *run) chooseSeal() error {
	if len(r.o.EncryptTo) == 0 && len(r.o.EncryptToFiles) == 0 {
		return nil
	}
	rs, err := seal.ParseRecipients(r.o.EncryptTo, r.o.EncryptToFiles)
	if err != nil {
		return &UsageError{Err: err, hint: "give the public key of each recipient: age1… (age-keygen prints it as its \"public key\"), or an SSH ed25519/RSA public key"}
	}
	if r.format == verify.FormatDirectory {
		return &UsageError{Err: errors.New("an encrypted backup is one job: with more, pg_dump's workers write the plaintext archive to disk"),
			hint: "back up with one job; the archive is encrypted as pg_dump writes it"}
	}
	if r.o.Verify == verify.ModeRead {
		return &UsageError{Err: errors.New("a read-through proof needs the plaintext archive as a file, and an encrypted backup keeps none"),
			hint: "prove an encrypted backup by restoring it (the default), or record it unproven"}
	}
	r.seal = rs
	return nil
}

// ext is the archive's suffix: .dump, .dump.age, .dir.
func (r *run) ext() string {
	e := archiveExt(r.format)
	if r.seal != nil {
		e += seal.Ext
	}
	return e
}

// IdentityNeededError: an encrypted backup was to be read without an
// identity.
type IdentityNeededError struct {
	ID         string
	Recipients []string
}

func (e *IdentityNeededError) Error() string {
	return fmt.Sprintf("backup %s is encrypted (age) and no identity was given to decrypt it", e.ID)
}

// Is makes it a usage error (exit 2).
func (e *IdentityNeededError) Is(target error) bool { return target == ErrUsage }

// LoadIdentities reads an identity file for restore, verify and toc --live.
func LoadIdentities(path string) (*seal.Identities, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, &UsageError{Err: fmt.Errorf("identity file: %w", err), hint: "give the file age-keygen wrote (or an SSH private key)"}
	}
	ids, err := seal.LoadIdentities(path)
	if err != nil {
		return nil, &UsageError{Err: err, hint: "an identity file holds AGE-SECRET-KEY-1… lines (age-keygen -o key.txt), or is an SSH private key without a passphrase"}
	}
	return ids, nil
}
