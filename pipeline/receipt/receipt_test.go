package receipt_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// openssl runs the real openssl, which CI installs (a missing one fails
// under PGATTEST_REQUIRE_PG=1).
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv(pgtest.RequirePGEnv) == "1" {
			t.Fatalf("openssl is not installed: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslKey makes a signing key with openssl (0600) and its public half.
func opensslKey(t *testing.T) (priv, pub string) {
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "sign.pem"), filepath.Join(dir, "sign.pub.pem")
	openssl(t, "genpkey", "-algorithm", "ed25519", "-out", priv)
	os.Chmod(priv, 0o600)
	openssl(t, "pkey", "-in", priv, "-pubout", "-out", pub)
	return priv, pub
}

func sampleRecord() *catalog.Record {
	started := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	return &catalog.Record{
		ID: "shop-20261101T020000Z-ab12", Name: "shop", StartedAt: started,
		Source:  catalog.Source{Host: "db.internal", Port: 5432, Database: "shop", ServerVersion: "15.14", Identity: &catalog.Identity{SystemID: "7300000000000000001", DatabaseOID: 16384}},
		Archive: catalog.Archive{Format: "custom", Size: 1234, BLAKE3: strings.Repeat("b", 64), SHA256: strings.Repeat("5", 64)},
		TOC:     catalog.TOC{Entries: 40, Counts: map[string]int{"TABLE": 3}, EntriesBLAKE3: strings.Repeat("e", 64)},
		Tools:   catalog.Tools{PgDump: "15.14", PgRestore: "15.14", ProofServer: "15.14", Pgattest: "test"},
		Stages:  []catalog.Stage{{Name: "dump", DurationMS: 1500}},
	}
}

func sampleProof() *catalog.Proof {
	return &catalog.Proof{Mode: "restore", Status: "passed", StartedAt: time.Date(2026, 11, 1, 2, 0, 1, 0, time.UTC), DurationMS: 2500, Rows: 42,
		Tables: []catalog.TableCount{{Schema: "shop", Name: "orders", Rows: 40}, {Schema: "shop", Name: "customers", Rows: 2}}, Skipped: []string{"extension postgis: not installed here"}}
}

// TestReceiptChecksWithOpenSSLAndDSSE: a receipt signed with a key openssl
// made verifies with openssl alone (pkeyutl -verify -rawin over the DSSE
// pre-authentication encoding), with an independent DSSE implementation
// (go-securesystemslib), and with receipt.Open; every field of the
// predicate is the record's.
func TestReceiptChecksWithOpenSSLAndDSSE(t *testing.T) {
	privPath, pubPath := opensslKey(t)
	s, err := receipt.LoadSigner(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := receipt.LoadPublic(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if receipt.KeyID(pub) != s.KeyID {
		t.Fatalf("key id of the public file %s, of the private %s", receipt.KeyID(pub), s.KeyID)
	}
	rec, p := sampleRecord(), sampleProof()
	st, err := receipt.For(rec, p, receipt.FileSubject("shop-20261101T020000Z.dump", rec.Archive), strings.Repeat("1", 64), "headhash", time.Date(2026, 11, 1, 2, 0, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	env, sum, err := s.Seal(st)
	if err != nil {
		t.Fatal(err)
	}
	if sum != receipt.Digest(env) {
		t.Errorf("digest %s is not the envelope's", sum)
	}

	// openssl, over PAE(payloadType, payload).
	var e receipt.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	if e.PayloadType != "application/vnd.in-toto+json" || len(e.Signatures) != 1 || e.Signatures[0].KeyID != s.KeyID {
		t.Fatalf("envelope %+v", e)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	dir := t.TempDir()
	paePath, sigPath := filepath.Join(dir, "pae.bin"), filepath.Join(dir, "sig.bin")
	os.WriteFile(paePath, receipt.PAE(e.PayloadType, payload), 0o600)
	os.WriteFile(sigPath, sig, 0o600)
	if out := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", paePath, "-sigfile", sigPath); !strings.Contains(out, "Signature Verified Successfully") {
		t.Errorf("openssl: %s", out)
	}
	want := "DSSEv1 28 application/vnd.in-toto+json " + strconvItoa(len(payload)) + " "
	if pae := receipt.PAE(e.PayloadType, payload); !bytes.HasPrefix(pae, []byte(want)) {
		t.Errorf("PAE starts %q, want %q", pae[:len(want)], want)
	}

	// The README's commands: openssl, jq and coreutils alone.
	envFile := filepath.Join(dir, "r.receipt.json")
	os.WriteFile(envFile, env, 0o644)
	script, _ := filepath.Abs("testdata/verify-with-openssl.sh")
	sh := func(args ...string) (string, error) {
		if _, err := exec.LookPath("jq"); err != nil && os.Getenv(pgtest.RequirePGEnv) == "1" {
			t.Fatalf("jq is not installed: %v", err)
		}
		cmd := exec.Command("sh", append([]string{script}, args...)...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sh(envFile, pubPath); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Errorf("README's openssl commands: %v\n%s", err, out)
	}

	// An independent DSSE implementation.
	var de dsse.Envelope
	json.Unmarshal(env, &de)
	ev, err := dsse.NewEnvelopeVerifier(edVerifier{pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Verify(context.Background(), &de); err != nil {
		t.Errorf("go-securesystemslib/dsse: %v", err)
	}

	// receipt.Open and Parse: the statement, every field as recorded.
	got, keyID, err := receipt.Open(env, []ed25519.PublicKey{pub})
	if err != nil || keyID != s.KeyID {
		t.Fatalf("open: %v (key %s)", err, keyID)
	}
	parsed, err := receipt.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	pr := parsed.Predicate
	checks := map[string]bool{
		"_type":            parsed.Type == "https://in-toto.io/Statement/v1",
		"predicateType":    parsed.PredicateType == receipt.PredicateType && strings.HasSuffix(receipt.PredicateType, "/v1"),
		"subject":          len(parsed.Subject) == 1 && parsed.Subject[0].Name == "shop-20261101T020000Z.dump" && parsed.Subject[0].Digest["sha256"] == rec.Archive.SHA256 && parsed.Subject[0].Digest["blake3"] == rec.Archive.BLAKE3,
		"backup":           pr.Backup.ID == rec.ID && pr.Backup.Name == rec.Name,
		"source":           pr.Source.Host == "db.internal" && pr.Source.Port == 5432 && pr.Source.Database == "shop" && pr.Source.ServerVersion == "15.14" && pr.Source.SystemID == "7300000000000000001" && pr.Source.DatabaseOID == 16384,
		"tools":            pr.Tools == receipt.ToolsRef{PgDump: "15.14", PgRestore: "15.14", ProofServer: "15.14", Pgattest: "test"},
		"dump":             pr.Dump.StartedAt.Equal(rec.StartedAt) && pr.Dump.DurationMS == 1500 && pr.Dump.FinishedAt.Equal(rec.StartedAt.Add(1500*time.Millisecond)),
		"proof":            pr.Proof.Mode == "restore" && pr.Proof.Verdict == "passed" && pr.Proof.Rows == 42 && pr.Proof.DurationMS == 2500 && pr.Proof.StartedAt.Equal(p.StartedAt) && pr.Proof.FinishedAt.Equal(p.StartedAt.Add(2500*time.Millisecond)),
		"tables":           len(pr.Proof.Tables) == 2 && pr.Proof.Tables[0] == receipt.TableRef{Schema: "shop", Name: "orders", Rows: 40},
		"skipped":          len(pr.Proof.Skipped) == 1 && pr.Proof.Skipped[0] == p.Skipped[0],
		"toc":              pr.TOC.Entries == 40 && pr.TOC.Counts["TABLE"] == 3 && pr.TOC.EntriesBLAKE3 == rec.TOC.EntriesBLAKE3,
		"previous_receipt": pr.PreviousReceipt == strings.Repeat("1", 64),
		"catalog_head":     pr.CatalogHead == "headhash",
	}
	for k, ok := range checks {
		if !ok {
			t.Errorf("%s is not as recorded: %+v", k, parsed)
		}
	}
}

func strconvItoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// edVerifier is a dsse.Verifier over an ed25519 key: the library computes
// PAE and decodes base64 itself.
type edVerifier struct{ pub ed25519.PublicKey }

func (v edVerifier) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(v.pub, data, sig) {
		return errors.New("bad signature")
	}
	return nil
}
func (v edVerifier) KeyID() (string, error)   { return receipt.KeyID(v.pub), nil }
func (v edVerifier) Public() crypto.PublicKey { return v.pub }

// TestReceiptTamperingFails: any byte of the payload or the signature
// changed, another key, or a swapped archive make the receipt fail as
// evidence; URL-safe base64 (which DSSE verifiers must accept) passes.
func TestReceiptTamperingFails(t *testing.T) {
	_, s, err := receipt.Generate()
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := receipt.Generate()
	rec := sampleRecord()
	st, _ := receipt.For(rec, sampleProof(), receipt.FileSubject("shop.dump", rec.Archive), "", "h", time.Now())
	env, _, _ := s.Seal(st)
	trusted := []ed25519.PublicKey{s.Pub}
	var e receipt.Envelope
	json.Unmarshal(env, &e)
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	reseal := func(p, sg []byte, enc *base64.Encoding) []byte {
		e2 := e
		e2.Payload = enc.EncodeToString(p)
		e2.Signatures = []receipt.Signature{{KeyID: e.Signatures[0].KeyID, Sig: enc.EncodeToString(sg)}}
		b, _ := json.Marshal(e2)
		return b
	}
	var mm *receipt.MismatchError
	for i := range payload {
		p := bytes.Clone(payload)
		p[i] ^= 0x01
		if _, _, err := receipt.Open(reseal(p, sig, base64.StdEncoding), trusted); !errors.As(err, &mm) {
			t.Fatalf("payload byte %d changed: %v, want a mismatch", i, err)
		}
	}
	for i := range sig {
		sg := bytes.Clone(sig)
		sg[i] ^= 0x80
		if _, _, err := receipt.Open(reseal(payload, sg, base64.StdEncoding), trusted); !errors.As(err, &mm) {
			t.Fatalf("signature byte %d changed: %v, want a mismatch", i, err)
		}
	}
	if _, _, err := receipt.Open(env, []ed25519.PublicKey{other.Pub}); !errors.As(err, &mm) {
		t.Errorf("another key: %v, want a mismatch", err)
	}
	if _, _, err := receipt.Open(reseal(payload, sig, base64.URLEncoding), trusted); err != nil {
		t.Errorf("URL-safe base64: %v", err)
	}
	// A keyid that names the trusted key over another key's signature is
	// still another key's signature.
	forged := other.Sign(receipt.PayloadType, payload)
	forged.Signatures[0].KeyID = s.KeyID
	fb, _ := json.Marshal(forged)
	if _, _, err := receipt.Open(fb, trusted); !errors.As(err, &mm) {
		t.Errorf("a keyid naming the trusted key: %v, want a mismatch", err)
	}
	parsed, _ := receipt.Parse(payload)
	if err := parsed.CheckArchive(strings.NewReader("PGDMP another archive")); !errors.As(err, &mm) {
		t.Errorf("a swapped archive: %v, want a mismatch", err)
	}
}

// TestSigningKeyFiles: a key readable by others is refused, naming the
// mode and never quoting the key; a public key is not taken for a private
// one, nor the other way round.
func TestSigningKeyFiles(t *testing.T) {
	privPath, pubPath := opensslKey(t)
	os.Chmod(privPath, 0o644)
	_, err := receipt.LoadSigner(privPath)
	key, _ := os.ReadFile(privPath)
	if err == nil || !strings.Contains(err.Error(), "0644") {
		t.Errorf("a 0644 key: %v, want it refused naming the mode", err)
	}
	body := strings.Split(string(key), "\n")[1]
	if err != nil && strings.Contains(err.Error(), body) {
		t.Errorf("the error quotes the key: %v", err)
	}
	os.Chmod(privPath, 0o600)
	if _, err := receipt.LoadSigner(pubPath); err == nil {
		t.Errorf("a public key was taken as a signing key")
	}
	if _, err := receipt.LoadPublic(privPath); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("a private key as a trusted key: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/predicate-v1*.golden.json")

// TestPredicateV1Golden: the statement pgattest signs is a contract of its
// own (DESIGN.md, Receipts): its JSON for a known record is the golden
// file's, byte for byte, for a custom-format archive (one subject) and a
// directory-format one (a subject per file, the folder's digest in the
// predicate). A change here changes what auditors' tools read: add
// fields, never rename, or make v2.
func TestPredicateV1Golden(t *testing.T) {
	rec := sampleRecord()
	rec.Archive.Encryption = &catalog.Encryption{Scheme: "age", Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},
		PlaintextBLAKE3: strings.Repeat("a", 64), PlaintextSize: 4321}
	dir := sampleRecord()
	dir.Archive = catalog.Archive{Format: "directory", Size: 3000, BLAKE3: strings.Repeat("d", 64), Files: 2, Jobs: 2}
	failed := sampleProof()
	failed.Status, failed.Error, failed.Rows, failed.Tables = "failed", "pg_restore: error: could not execute query: ERROR: type \"geometry\" does not exist", 0, nil
	seen := map[string]bool{}
	for golden, c := range map[string]struct {
		rec      *catalog.Record
		proof    *catalog.Proof
		subjects []receipt.Subject
	}{
		"predicate-v1.golden.json": {rec, sampleProof(), receipt.FileSubject("shop-20261101T020000Z.dump.age", rec.Archive)},
		"predicate-v1-directory.golden.json": {dir, failed, receipt.FolderSubjects("shop-20261101T020000Z.dir", []receipt.File{
			{Path: "toc.dat", SHA256: strings.Repeat("7", 64), BLAKE3: strings.Repeat("8", 64)},
			{Path: "3001.dat.gz", SHA256: strings.Repeat("5", 64), BLAKE3: strings.Repeat("6", 64)}})},
	} {
		st, err := receipt.For(c.rec, c.proof, c.subjects, strings.Repeat("1", 64), strings.Repeat("c", 64), time.Date(2026, 11, 1, 2, 0, 5, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		b, _ := json.Marshal(st)
		json.Unmarshal(b, &doc)
		jsonPaths(doc, "", seen)
		got, _ := json.MarshalIndent(st, "", "  ")
		got = append(got, '\n')
		golden = filepath.Join("testdata", golden)
		if *update {
			os.WriteFile(golden, got, 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the v1 statement changed:\n%s\nwant (%s):\n%s", got, golden, want)
		}
		if _, err := receipt.Parse(got); err != nil {
			t.Errorf("%s does not parse: %v", golden, err)
		}
	}
	// Between them the fixtures set every field of the statement: one
	// added to the types fails here until a fixture sets it and the
	// reviewed golden file shows it.
	for _, f := range typePaths(reflect.TypeOf(receipt.Statement{}), "") {
		if !seen[f] {
			t.Errorf("no golden fixture sets %s", f)
		}
	}
}

// jsonPaths adds the dotted paths of a decoded JSON document's fields (an
// array's elements under the array's path; a map of strings or numbers is
// one field).
func jsonPaths(v any, prefix string, seen map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := strings.TrimPrefix(prefix+"."+k, ".")
			seen[p] = true
			jsonPaths(x, p, seen)
		}
	case []any:
		for _, x := range v {
			jsonPaths(x, prefix, seen)
		}
	}
}

// typePaths lists the dotted JSON paths of a type's fields, as jsonPaths
// sees them (maps are leaves; time.Time is a leaf; embedded structs flatten).
func typePaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, typePaths(f.Type, prefix)...)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		p := strings.TrimPrefix(prefix+"."+name, ".")
		out = append(out, p)
		if f.Type.Kind() != reflect.Map {
			out = append(out, typePaths(f.Type, p)...)
		}
	}
	return out
}

// TestFolderSubjectsRefuseAHostileShape: a directory-format statement whose
// subjects are not the files of one folder, each once, at a clean path,
// does not parse; and a folder checks against its subjects only with the
// same files and bytes.
func TestFolderSubjectsRefuseAHostileShape(t *testing.T) {
	rec := sampleRecord()
	rec.Archive = catalog.Archive{Format: "directory", Size: 3000, BLAKE3: strings.Repeat("d", 64), Files: 2}
	files := []receipt.File{
		{Path: "toc.dat", SHA256: strings.Repeat("7", 64), BLAKE3: strings.Repeat("8", 64)},
		{Path: "3001.dat.gz", SHA256: strings.Repeat("5", 64), BLAKE3: strings.Repeat("6", 64)}}
	parse := func(subjects []receipt.Subject) error {
		r := *rec
		r.Archive.Files = len(subjects)
		st, err := receipt.For(&r, sampleProof(), subjects, "", "h", time.Now())
		if err != nil {
			return err
		}
		b, _ := json.Marshal(st)
		_, err = receipt.Parse(b)
		return err
	}
	if err := parse(receipt.FolderSubjects("shop.dir", files)); err != nil {
		t.Fatalf("a genuine folder statement: %v", err)
	}
	sub := func(name string) receipt.Subject {
		return receipt.Subject{Name: name, Digest: map[string]string{"sha256": strings.Repeat("7", 64), "blake3": strings.Repeat("8", 64)}}
	}
	for what, subjects := range map[string][]receipt.Subject{
		"a path out of the folder":  {sub("shop.dir/../../etc/passwd")},
		"an absolute path":          {sub("shop.dir//etc/passwd")},
		"no folder":                 {sub("toc.dat")},
		"two folders":               {sub("shop.dir/toc.dat"), sub("other.dir/3001.dat.gz")},
		"a file twice":              {sub("shop.dir/toc.dat"), sub("shop.dir/./toc.dat")},
		"the same path twice":       {sub("shop.dir/toc.dat"), sub("shop.dir/toc.dat")},
		"a path twice but for case": {sub("shop.dir/toc.dat"), sub("shop.dir/TOC.dat")},
		"the folder ..":             {sub("../toc.dat")},
		"the folder .":              {sub("./toc.dat")},
		"a newline in a name":       {sub("shop.dir/toc.dat\n0000  /etc/passwd")},
		"a backslash in a name":     {sub("shop.dir/toc\\.dat")},
	} {
		var mm *receipt.MismatchError
		if err := parse(subjects); !errors.As(err, &mm) {
			t.Errorf("%s: parsed (%v)", what, err)
		}
	}
	// The predicate's count of files is the subjects'.
	st, _ := receipt.For(rec, sampleProof(), receipt.FolderSubjects("shop.dir", files[:1]), "", "h", time.Now())
	b, _ := json.Marshal(st)
	var mm *receipt.MismatchError
	if _, err := receipt.Parse(b); !errors.As(err, &mm) || !strings.Contains(err.Error(), "says 2 files, the subjects name 1") {
		t.Errorf("a statement of 2 files naming 1: %v", err)
	}
	// A statement about one file names a file, and no folder's digest.
	custom := sampleRecord()
	for what, c := range map[string]struct {
		name string
		edit func(*receipt.Statement)
	}{
		"a path":            {"../shop.dump", nil},
		"a folder's files":  {"shop.dump", func(st *receipt.Statement) { st.Predicate.Archive.Files = 2 }},
		"a folder's digest": {"shop.dump", func(st *receipt.Statement) { st.Predicate.Archive.BLAKE3 = strings.Repeat("d", 64) }},
	} {
		st, _ := receipt.For(custom, sampleProof(), receipt.FileSubject(c.name, custom.Archive), "", "h", time.Now())
		if c.edit != nil {
			c.edit(st)
		}
		b, _ := json.Marshal(st)
		if _, err := receipt.Parse(b); !errors.As(err, &mm) {
			t.Errorf("a file's statement with %s: parsed (%v)", what, err)
		}
	}

	st, _ = receipt.For(rec, sampleProof(), receipt.FolderSubjects("shop.dir", files), "", "h", time.Now())
	if err := st.CheckFiles(files); err != nil {
		t.Fatalf("the folder's own files: %v", err)
	}
	changed := slices.Clone(files)
	changed[1].SHA256 = strings.Repeat("0", 64)
	for what, fs := range map[string][]receipt.File{
		"a file missing": files[:1],
		"a file added":   append(slices.Clone(files), receipt.File{Path: "9999.dat.gz", SHA256: strings.Repeat("1", 64), BLAKE3: strings.Repeat("2", 64)}),
		"a file changed": changed,
	} {
		var mm *receipt.MismatchError
		if err := st.CheckFiles(fs); !errors.As(err, &mm) {
			t.Errorf("%s: the folder checked (%v)", what, err)
		}
	}
	if err := st.CheckArchive(strings.NewReader("PGDMP")); err == nil {
		t.Error("a folder's receipt checked one file's bytes")
	}
}

// TestArchiveDigestWithCoreutils: the README's check of an archive against
// its receipt (sha256sum) passes for the archive and fails (exit 3) for
// another.
func TestArchiveDigestWithCoreutils(t *testing.T) {
	_, pubPath := opensslKey(t)
	privPath := strings.TrimSuffix(pubPath, ".pub.pem") + ".pem"
	s, err := receipt.LoadSigner(privPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "shop.dump")
	data := []byte("PGDMP the archive's bytes")
	os.WriteFile(archive, data, 0o600)
	rec := sampleRecord()
	sum := sha256.Sum256(data)
	rec.Archive.SHA256 = hex.EncodeToString(sum[:])
	st, _ := receipt.For(rec, sampleProof(), receipt.FileSubject("shop.dump", rec.Archive), "", "h", time.Now())
	env, _, _ := s.Seal(st)
	envFile := filepath.Join(dir, "shop.receipt.json")
	os.WriteFile(envFile, env, 0o644)
	script, _ := filepath.Abs("testdata/verify-with-openssl.sh")
	run := func(a string) (string, int) {
		cmd := exec.Command("sh", script, envFile, pubPath, a)
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run(archive); code != 0 || !strings.Contains(out, "archive sha256 matches") {
		t.Errorf("the archive: exit %d\n%s", code, out)
	}
	other := filepath.Join(dir, "other.dump")
	os.WriteFile(other, []byte("PGDMP another"), 0o600)
	if out, code := run(other); code != 3 {
		t.Errorf("another archive: exit %d, want 3\n%s", code, out)
	}
}

// TestLaterProofNamesItsOwnTools: a later proof that ran on another server
// and pg_restore than the backup's names those in its statement; a proof
// that says none (a hash check) keeps the record's.
func TestLaterProofNamesItsOwnTools(t *testing.T) {
	rec := sampleRecord()
	later := sampleProof()
	later.ServerVersion, later.RestoreTool = "16.4", "16.4"
	st, err := receipt.For(rec, later, receipt.FileSubject("shop.dump", rec.Archive), "", "h", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tl := st.Predicate.Tools; tl.ProofServer != "16.4" || tl.PgRestore != "16.4" || tl.PgDump != rec.Tools.PgDump {
		t.Errorf("a later proof on 16.4 is signed as run by %+v", tl)
	}
	st, _ = receipt.For(rec, sampleProof(), receipt.FileSubject("shop.dump", rec.Archive), "", "h", time.Now())
	if tl := st.Predicate.Tools; tl.ProofServer != rec.Tools.ProofServer || tl.PgRestore != rec.Tools.PgRestore {
		t.Errorf("a proof naming no tools is signed as run by %+v, want the record's %+v", tl, rec.Tools)
	}
}
