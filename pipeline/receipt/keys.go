// Package receipt makes and checks pgattest's signed proof receipts: a
// DSSE envelope (payloadType application/vnd.in-toto+json) around an
// in-toto Statement v1 whose subject is a stored archive and whose
// predicate (PredicateType, a schema of its own) says what was proven.
// Keys are ed25519, in the files `openssl genpkey -algorithm ed25519`
// writes (PKCS#8 PEM private, SPKI PEM public), so that anyone checks a
// receipt offline with openssl alone.
package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Signer is a private signing key, with the id of its public half.
type Signer struct {
	key   ed25519.PrivateKey
	Pub   ed25519.PublicKey
	KeyID string
}

// KeyID is the hex SHA-256 of a public key's DER (SPKI) encoding.
func KeyID(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Generate makes a new key: its PKCS#8 PEM (to be written 0600) and the
// signer.
func Generate() ([]byte, *Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &Signer{key: priv, Pub: pub, KeyID: KeyID(pub)}, nil
}

// PublicPEM is a public key as an SPKI PEM ("PUBLIC KEY").
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyError is a key file that cannot be used; it never quotes the file's
// contents.
type KeyError struct {
	Path string
	Err  error
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %s: %v", e.Path, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// Hint says how to make a usable key.
func (e *KeyError) Hint() string {
	return "make one with: pgattest key generate --out FILE (or openssl genpkey -algorithm ed25519 -out FILE; chmod 600 FILE)"
}

// LoadSigner reads a PKCS#8 PEM ed25519 private key. The file must not
// be readable by others (0600, as ssh asks of its keys).
func LoadSigner(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat() // the file read is the file checked
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	if !fi.Mode().IsRegular() {
		return nil, &KeyError{Path: path, Err: errors.New("not a regular file")}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("readable by others (mode %04o); a signing key must be 0600", fi.Mode().Perm())}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("owned by uid %d, not this user: a signing key is its user's own", st.Uid)}
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, &KeyError{Path: path, Err: errors.New("not a PEM private key (PKCS#8, \"BEGIN PRIVATE KEY\")")}
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, &KeyError{Path: path, Err: errors.New("not a PKCS#8 private key")}
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, &KeyError{Path: path, Err: fmt.Errorf("a %T, not an ed25519 key", k)}
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{key: priv, Pub: pub, KeyID: KeyID(pub)}, nil
}

// LoadPublic reads an SPKI PEM ed25519 public key.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &KeyError{Path: path, Err: err}
	}
	return ParsePublic(path, b)
}

// ParsePublic parses an SPKI PEM ed25519 public key; name says where
// it is from.
func ParsePublic(name string, b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		if block != nil && block.Type == "PRIVATE KEY" {
			return nil, &KeyError{Path: name, Err: errors.New("a private key: give its public half (pgattest key public FILE)")}
		}
		return nil, &KeyError{Path: name, Err: errors.New("not a PEM public key (\"BEGIN PUBLIC KEY\")")}
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, &KeyError{Path: name, Err: errors.New("not an SPKI public key")}
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, &KeyError{Path: name, Err: fmt.Errorf("a %T, not an ed25519 key", k)}
	}
	return pub, nil
}
