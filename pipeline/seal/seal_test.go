package seal_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgattest/pgattest/pipeline/seal"
)

func tool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("PGATTEST_REQUIRE_PG") == "1" {
			t.Fatalf("%s is not installed (.ci/ensure-deps installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return out
}

// TestInteropWithTheAgeTool: what seal encrypts the age tool decrypts,
// what the age tool encrypts seal decrypts, with age identities and SSH
// keys alike.
func TestInteropWithTheAgeTool(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	tool(t, "age-keygen", "-o", key)
	pub := strings.TrimSpace(string(tool(t, "age-keygen", "-y", key)))
	ssh := filepath.Join(dir, "id_ed25519")
	tool(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ssh)
	sshPub, _ := os.ReadFile(ssh + ".pub")
	plain := make([]byte, 300_000)
	rand.Read(plain)

	r, err := seal.ParseRecipients([]string{pub, strings.TrimSpace(string(sshPub))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	w, err := r.Encrypt(&sealed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	if !bytes.HasPrefix(sealed.Bytes(), []byte(seal.Magic)) {
		t.Fatal("not an age file")
	}
	file := filepath.Join(dir, "x.age")
	os.WriteFile(file, sealed.Bytes(), 0o600)
	for _, id := range []string{key, ssh} {
		if got := tool(t, "age", "-d", "-i", id, file); !bytes.Equal(got, plain) {
			t.Errorf("age -d -i %s gave other bytes", id)
		}
		ids, err := seal.LoadIdentities(id)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := ids.Decrypt(bytes.NewReader(sealed.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(dec); !bytes.Equal(got, plain) {
			t.Errorf("seal with %s gave other bytes", id)
		}
	}
	src := filepath.Join(dir, "plain")
	os.WriteFile(src, plain, 0o600)
	byTool := tool(t, "age", "-r", pub, src)
	ids, _ := seal.LoadIdentities(key)
	dec, err := ids.Decrypt(bytes.NewReader(byTool))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(dec); !bytes.Equal(got, plain) {
		t.Error("what age -r wrote decrypts to other bytes")
	}

	other := filepath.Join(dir, "other.txt")
	tool(t, "age-keygen", "-o", other)
	oids, _ := seal.LoadIdentities(other)
	var nm *seal.NoMatchError
	if _, err := oids.Decrypt(bytes.NewReader(sealed.Bytes())); !errors.As(err, &nm) {
		t.Errorf("a stranger's identity: %v, want NoMatchError", err)
	}
}

// TestBadKeysNeverEchoed: what is not a recipient or an identity is
// refused naming where it was, never what a secret holds.
func TestBadKeysNeverEchoed(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	tool(t, "age-keygen", "-o", key)
	b, _ := os.ReadFile(key)
	var secret string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
			secret = l
		}
	}
	recipients := filepath.Join(dir, "recipients.txt")
	os.WriteFile(recipients, []byte("# ops\n\n"+secret+"\n"), 0o600)
	for _, c := range []struct {
		keys, files []string
		want        string
	}{
		{[]string{secret}, nil, "age secret key"},
		{nil, []string{recipients}, "recipients.txt, line 3"},
		{nil, []string{key}, "age secret key"},
		{[]string{"age1qqqq"}, nil, "not a valid recipient"},
		{nil, nil, "no recipients"},
	} {
		_, err := seal.ParseRecipients(c.keys, c.files)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), secret[16:]) {
			t.Errorf("%v %v: %v, want %q and no secret", c.keys, c.files, err, c.want)
		}
	}
	locked := filepath.Join(dir, "id_locked")
	tool(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", locked)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	public := filepath.Join(dir, "public.txt")
	os.WriteFile(public, tool(t, "age-keygen", "-y", key), 0o600)
	for file, want := range map[string]string{locked: "protected by a passphrase", garbage: "is not an age identity file", public: "is not an age identity file"} {
		_, err := seal.LoadIdentities(file)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "NOTAKEY") || strings.Contains(err.Error(), secret[16:]) {
			t.Errorf("%s: %v, want %q and nothing of the file", file, err, want)
		}
	}
}
