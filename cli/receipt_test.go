package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/receipt"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestSignedReceipts: key generate writes a 0600 key (never over one);
// backup --sign-key leaves a receipt beside the archive whose bytes are the
// record's, which receipt verify checks with the public key alone (and the
// archive's bytes with --archive); the next backup's receipt chains to it;
// a changed archive or another key is exit 3 naming what does not match;
// the private key is in no output, catalog or receipt.
func TestSignedReceipts(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	keys := t.TempDir()
	priv := filepath.Join(keys, "sign.pem")
	code, out, errOut := run(t, "key", "generate", "--out", priv)
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY") || !strings.Contains(errOut, "key id ") {
		t.Fatalf("key generate: exit %d\n%s%s", code, out, errOut)
	}
	if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	if code, _, errOut := run(t, "key", "generate", "--out", priv); code != exitUsage || !strings.Contains(errOut, "never overwritten") {
		t.Errorf("key generate over a key: exit %d\n%s", code, errOut)
	}
	code, pubOut, idOut := run(t, "key", "public", priv)
	if code != 0 || pubOut != out || !strings.Contains(errOut, idOut) {
		t.Fatalf("key public: exit %d, not the public key and id generate printed\n%s%s", code, pubOut, idOut)
	}
	pub := filepath.Join(keys, "sign.pub.pem")
	os.WriteFile(pub, []byte(pubOut), 0o644)
	keyBytes, _ := os.ReadFile(priv)
	secret := strings.Split(string(keyBytes), "\n")[1] // the key's base64
	var seen []string                                  // every output, to look for the key in

	first := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)
	if len(first.Receipts) != 1 || first.Archive.SHA256 == "" {
		t.Fatalf("receipts %+v, sha256 %q: want one receipt and the archive's SHA-256", first.Receipts, first.Archive.SHA256)
	}
	rc := first.Receipts[0]
	file, err := os.ReadFile(rc.Path)
	if err != nil || filepath.Dir(rc.Path) != filepath.Dir(first.Archive.Path) || !strings.HasSuffix(rc.Path, ".receipt.json") {
		t.Fatalf("receipt at %s (%v): want it beside the archive %s", rc.Path, err, first.Archive.Path)
	}
	var compact bytes.Buffer // --json indents the record, the envelope in it too
	json.Compact(&compact, rc.Envelope)
	if !bytes.Equal(file, compact.Bytes()) || receipt.Digest(file) != rc.SHA256 {
		t.Errorf("the receipt beside the archive is not the record's (sha256 %s, recorded %s)", receipt.Digest(file), rc.SHA256)
	}
	code, out, errOut = run(t, "receipt", "verify", rc.Path, "--key", pub, "--archive", first.Archive.Path)
	seen = append(seen, out, errOut)
	if code != 0 || !strings.Contains(out, "OK signed by key "+rc.KeyID) || !strings.Contains(out, first.ID) || !strings.Contains(out, "the archive's bytes match") {
		t.Fatalf("receipt verify: exit %d\n%s%s", code, out, errOut)
	}
	// Every field of the statement is the record's (the one For makes
	// from it, and spot checks of what the server and the proof said).
	st0, _ := receipt.Unverified(rc.Envelope)
	mine, _ := receipt.For(first, first.LastProof(), receipt.FileSubject(filepath.Base(first.Archive.Path), first.Archive), "", st0.Predicate.CatalogHead, st0.Predicate.MadeAt)
	a, _ := json.Marshal(mine)
	b0, _ := json.Marshal(st0)
	if p, lp := st0.Predicate, first.LastProof(); !bytes.Equal(a, b0) || p.Source.SystemID == "" || p.Source.SystemID != first.Source.Identity.SystemID ||
		p.Proof.Rows == 0 || p.Proof.Rows != lp.Rows || len(p.Proof.Tables) != len(lp.Tables) || !p.Proof.StartedAt.Equal(lp.StartedAt) ||
		p.TOC.Entries != first.TOC.Entries || p.Tools.PgDump != first.Tools.PgDump || !p.Dump.StartedAt.Equal(first.StartedAt) ||
		st0.Subject[0].Digest["sha256"] != first.Archive.SHA256 || st0.Subject[0].Digest["blake3"] != first.Archive.BLAKE3 {
		t.Errorf("the receipt's statement is not the record's:\n%s\nwant\n%s", b0, a)
	}
	// Any byte of the payload or the signature changed: exit 3; the same
	// envelope in URL-safe base64: it checks.
	tamper := func(edit func(env *receipt.Envelope)) (int, string) {
		var env receipt.Envelope
		json.Unmarshal(file, &env)
		edit(&env)
		b, _ := json.Marshal(env)
		p := filepath.Join(t.TempDir(), "r.receipt.json")
		os.WriteFile(p, b, 0o644)
		code, out, _ := run(t, "receipt", "verify", p, "--key", pub)
		return code, out
	}
	flip := func(s string, at func(n int) int) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[at(len(b))] ^= 0x20
		return base64.StdEncoding.EncodeToString(b)
	}
	for what, edit := range map[string]func(env *receipt.Envelope){
		"the payload's first byte": func(env *receipt.Envelope) { env.Payload = flip(env.Payload, func(int) int { return 0 }) },
		"a byte in the payload":    func(env *receipt.Envelope) { env.Payload = flip(env.Payload, func(n int) int { return n / 2 }) },
		"the signature's last byte": func(env *receipt.Envelope) {
			env.Signatures[0].Sig = flip(env.Signatures[0].Sig, func(n int) int { return n - 1 })
		},
		"the payload type": func(env *receipt.Envelope) { env.PayloadType = "application/json" },
	} {
		if code, out := tamper(edit); code != exitProofFailed || !strings.Contains(out, "DOES NOT MATCH") {
			t.Errorf("receipt verify with %s changed: exit %d\n%s", what, code, out)
		}
	}
	if code, out := tamper(func(env *receipt.Envelope) {
		for _, s := range []*string{&env.Payload, &env.Signatures[0].Sig} {
			b, _ := base64.StdEncoding.DecodeString(*s)
			*s = base64.URLEncoding.EncodeToString(b)
		}
	}); code != 0 {
		t.Errorf("receipt verify of the envelope in URL-safe base64: exit %d\n%s", code, out)
	}

	code, out, _ = run(t, "--catalog", w.catalog, "show", first.ID)
	seen = append(seen, out)
	if code != 0 || !strings.Contains(out, rc.Path) || !strings.Contains(out, rc.SHA256) {
		t.Errorf("show does not name the receipt:\n%s", out)
	}

	time.Sleep(1100 * time.Millisecond) // IDs are kept to the second
	second := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)
	st, err := receipt.Unverified(second.Receipts[0].Envelope)
	if err != nil || st.Predicate.PreviousReceipt != rc.SHA256 {
		t.Errorf("the second receipt chains to %q (%v), want the first's %s", st.Predicate.PreviousReceipt, err, rc.SHA256)
	}
	if st, _ := receipt.Unverified(rc.Envelope); st.Predicate.PreviousReceipt != "" || st.Predicate.TOC.EntriesBLAKE3 != first.TOC.EntriesBLAKE3 || first.TOC.EntriesBLAKE3 == "" {
		t.Errorf("the first receipt chains to %q, names entries %q (the record's %q)", st.Predicate.PreviousReceipt, st.Predicate.TOC.EntriesBLAKE3, first.TOC.EntriesBLAKE3)
	}

	// A later proof gets its receipt too, chained to the newest of the
	// name; an unsigned backup's re-verify gets one (its SHA-256 read).
	unsigned := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	code, out, errOut = run(t, "--catalog", w.catalog, "--json", "verify", first.ID, unsigned.ID, "--sign-key", priv)
	seen = append(seen, out, errOut)
	if code != 0 {
		t.Fatalf("verify --sign-key: exit %d\n%s%s", code, out, errOut)
	}
	reverified := decodeRecords(t, out)
	if len(reverified) != 2 || len(reverified[0].Receipts) != 2 || len(reverified[1].Receipts) != 1 || reverified[1].Archive.SHA256 == "" {
		t.Fatalf("after verify --sign-key: %+v", reverified)
	}
	later := reverified[0].Receipts[1]
	st, _ = receipt.Unverified(later.Envelope)
	if st.Predicate.PreviousReceipt != second.Receipts[0].SHA256 || st.Predicate.Proof.StartedAt.Equal(first.Proofs[0].StartedAt) || !strings.Contains(later.Path, ".verify-") {
		t.Errorf("the re-verify's receipt %s chains to %s (want the second backup's %s), proof of %s", later.Path, st.Predicate.PreviousReceipt, second.Receipts[0].SHA256, st.Predicate.Proof.StartedAt)
	}
	if code, out, _ := run(t, "receipt", "verify", later.Path, reverified[1].Receipts[0].Path, "--key", pub); code != 0 || strings.Count(out, ": OK") != 2 {
		t.Errorf("receipt verify of the re-verifies' receipts: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "receipt", "verify", reverified[1].Receipts[0].Path, "--key", pub, "--archive", unsigned.Archive.Path); code != 0 {
		t.Errorf("the unsigned backup's receipt against its archive: exit %d\n%s", code, out)
	}

	// The receipts of a name chain: all of them link; the oldest given
	// may follow one not given (the chain began before); any other that
	// follows a receipt not given means one is missing: exit 3, named.
	u := reverified[1].Receipts[0]
	all := []string{rc.Path, second.Receipts[0].Path, later.Path, u.Path}
	if code, out, _ := run(t, append([]string{"receipt", "verify", "--key", pub}, all...)...); code != 0 || !strings.Contains(out, "chain shop: 4 receipts") || !strings.Contains(out, "each linked to the one before") {
		t.Errorf("receipt verify of the whole chain: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "receipt", "verify", "--key", pub, second.Receipts[0].Path, later.Path, u.Path); code != 0 || !strings.Contains(out, "chain shop: 3 receipts") {
		t.Errorf("receipt verify of the chain from its second receipt on: exit %d\n%s", code, out)
	}
	code, out, errOut = run(t, "receipt", "verify", "--key", pub, rc.Path, later.Path, u.Path)
	if code != exitProofFailed || !strings.Contains(out, "BROKEN at "+later.Path) || !strings.Contains(out, second.Receipts[0].SHA256) || !strings.Contains(errOut, "broken link") {
		t.Errorf("receipt verify with the second backup's receipt left out: exit %d\n%s%s", code, out, errOut)
	}

	// Later proofs are in no manifest: a rebuild that trusts the key takes
	// them from their receipts. The unsigned backup, re-verified with the
	// key, is verified by that proof alone (its backup's proof kept as
	// unattested); the first has both its proofs. Another backup's receipt
	// planted beside it adds nothing.
	planted := strings.TrimSuffix(unsigned.Archive.Path, ".dump") + ".verify-20261231T000000Z.receipt.json"
	lb, _ := os.ReadFile(later.Path)
	os.WriteFile(planted, lb, 0o644)
	// Its own receipt again, re-encoded (other bytes, the same signed
	// statement); the first backup's own receipt under a later name; a
	// planted object too large to be a receipt.
	var reenc bytes.Buffer
	ub, _ := os.ReadFile(u.Path)
	json.Indent(&reenc, ub, "", "  ")
	copied := strings.TrimSuffix(unsigned.Archive.Path, ".dump") + ".verify-20261231T000001Z.receipt.json"
	os.WriteFile(copied, reenc.Bytes(), 0o644)
	ownAgain := strings.TrimSuffix(first.Archive.Path, ".dump") + ".verify-20261231T000002Z.receipt.json"
	rb, _ := os.ReadFile(rc.Path)
	os.WriteFile(ownAgain, rb, 0o644)
	huge := strings.TrimSuffix(first.Archive.Path, ".dump") + ".verify-20261231T000003Z.receipt.json"
	os.WriteFile(huge, bytes.Repeat([]byte(" "), 5<<20), 0o644)
	code, out, got := rebuildTrusting(t, w.dir, pub)
	if code != 0 || !strings.Contains(out, "later proof(s) taken from their signed receipts") || !strings.Contains(out, "1 receipt(s) beside it could not be read") {
		t.Fatalf("rebuild --trust-key: exit %d\n%s", code, out)
	}
	if r := got[first.ID]; r == nil || r.Status != catalog.StatusVerified || len(r.Proofs) != 2 || len(r.Receipts) != 2 || r.Attestation != pipeline.AttestSigned {
		t.Errorf("rebuilt first backup: %+v; want verified with its backup's and its re-verify's proofs and receipts", r)
	}
	if r := got[unsigned.ID]; r == nil || r.Status != catalog.StatusVerified || len(r.Proofs) != 1 || len(r.Receipts) != 1 ||
		r.Attestation != pipeline.AttestUnsigned || len(r.UnattestedProofs) != 1 || !r.Proofs[0].StartedAt.Equal(reverified[1].Proofs[1].StartedAt) {
		t.Errorf("rebuilt unsigned backup: %+v; want verified by its signed re-verify alone, its backup's proof unattested", r)
	}
	for _, f := range []string{planted, copied, ownAgain, huge} {
		os.Remove(f)
	}

	// A changed archive, another key: exit 3, named.
	changed := filepath.Join(t.TempDir(), "changed.dump")
	b, _ := os.ReadFile(first.Archive.Path)
	b[len(b)/2] ^= 1
	os.WriteFile(changed, b, 0o600)
	code, out, errOut = run(t, "receipt", "verify", rc.Path, "--key", pub, "--archive", changed)
	if code != exitProofFailed || !strings.Contains(out, "DOES NOT MATCH") || !strings.Contains(out, "do not match the receipt's subject") {
		t.Errorf("receipt verify with a changed archive: exit %d\n%s%s", code, out, errOut)
	}
	otherPriv := filepath.Join(keys, "other.pem")
	run(t, "key", "generate", "--out", otherPriv)
	_, otherPub, _ := run(t, "key", "public", otherPriv)
	other := filepath.Join(keys, "other.pub.pem")
	os.WriteFile(other, []byte(otherPub), 0o644)
	if code, out, _ := run(t, "receipt", "verify", rc.Path, second.Receipts[0].Path, "--key", other); code != exitProofFailed || strings.Count(out, "DOES NOT MATCH") != 2 {
		t.Errorf("receipt verify with another key: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "receipt", "verify", rc.Path, "--key", priv); code != exitUsage || !strings.Contains(errOut, "private key") {
		t.Errorf("receipt verify given the private key: exit %d\n%s", code, errOut)
	}

	// The audit counts the backups with a receipt a trusted key checks.
	today := time.Now().UTC().Format(time.DateOnly)
	for key, want := range map[string]string{pub: "3 of 3 backups have a receipt signed by a trusted key", other: "0 of 3 backups have a receipt signed by a trusted key"} {
		_, out, _ := run(t, "--catalog", w.catalog, "audit", "--from", today, "--trust-key", key)
		if !strings.Contains(out, want) {
			t.Errorf("audit --trust-key %s does not say %q:\n%s", filepath.Base(key), want, out)
		}
	}

	// A signed audit report: the envelope signs the report's very bytes.
	code, report, errOut := run(t, "--catalog", w.catalog, "audit", "--from", today, "--format", "json", "--sign-key", priv, "--receipt-out", filepath.Join(keys, "audit.dsse.json"))
	seen = append(seen, report, errOut)
	if code != 0 {
		t.Fatalf("audit --sign-key: exit %d\n%s", code, errOut)
	}
	reportFile := filepath.Join(keys, "audit.json")
	os.WriteFile(reportFile, []byte(report), 0o600)
	if code, out, _ := run(t, "receipt", "verify", filepath.Join(keys, "audit.dsse.json"), "--key", pub, "--report", reportFile); code != 0 || !strings.Contains(out, "audit report") || !strings.Contains(out, "the report's bytes match") {
		t.Errorf("receipt verify of the signed audit: exit %d\n%s", code, out)
	}
	os.WriteFile(reportFile, []byte(strings.Replace(report, `"ok": true`, `"ok": false`, 1)), 0o600)
	if code, out, _ := run(t, "receipt", "verify", filepath.Join(keys, "audit.dsse.json"), "--key", pub, "--report", reportFile); code != exitProofFailed {
		t.Errorf("receipt verify of a changed audit report: exit %d\n%s", code, out)
	}

	// The private key is nowhere but its file.
	cat, _ := os.ReadFile(w.catalog)
	js, _ := json.Marshal([]any{first, second})
	for i, s := range append(seen, string(cat), string(js), string(file)) {
		if strings.Contains(s, secret) {
			t.Errorf("output %d holds the private key", i)
		}
	}
}

// TestSignedDirectoryReceipts: a directory-format backup (--jobs 2) with
// --sign-key leaves a receipt naming each of its files (FOLDER/PATH, with
// the sha256 and blake3 of its bytes), which receipt verify --archive
// FOLDER and openssl with sha256sum (the README's commands) check; a
// changed, added or removed file is exit 3; verify --sign-key signs a
// later proof of the folder; a rebuild that trusts the key records the
// backup verified with both proofs, and a forged manifest beside it (a
// --verify none backup claiming that proof, rows 424242) unverified.
func TestSignedDirectoryReceipts(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	priv, pub := signingKey(t)

	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shopdir", "--jobs", "2", "--sign-key", priv)
	if rec.Archive.Format != "directory" || len(rec.Receipts) != 1 || rec.Status != catalog.StatusVerified {
		t.Fatalf("a signed --jobs 2 backup: format %s, status %s, receipts %+v", rec.Archive.Format, rec.Status, rec.Receipts)
	}
	rc := rec.Receipts[0]
	folder := rec.Archive.Path
	st, err := receipt.Unverified(rc.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(folder, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(folder, p)
			files = append(files, rel)
		}
		return err
	})
	if len(files) < 2 || len(st.Subject) != len(files) || rec.Archive.Files != len(files) || st.Predicate.Archive.BLAKE3 != rec.Archive.BLAKE3 {
		t.Fatalf("the receipt names %d subjects, folder digest %s; the folder holds %d files (record: %d, %s)", len(st.Subject), st.Predicate.Archive.BLAKE3, len(files), rec.Archive.Files, rec.Archive.BLAKE3)
	}
	for _, sub := range st.Subject {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(folder), filepath.FromSlash(sub.Name)))
		if err != nil || receipt.Digest(b) != sub.Digest["sha256"] {
			t.Errorf("subject %s: not a file of the folder with its sha256 (%v)", sub.Name, err)
		}
	}
	code, out, errOut := run(t, "receipt", "verify", rc.Path, "--key", pub, "--archive", folder)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("of %d files", len(files))) || !strings.Contains(out, "the archive's bytes match") {
		t.Fatalf("receipt verify --archive FOLDER: exit %d\n%s%s", code, out, errOut)
	}
	script, _ := filepath.Abs("../pipeline/receipt/testdata/verify-with-openssl.sh")
	openssl := func(dir string) (string, int) {
		cmd := exec.Command("sh", script, rc.Path, pub, dir)
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := openssl(folder); code != 0 || !strings.Contains(out, "archive folder matches") {
		t.Errorf("openssl and sha256sum on the folder: exit %d\n%s", code, out)
	}

	// A copy of the folder, damaged: exit 3 from both checks.
	dataFile := slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == "toc.dat" })[0]
	for what, damage := range map[string]func(dir string){
		"a file changed": func(dir string) {
			p := filepath.Join(dir, "toc.dat")
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o600)
		},
		"a file added":   func(dir string) { os.WriteFile(filepath.Join(dir, "9999.dat.gz"), []byte("planted"), 0o600) },
		"a file removed": func(dir string) { os.Remove(filepath.Join(dir, dataFile)) },
		// pg_restore opens NNNN.dat before NNNN.dat.gz: a link there
		// would be restored in the file's place.
		"a link planted": func(dir string) { os.Symlink("/etc/passwd", filepath.Join(dir, strings.TrimSuffix(dataFile, ".gz"))) },
	} {
		dir := filepath.Join(t.TempDir(), filepath.Base(folder))
		if out, err := exec.Command("cp", "-a", folder, dir).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		damage(dir)
		code, out, errOut := run(t, "receipt", "verify", rc.Path, "--key", pub, "--archive", dir)
		if code != exitProofFailed || !strings.Contains(out, "DOES NOT MATCH") {
			t.Errorf("receipt verify with %s: exit %d\n%s%s", what, code, out, errOut)
		}
		if out, code := openssl(dir); code != 3 {
			t.Errorf("openssl and sha256sum with %s: exit %d, want 3\n%s", what, code, out)
		}
	}

	// A later proof of the folder gets its receipt.
	code, out, errOut = run(t, "--catalog", w.catalog, "--json", "verify", rec.ID, "--sign-key", priv)
	if code != 0 {
		t.Fatalf("verify --sign-key of the folder: exit %d\n%s%s", code, out, errOut)
	}
	reverified := decodeRecords(t, out)
	if len(reverified) != 1 || len(reverified[0].Receipts) != 2 {
		t.Fatalf("after verify --sign-key: %+v", reverified)
	}
	later := reverified[0].Receipts[1]
	if code, out, _ := run(t, "receipt", "verify", later.Path, "--key", pub, "--archive", folder); code != 0 {
		t.Errorf("receipt verify of the later proof's receipt: exit %d\n%s", code, out)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if _, out, _ := run(t, "--catalog", w.catalog, "audit", "--from", today, "--trust-key", pub); !strings.Contains(out, "1 of 1 backups have a receipt signed by a trusted key") {
		t.Errorf("audit --trust-key does not count the folder's receipt:\n%s", out)
	}

	// The forgery beside it: a --verify none folder backup's manifest
	// claims the genuine proof, with other rows.
	time.Sleep(1100 * time.Millisecond)
	victim := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shopdir", "--jobs", "2", "--verify", "none", "--sign-key", priv)
	editManifest(t, victim.Archive.Manifest, func(r map[string]any) {
		var proofs []map[string]any
		pb, _ := json.Marshal(rec.Proofs)
		json.Unmarshal(pb, &proofs)
		proofs[0]["rows"] = 424242
		r["proofs"] = proofs
		r["status"] = "verified"
	})
	code, out, got := rebuildTrusting(t, w.dir, pub)
	if code != 0 || !strings.Contains(out, "later proof(s) taken from their signed receipts") {
		t.Fatalf("rebuild --trust-key: exit %d\n%s", code, out)
	}
	if r := got[rec.ID]; r == nil || r.Status != catalog.StatusVerified || len(r.Proofs) != 2 || len(r.Receipts) != 2 || r.Attestation != pipeline.AttestSigned {
		t.Errorf("rebuilt folder backup: %+v; want verified with its backup's and its re-verify's proofs and receipts", r)
	}
	if r := got[victim.ID]; r == nil || r.Status != catalog.StatusUnverified || r.Attestation != pipeline.AttestMismatch {
		t.Errorf("rebuilt forgery: %+v; want unverified, %q", r, pipeline.AttestMismatch)
	}

	// A link planted in the stored folder: its files still hash to the
	// receipt's, but the folder is not what the key signed. The rebuild
	// records the backup unverified; a re-verify fails it.
	if err := os.Symlink("/etc/passwd", filepath.Join(folder, strings.TrimSuffix(dataFile, ".gz"))); err != nil {
		t.Fatal(err)
	}
	_, _, got = rebuildTrusting(t, w.dir, pub)
	if linked := got[rec.ID]; linked != nil && linked.Status == catalog.StatusVerified {
		t.Errorf("the folder with a planted link, rebuilt: %+v; want it not verified", linked)
	}
	if code, out, errOut := run(t, "--catalog", w.catalog, "verify", rec.ID); code != exitProofFailed || !strings.Contains(out+errOut, "a symbolic link") {
		t.Errorf("verify of the folder with a planted link: exit %d\n%s%s", code, out, errOut)
	}
}

