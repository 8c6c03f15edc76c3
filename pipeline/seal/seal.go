// Package seal encrypts archives to age recipients and decrypts them with
// age identities, in the format of the age tool (age-encryption.org/v1),
// so that `age -d -i key.txt NAME.dump.age | pg_restore …` works without
// pgattest. The backup host needs only recipients (public keys); the
// identity stays where restores are made.
//
// Nothing of an identity (a secret key, an SSH private key) is ever put
// into an error: a file that does not parse is named, its content never.
package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// Scheme is what the record says an archive is encrypted with.
const Scheme = "age"

// Magic starts every age file.
const Magic = "age-encryption.org/v1"

// Ext is the suffix of an encrypted archive's name.
const Ext = ".age"

// Recipients are the public keys an archive is encrypted to.
type Recipients struct {
	list   []age.Recipient
	Public []string // as given: age1…, ssh-ed25519 AAAA…, ssh-rsa AAAA…
}

// ParseRecipients reads recipients given one by one (age1… keys, SSH
// ed25519 and RSA public keys as in authorized_keys) and from recipients
// files (one per line, # comments), as the age tool does.
func ParseRecipients(keys []string, files []string) (*Recipients, error) {
	r := &Recipients{}
	for _, k := range keys {
		if err := r.add(k, "--encrypt-to"); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read recipients file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := r.add(line, fmt.Sprintf("%s, line %d", f, n)); err != nil {
				return nil, err
			}
		}
	}
	if len(r.list) == 0 {
		return nil, errors.New("no recipients given")
	}
	return r, nil
}

func (r *Recipients) add(s, where string) error {
	var rec age.Recipient
	var err error
	switch {
	case strings.HasPrefix(s, "AGE-SECRET-KEY-"):
		// Never echo it: it is a secret key given where a public one goes.
		return fmt.Errorf("%s: that is an age secret key (an identity), not a recipient", where)
	case strings.HasPrefix(s, "-----BEGIN"):
		return fmt.Errorf("%s: that is a private key, not a recipient", where)
	case strings.HasPrefix(s, "age1pq1"):
		rec, err = age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1"):
		rec, err = age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-ed25519 "), strings.HasPrefix(s, "ssh-rsa "):
		rec, err = agessh.ParseRecipient(s)
	default:
		return fmt.Errorf("%s: %q is not an age recipient (age1…) or an SSH public key (ssh-ed25519, ssh-rsa)", where, shorten(s))
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not a valid recipient: %v", where, shorten(s), err)
	}
	r.list = append(r.list, rec)
	r.Public = append(r.Public, publicForm(s))
	return nil
}

// publicForm is a recipient as the record keeps it: an SSH key without
// its comment (which may name a person or a machine).
func publicForm(s string) string {
	if f := strings.Fields(s); len(f) >= 2 && strings.HasPrefix(f[0], "ssh-") {
		return f[0] + " " + f[1]
	}
	return s
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Encrypt returns a writer that encrypts what is written to it into dst;
// Close writes the last chunk (it does not close dst).
func (r *Recipients) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	return age.Encrypt(dst, r.list...)
}

// Identities are the secret keys that decrypt archives.
type Identities struct {
	list []age.Identity
	File string
}

// LoadIdentities reads an identity file: age's (AGE-SECRET-KEY-1… lines,
// as age-keygen writes them) or an SSH private key (ed25519 or RSA,
// without a passphrase). Errors name the file, never its content.
func LoadIdentities(path string) (*Identities, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	if bytes.Contains(b, []byte("-----BEGIN")) {
		id, err := agessh.ParseIdentity(b)
		var pass *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pass):
			return nil, &IdentityError{File: path, Why: "is an SSH key protected by a passphrase, which pgattest cannot ask for; use an age identity (age-keygen) or a key without one"}
		case err != nil:
			return nil, &IdentityError{File: path, Why: "holds a private key pgattest cannot read (ed25519 and RSA SSH keys are supported)"}
		}
		return &Identities{list: []age.Identity{id}, File: path}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, &IdentityError{File: path, Why: "is not an age identity file (AGE-SECRET-KEY-1… lines) or an SSH private key"}
	}
	return &Identities{list: ids, File: path}, nil
}

// IdentityError: an identity file that cannot be used, and why.
type IdentityError struct{ File, Why string }

func (e *IdentityError) Error() string { return e.File + " " + e.Why }

// Decrypt reads the age file src as plaintext. When no identity matches,
// the error is a *NoMatchError.
func (ids *Identities) Decrypt(src io.Reader) (io.Reader, error) {
	r, err := age.Decrypt(src, ids.list...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return nil, &NoMatchError{File: ids.File}
	}
	if err != nil {
		return nil, fmt.Errorf("read the age header: %w", err)
	}
	return r, nil
}

// NoMatchError: the identity given is not one the archive was encrypted to.
type NoMatchError struct{ File string }

func (e *NoMatchError) Error() string {
	return "no identity in " + e.File + " matched: the archive was encrypted to other keys"
}
