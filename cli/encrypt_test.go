package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// ageKey makes an age identity with the real age-keygen and returns its
// file and public key.
func ageKey(t *testing.T, dir, name string) (file, public string) {
	t.Helper()
	file = filepath.Join(dir, name)
	if out, err := exec.Command("age-keygen", "-o", file).CombinedOutput(); err != nil {
		if os.Getenv(pgtest.RequirePGEnv) != "1" {
			if _, lerr := exec.LookPath("age-keygen"); lerr != nil {
				t.Skip("age-keygen not installed (Debian: age); .ci/ensure-deps installs it")
			}
		}
		t.Fatalf("age-keygen: %v %s", err, out)
	}
	out, err := exec.Command("age-keygen", "-y", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	return file, strings.TrimSpace(string(out))
}

func secretOf(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
			return l
		}
	}
	t.Fatalf("%s holds no secret key", file)
	return ""
}

// relations counts a database's tables, views and sequences outside the
// system schemas: 0 for a target nothing was restored into.
func relations(t *testing.T, c *testenv.Cluster, db string) string {
	return query1(t, c, db, `SELECT count(*) FROM pg_class WHERE relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema','pg_toast'))`)
}

// TestEncryptedBackup: with two recipients the stored archive is age's
// format and holds no plaintext, either identity restores it exactly (and
// re-proves it), the standard tools read it without pgattest, and it
// fails safely: no identity (exit 2), a wrong one (exit 1), a changed byte
// (exit 3), the target untouched each time; no secret key is ever shown
// or stored.
func TestEncryptedBackup(t *testing.T) {
	src := shop(t)
	keys := t.TempDir()
	k1, pub1 := ageKey(t, keys, "one.txt")
	k2, pub2 := ageKey(t, keys, "two.txt")
	k3, _ := ageKey(t, keys, "stranger.txt")
	w := newWorkdir(t)
	var outputs []string
	pgattest := func(args ...string) (int, string, string) {
		code, out, errOut := run(t, append([]string{"--catalog", w.catalog}, args...)...)
		outputs = append(outputs, out, errOut)
		return code, out, errOut
	}
	before := query1(t, src, "shop", stateSQL)
	code, out, errOut := pgattest("--json", "backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir, "--encrypt-to", pub1, "--encrypt-to", pub2)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, errOut)
	}
	rec := decodeRecord(t, out)
	en := rec.Archive.Encryption
	if rec.Status != catalog.StatusVerified || en == nil || en.Scheme != "age" || len(en.Recipients) != 2 || en.Recipients[0] != pub1 || en.Recipients[1] != pub2 {
		t.Fatalf("status %s, encryption %+v", rec.Status, en)
	}
	if !strings.HasSuffix(rec.Archive.Path, ".dump.age") {
		t.Errorf("archive %s: want NAME-STAMP.dump.age", rec.Archive.Path)
	}
	stored, err := os.ReadFile(rec.Archive.Path)
	if err != nil {
		t.Fatal(err)
	}
	h := verify.NewHasher()
	h.Write(stored)
	if !bytes.HasPrefix(stored, []byte("age-encryption.org/v1\n")) || bytes.Contains(stored, []byte("PGDMP")) || h.Sum() != rec.Archive.BLAKE3 {
		t.Errorf("the stored archive is not an age file of the recorded digest, or holds plaintext")
	}
	if fi, _ := os.Stat(rec.Archive.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v", fi.Mode().Perm())
	}
	files, _ := filepath.Glob(filepath.Join(w.dir, "shop", "*"))
	for _, f := range files {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("PGDMP")) {
			t.Errorf("%s holds plaintext archive bytes", f)
		}
	}

	t.Run("the standard tools read it: age -d | pg_restore -l", func(t *testing.T) {
		tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
		plain, err := exec.Command("age", "-d", "-i", k1, rec.Archive.Path).Output()
		if err != nil {
			t.Fatalf("age -d: %v", err)
		}
		ph := verify.NewHasher()
		ph.Write(plain)
		if ph.Sum() != en.PlaintextBLAKE3 || ph.Size() != en.PlaintextSize {
			t.Errorf("the plaintext is not the one recorded")
		}
		cmd := exec.Command(tc.Path("pg_restore"), "-l")
		cmd.Stdin = bytes.NewReader(plain)
		list, err := cmd.Output()
		if err != nil || !strings.Contains(string(list), "TABLE DATA shop orders") {
			t.Errorf("pg_restore -l of age's plaintext: %v\n%s", err, list)
		}
	})
	t.Run("either identity restores it exactly, and re-proves it", func(t *testing.T) {
		for i, k := range []string{k1, k2} {
			db := []string{"dec_one", "dec_two"}[i]
			exec1(t, src, "postgres", "CREATE DATABASE "+db)
			pw := watchProcs(secretOf(t, k)) // no child's command line or environment holds the key
			code, _, errOut := pgattest("restore", "--id", rec.ID, "--identity", k, "--target", src.URL(db, "", ""))
			pw.end()
			if code != 0 {
				t.Fatalf("restore with %s: exit %d\n%s", k, code, errOut)
			}
			if !pw.seen["pg_restore"] {
				t.Errorf("the watch saw no pg_restore: it proves nothing")
			}
			if len(pw.leaks) > 0 {
				t.Errorf("the secret key is in %v", pw.leaks)
			}
			if got := query1(t, src, db, stateSQL); got != before {
				t.Errorf("restored %s, want %s", got, before)
			}
		}
		exec1(t, src, "postgres", "CREATE DATABASE dec_jobs")
		if code, _, errOut := pgattest("restore", "--id", rec.ID, "--identity", k1, "--jobs", "2", "--target", src.URL("dec_jobs", "", "")); code != 0 {
			t.Fatalf("restore --jobs 2: exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "dec_jobs", stateSQL); got != before {
			t.Errorf("restored %s with --jobs 2, want %s", got, before)
		}
		code, out, errOut := pgattest("--json", "verify", rec.ID, "--identity", k2)
		if code != 0 || !strings.Contains(out, `"digest_checked": true`) || !strings.Contains(out, `"status": "passed"`) {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := pgattest("verify", "--hash-only", rec.ID); code != 0 {
			t.Errorf("verify --hash-only needs no key: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := pgattest("toc", "--live", rec.ID, "--identity", k1); code != 0 || !strings.Contains(out, "order_items") {
			t.Errorf("toc --live: exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("without the key, with a wrong one, changed: refused, target untouched", func(t *testing.T) {
		exec1(t, src, "postgres", "CREATE DATABASE dec_refused")
		target := src.URL("dec_refused", "", "")
		code, _, errOut := pgattest("restore", "--id", rec.ID, "--target", target)
		if code != exitUsage || !strings.Contains(errOut, "is encrypted") || !strings.Contains(errOut, "--identity") || !strings.Contains(errOut, pub1) {
			t.Errorf("no identity: exit %d, want 2 naming --identity and the recipients\n%s", code, errOut)
		}
		code, _, errOut = pgattest("restore", "--id", rec.ID, "--identity", k3, "--target", target)
		if code != exitFailure || !strings.Contains(errOut, "no identity in "+k3+" matched") {
			t.Errorf("a wrong identity: exit %d, want 1 and no match\n%s", code, errOut)
		}
		code, _, errOut = pgattest("verify", rec.ID)
		if code != exitUsage || !strings.Contains(errOut, "--identity") {
			t.Errorf("verify without identity: exit %d, want 2\n%s", code, errOut)
		}
		bad := bytes.Clone(stored)
		bad[len(bad)/2] ^= 1
		if err := os.WriteFile(rec.Archive.Path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut = pgattest("restore", "--id", rec.ID, "--identity", k1, "--target", target)
		if code != exitProofFailed || !strings.Contains(errOut, "archive digest does not match") {
			t.Errorf("a changed ciphertext: exit %d, want 3 and a digest mismatch\n%s", code, errOut)
		}
		code, out, errOut := pgattest("--json", "verify", rec.ID, "--identity", k1)
		if code != exitProofFailed || !strings.Contains(out, "archive digest does not match") {
			t.Errorf("verify of a changed ciphertext: exit %d, want 3\n%s%s", code, out, errOut)
		}
		if n := relations(t, src, "dec_refused"); n != "0" {
			t.Errorf("the refused restores wrote %s relations", n)
		}
		os.WriteFile(rec.Archive.Path, stored, 0o600)
	})
	t.Run("rotation: reencrypt for a new key, a new record", func(t *testing.T) {
		kNew, pubNew := ageKey(t, keys, "new.txt")
		code, _, errOut := pgattest("reencrypt", rec.ID, "--encrypt-to", pubNew)
		if code != exitUsage || !strings.Contains(errOut, "--identity") {
			t.Errorf("without the old identity: exit %d, want 2\n%s", code, errOut)
		}
		code, _, errOut = pgattest("reencrypt", rec.ID, "--identity", k3, "--encrypt-to", pubNew)
		if code != exitFailure || !strings.Contains(errOut, "matched") {
			t.Errorf("with a stranger's identity: exit %d, want 1\n%s", code, errOut)
		}
		code, out, errOut := pgattest("--json", "reencrypt", rec.ID, "--identity", k1, "--encrypt-to", pubNew)
		if code != 0 {
			t.Fatalf("reencrypt: exit %d\n%s", code, errOut)
		}
		re := decodeRecord(t, out)
		// Its proofs: the old record's restores of this plaintext (not the
		// hash check, nor the proof that failed on the changed file above).
		restores := 0
		for _, p := range re.Proofs {
			if p.Mode != "restore" || p.Status != catalog.ProofPassed {
				t.Errorf("the new record carries a proof about the old file: %+v", p)
			}
			restores++
		}
		if re.ID == rec.ID || re.ReencryptedFrom != rec.ID || re.Status != catalog.StatusVerified || restores != 2 ||
			re.Archive.Encryption.Recipients[0] != pubNew || re.Archive.Encryption.PlaintextBLAKE3 != en.PlaintextBLAKE3 || re.Archive.BLAKE3 == rec.Archive.BLAKE3 {
			t.Fatalf("the new record: %+v", re)
		}
		if _, err := exec.Command("age", "-d", "-i", k1, re.Archive.Path).Output(); err == nil {
			t.Errorf("the old identity still decrypts the re-encrypted archive")
		}
		exec1(t, src, "postgres", "CREATE DATABASE dec_rotated")
		if code, _, errOut := pgattest("restore", "--id", re.ID, "--identity", kNew, "--target", src.URL("dec_rotated", "", "")); code != 0 {
			t.Fatalf("restore of the re-encrypted archive: exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "dec_rotated", stateSQL); got != before {
			t.Errorf("restored %s, want %s", got, before)
		}
		if code, _, errOut := pgattest("verify", "--hash-only", rec.ID, re.ID); code != 0 {
			t.Errorf("both archives: exit %d\n%s", code, errOut)
		}
		code, out, _ = pgattest("show", re.ID)
		if code != 0 || !strings.Contains(out, "re-encrypted from backup "+rec.ID) {
			t.Errorf("show does not say where it came from:\n%s", out)
		}
	})
	t.Run("an SSH ed25519 recipient", func(t *testing.T) {
		key := filepath.Join(keys, "id_ed25519")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@example.com", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		pub, _ := os.ReadFile(key + ".pub")
		code, out, errOut := pgattest("--json", "backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir, "--encrypt-to", strings.TrimSpace(string(pub)))
		if code != 0 {
			t.Fatalf("backup: exit %d\n%s", code, errOut)
		}
		srec := decodeRecord(t, out)
		if r := srec.Archive.Encryption.Recipients; len(r) != 1 || !strings.HasPrefix(r[0], "ssh-ed25519 AAAA") || strings.Contains(r[0], "ops@example.com") {
			t.Errorf("recipients %q: want the key, without its comment", r)
		}
		exec1(t, src, "postgres", "CREATE DATABASE dec_ssh")
		if code, _, errOut := pgattest("restore", "--id", srec.ID, "--identity", key, "--target", src.URL("dec_ssh", "", "")); code != 0 {
			t.Fatalf("restore with the SSH key: exit %d\n%s", code, errOut)
		}
		if got := query1(t, src, "dec_ssh", stateSQL); got != query1(t, src, "shop", stateSQL) {
			t.Errorf("restored state differs")
		}
	})
	t.Run("bad recipients are usage errors that echo no secret", func(t *testing.T) {
		secret := secretOf(t, k1)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--encrypt-to", secret}, "age secret key (an identity), not a recipient"},
			{[]string{"--encrypt-to", "age1notakey"}, "is not a valid recipient"},
			{[]string{"--encrypt-to", "hello"}, "is not an age recipient"},
			{[]string{"--encrypt-to-file", k1}, "age secret key (an identity), not a recipient"},
			{[]string{"--encrypt-to", pub1, "--jobs", "2"}, "an encrypted backup is one job"},
			{[]string{"--encrypt-to", pub1, "--verify", "read"}, "needs the plaintext archive"},
		} {
			code, _, errOut := pgattest(append([]string{"backup", "--db", src.ConnString("shop"), "--name", "shop", "--dir", w.dir}, c.args...)...)
			if code != exitUsage || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "hint: ") {
				t.Errorf("%q: exit %d, want 2 and %q\n%s", c.args, code, c.want, errOut)
			}
		}
		code, _, errOut := pgattest("restore", "--id", rec.ID, "--identity", filepath.Join(keys, "one.txt.pub-nope"), "--target", src.URL("dec_one", "", ""))
		if code != exitUsage || !strings.Contains(errOut, "identity file") {
			t.Errorf("a missing identity file: exit %d\n%s", code, errOut)
		}
	})
	// No secret key anywhere pgattest writes or prints.
	cat, _ := os.ReadFile(w.catalog)
	manifests, _ := filepath.Glob(filepath.Join(w.dir, "shop", "*.manifest.json"))
	for _, m := range manifests {
		b, _ := os.ReadFile(m)
		outputs = append(outputs, string(b))
	}
	outputs = append(outputs, string(cat))
	for _, k := range []string{k1, k2, k3} {
		secret := secretOf(t, k)
		for i, o := range outputs {
			if strings.Contains(o, secret) || strings.Contains(o, secret[len("AGE-SECRET-KEY-"):]) {
				t.Errorf("output %d holds the secret key of %s", i, k)
			}
		}
	}
}

// TestEncryptedBackupToS3: encrypted and in a bucket at once: the object
// is age's format, restores exactly with the identity, and a changed
// object is refused with the target untouched.
func TestEncryptedBackupToS3(t *testing.T) {
	src := shop(t)
	k, pub := ageKey(t, t.TempDir(), "key.txt")
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "sealed", false)
	s.SetEnv(t)
	w := newWorkdir(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://sealed", "--encrypt-to", pub)
	if rec.Status != catalog.StatusVerified || rec.Archive.Encryption == nil || !strings.HasSuffix(rec.Archive.Store.Key, ".dump.age") {
		t.Fatalf("status %s, %+v", rec.Status, rec.Archive)
	}
	body := s3Object(t, s, "sealed", rec.Archive.Store.Key)
	if !bytes.HasPrefix(body, []byte("age-encryption.org/v1")) || bytes.Contains(body, []byte("PGDMP")) {
		t.Fatalf("the object is not an age file, or holds plaintext")
	}
	exec1(t, src, "postgres", "CREATE DATABASE s3_sealed")
	if code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--identity", k, "--target", src.URL("s3_sealed", "", "")); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, errOut)
	}
	// An archive in the bucket re-encrypted for a new key, beside it.
	kNew, pubNew := ageKey(t, t.TempDir(), "new.txt")
	code, out, errOut := run(t, "--catalog", w.catalog, "--json", "reencrypt", rec.ID, "--identity", k, "--encrypt-to", pubNew)
	if code != 0 {
		t.Fatalf("reencrypt: exit %d\n%s", code, errOut)
	}
	re := decodeRecord(t, out)
	if re.Archive.Store == nil || !strings.HasPrefix(re.Archive.Store.Key, "shop/shop-") || !strings.HasSuffix(re.Archive.Store.Key, ".dump.age") {
		t.Fatalf("re-encrypted to %+v", re.Archive.Store)
	}
	exec1(t, src, "postgres", "CREATE DATABASE s3_rotated")
	if code, _, errOut := run(t, "--catalog", w.catalog, "restore", "--id", re.ID, "--identity", kNew, "--target", src.URL("s3_rotated", "", "")); code != 0 {
		t.Fatalf("restore of the re-encrypted object: exit %d\n%s", code, errOut)
	}
	if got, want := query1(t, src, "s3_sealed", stateSQL), query1(t, src, "shop", stateSQL); got != want {
		t.Errorf("restored %s, want %s", got, want)
	}
	bad := bytes.Clone(body)
	bad[len(bad)/2] ^= 1
	if _, err := s.Client(t).PutObject(context.Background(), "sealed", rec.Archive.Store.Key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	exec1(t, src, "postgres", "CREATE DATABASE s3_sealed_bad")
	code, _, errOut = run(t, "--catalog", w.catalog, "restore", "--id", rec.ID, "--identity", k, "--target", src.URL("s3_sealed_bad", "", ""))
	if code != exitProofFailed || !strings.Contains(errOut, "archive digest does not match") {
		t.Errorf("a changed object: exit %d, want 3\n%s", code, errOut)
	}
	if n := relations(t, src, "s3_sealed_bad"); n != "0" {
		t.Errorf("the refused restore wrote %s relations", n)
	}
}