// TestRebuildTakesALaterProofsOwnTools: a later proof that ran on another
// server and pg_restore (a verify --sign-key on another machine) is signed
// naming those, and a rebuild that trusts the key takes the proof with
// them from its receipt.
func TestRebuildTakesALaterProofsOwnTools(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	priv, pub := signingKey(t)
	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)

	later := *rec.LastProof()
	later.StartedAt = later.StartedAt.Add(time.Hour)
	later.ServerVersion, later.RestoreTool = "16.9", "16.9"
	st, err := receipt.For(rec, &later, receipt.FileSubject(filepath.Base(rec.Archive.Path), rec.Archive), rec.Receipts[0].SHA256, "head", later.StartedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := receipt.LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := signer.Seal(st)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(strings.TrimSuffix(rec.Archive.Path, ".dump")+".verify-20261231T000000Z.receipt.json", env, 0o600)

	code, out, recs := rebuildTrusting(t, w.dir, pub)
	if code != 0 || !strings.Contains(out, "1 later proof(s) taken") {
		t.Fatalf("rebuild --trust-key: exit %d\n%s", code, out)
	}
	if r := recs[rec.ID]; len(recs) != 1 || r == nil || len(r.Proofs) != 2 || r.Proofs[1].ServerVersion != "16.9" || r.Proofs[1].RestoreTool != "16.9" {
		t.Errorf("rebuilt: %+v; want the later proof, run by 16.9", r)
	}
}

// TestRebuildTrustsKeysNotFiles: a bucket writer's forgery (a --verify
// none backup's manifest given another backup's passed proof, its rows set
// to 424242) is recorded verified by a rebuild that trusts the files, and
// unverified, "receipt does not match", by one that trusts the signing
// key; the genuine signed backup beside it is verified; an unsigned backup
// and one signed by another key are named so and counted.
func TestRebuildTrustsKeysNotFiles(t *testing.T) {
	src := shop(t)
	w := newWorkdir(t)
	keys := t.TempDir()
	priv, otherPriv := filepath.Join(keys, "sign.pem"), filepath.Join(keys, "other.pem")
	_, pubPEM, _ := run(t, "key", "generate", "--out", priv)
	run(t, "key", "generate", "--out", otherPriv)
	pub := filepath.Join(keys, "sign.pub.pem")
	os.WriteFile(pub, []byte(pubPEM), 0o644)

	victim := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--verify", "none", "--sign-key", priv)
	time.Sleep(1100 * time.Millisecond)
	genuine := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)
	time.Sleep(1100 * time.Millisecond)
	unsigned := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop")
	time.Sleep(1100 * time.Millisecond)
	stranger := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", otherPriv)
	time.Sleep(1100 * time.Millisecond)
	swapped := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)
	time.Sleep(1100 * time.Millisecond)
	moved := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--sign-key", priv)

	// A genuine receipt and manifest beside another archive of the same
	// size (the manifest's digest untouched: only --rehash would read it).
	junk := make([]byte, swapped.Archive.Size)
	copy(junk, "PGDMP")
	os.WriteFile(swapped.Archive.Path, junk, 0o600)
	// A genuine backup's manifest moved a day earlier (to fill a gap).
	editManifest(t, moved.Archive.Manifest, func(r map[string]any) {
		r["started_at"] = moved.StartedAt.Add(-24 * time.Hour).Format(time.RFC3339Nano)
	})

	// The forgery: the victim's manifest claims the genuine backup's proof.
	editManifest(t, victim.Archive.Manifest, func(r map[string]any) {
		var proofs []map[string]any
		pb, _ := json.Marshal(genuine.Proofs)
		json.Unmarshal(pb, &proofs)
		proofs[0]["rows"] = 424242
		r["proofs"] = proofs
		r["status"] = "verified"
	})

	rebuilt := func(args ...string) (map[string]string, string) {
		cat := filepath.Join(t.TempDir(), "rebuilt.db")
		code, out, errOut := run(t, append([]string{"--catalog", cat, "catalog", "rebuild", "--repo", w.dir}, args...)...)
		if code != 0 {
			t.Fatalf("rebuild %q: exit %d\n%s%s", args, code, out, errOut)
		}
		_, js, _ := run(t, "--catalog", cat, "--json", "list")
		status := map[string]string{}
		for _, r := range decodeRecords(t, js) {
			status[r.ID] = r.Status
		}
		return status, out + errOut
	}
	trusting, out := rebuilt()
	if trusting[victim.ID] != "verified" || !strings.Contains(out, "no --trust-key: the manifests are trusted as they are") {
		t.Errorf("a rebuild that trusts files: the forgery is %s (it was recorded as the file says: verified); output\n%s", trusting[victim.ID], out)
	}
	status, out := rebuilt("--trust-key", pub)
	want := map[string]string{victim.ID: "unverified", genuine.ID: "verified", unsigned.ID: "unverified", stranger.ID: "unverified",
		swapped.ID: "unverified", moved.ID: "unverified"}
	for id, st := range want {
		if status[id] != st {
			t.Errorf("%s is %s, want %s\n%s", id, status[id], st, out)
		}
	}
	if !strings.Contains(out, "receipts: 1 signed by a trusted key; recorded unverified: 1 unsigned, 1 by an unknown key, 3 whose receipt does not match") {
		t.Errorf("the summary does not count each:\n%s", out)
	}
	if strings.Contains(out, "no --trust-key") {
		t.Errorf("a rebuild with a key says it trusts the files:\n%s", out)
	}
}

// signingKey makes a key pair with key generate: the private key's file
// and the public key's.
func signingKey(t *testing.T) (priv, pub string) {
	t.Helper()
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "sign.pem"), filepath.Join(dir, "sign.pub.pem")
	code, pubPEM, errOut := run(t, "key", "generate", "--out", priv)
	if code != 0 {
		t.Fatalf("key generate: exit %d\n%s", code, errOut)
	}
	if err := os.WriteFile(pub, []byte(pubPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// rebuildTrusting rebuilds a new catalog from repo with --trust-key pub:
// its exit code and output, and the records the new catalog holds, by ID
// (none when it could not be listed).
func rebuildTrusting(t *testing.T, repo, pub string) (int, string, map[string]*catalog.Record) {
	t.Helper()
	cat := filepath.Join(t.TempDir(), "rebuilt.db")
	code, out, errOut := run(t, "--catalog", cat, "catalog", "rebuild", "--repo", repo, "--trust-key", pub)
	recs := map[string]*catalog.Record{}
	if lc, js, _ := run(t, "--catalog", cat, "--json", "list"); lc == 0 {
		for _, r := range decodeRecords(t, js) {
			recs[r.ID] = r
		}
	}
	return code, out + errOut, recs
}

// editManifest rewrites the record in a manifest file, as a writer of the
// repository would.
func editManifest(t *testing.T, path string, edit func(record map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m["record"].(map[string]any))
	b, _ = json.Marshal(m)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestS3SignedReceipts: a signed backup into a bucket with Object Lock
// keeps its receipt beside the archive under the archive's retention; a
// catalog rebuilt from the bucket with the key records it verified, and
// receipt verify checks the object's bytes.
func TestS3SignedReceipts(t *testing.T) {
	src := shop(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "signed", true)
	s.SetEnv(t)
	w := newWorkdir(t)
	priv, pub := signingKey(t)

	rec := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shop", "--repo", "s3://signed/pg", "--lock-days", "1", "--sign-key", priv)
	if len(rec.Receipts) != 1 || !strings.HasPrefix(rec.Receipts[0].Path, "s3://signed/pg/shop/") {
		t.Fatalf("receipts %+v: want one beside the archive in the bucket", rec.Receipts)
	}
	key := strings.TrimPrefix(rec.Receipts[0].Path, "s3://signed/")
	info, err := s.Client(t).StatObject(context.Background(), "signed", key, minio.StatObjectOptions{})
	until, perr := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	if err != nil || perr != nil || !until.Equal(*rec.Archive.Store.RetainUntil) {
		t.Errorf("the receipt object %s is not under the archive's retention (%v %v, until %v, want %v)", key, err, perr, until, rec.Archive.Store.RetainUntil)
	}
	body := s3Object(t, s, "signed", key)
	file := filepath.Join(t.TempDir(), "r.receipt.json")
	os.WriteFile(file, body, 0o644)
	archive := filepath.Join(t.TempDir(), "a.dump")
	os.WriteFile(archive, s3Object(t, s, "signed", "pg/"+rec.Archive.Store.Key), 0o600)
	if code, out, _ := run(t, "receipt", "verify", file, "--key", pub, "--archive", archive); code != 0 {
		t.Errorf("receipt verify of the bucket's receipt: exit %d\n%s", code, out)
	}
	// A directory-format archive in the bucket: a receipt naming each
	// object of its folder, and one for a later proof.
	dir := w.mustBackup(t, "--db", src.ConnString("shop"), "--name", "shopdir", "--repo", "s3://signed/pg", "--jobs", "2", "--sign-key", priv)
	if dir.Archive.Format != "directory" || len(dir.Receipts) != 1 {
		t.Fatalf("a signed --jobs 2 backup to the bucket: format %s, receipts %+v", dir.Archive.Format, dir.Receipts)
	}
	if code, out, errOut := run(t, "--catalog", w.catalog, "verify", dir.ID, "--sign-key", priv); code != 0 {
		t.Fatalf("verify --sign-key of the bucket's folder: exit %d\n%s%s", code, out, errOut)
	}
	code, out, recs := rebuildTrusting(t, "s3://signed/pg", pub)
	if code != 0 || !strings.Contains(out, "receipts: 2 signed by a trusted key") || !strings.Contains(out, "1 later proof(s) taken from their signed receipts") {
		t.Fatalf("rebuild --trust-key: exit %d\n%s", code, out)
	}
	if r := recs[rec.ID]; len(recs) != 2 || r == nil || r.Status != catalog.StatusVerified || len(r.Receipts) != 1 {
		t.Errorf("rebuilt: %+v", r)
	}
	if r := recs[dir.ID]; r == nil || r.Status != catalog.StatusVerified || len(r.Receipts) != 2 || len(r.Proofs) != 2 {
		t.Errorf("rebuilt folder backup: %+v; want verified with both proofs and receipts", r)
	}

	// A writer of the bucket replaces the folder's toc.dat with other
	// bytes of its size (a new version over the key): the rebuild reads
	// the folder's objects, and no receipt covers them.
	toc := "pg/" + dir.Archive.Store.Key + "toc.dat"
	b := s3Object(t, s, "signed", toc)
	b[len(b)/2] ^= 1
	if _, err := s.Client(t).PutObject(context.Background(), "signed", toc, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, recs = rebuildTrusting(t, "s3://signed/pg", pub)
	if code != 0 || !strings.Contains(out, "receipts: 1 signed by a trusted key") {
		t.Fatalf("rebuild --trust-key after the swap: exit %d\n%s", code, out)
	}
	if swapped := recs[dir.ID]; swapped == nil || swapped.Status == catalog.StatusVerified || swapped.Attestation != pipeline.AttestMismatch || len(swapped.Receipts) != 0 {
		t.Errorf("the folder with a swapped file, rebuilt: %+v; want unverified, %q, no receipt", swapped, pipeline.AttestMismatch)
	}
}
