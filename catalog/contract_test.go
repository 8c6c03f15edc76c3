package catalog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ContractRecord is a record with every field set: the fixture of the
// record's JSON contract (testdata/record-v1.golden.json), which the
// manifest and every --json output that prints a record carry.
func contractRecord() *Record {
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	pruned := t0.Add(40 * 24 * time.Hour)
	retain := t0.Add(35 * 24 * time.Hour)
	proof := Proof{
		Mode: "restore", Status: "passed", StartedAt: t0.Add(5 * time.Second), DurationMS: 61000,
		Error: "none", Tables: []TableCount{{Schema: "shop", Name: "orders", Rows: 42}}, Rows: 42,
		DigestChecked: true, ServerVersion: "15.14", RestoreTool: "pg_restore (PostgreSQL) 15.14",
		FailedEntry: "none", Skipped: []string{"EXTENSION postgis: not installed here"}, Created: []string{"EXTENSION hstore"},
		Streamed: true, Store: []string{"versionid 3"},
		Isolation: &Isolation{RestoreRole: "pgattest_restore", ServerUser: "nobody", Network: "unix socket only"},
	}
	return &Record{
		ID: "shop-20261101T020000Z-ab12", Name: "shop", Status: StatusVerified,
		StartedAt: t0, FinishedAt: t0.Add(90 * time.Second),
		Source: Source{Host: "db.internal", Port: 5432, Database: "shop", User: "backup", ServerVersion: "15.14",
			Size: 1 << 30, Superusers: []string{"postgres"}, Memberships: []Membership{{Role: "app", Member: "backup"}},
			Identity: &Identity{SystemID: "7300000000000000001", ServerStarted: t0.Add(-time.Hour), Port: 5432, DatabaseOID: 16384, Database: "shop"}},
		Archive: Archive{Path: "backups/shop/shop-20261101T020000Z.dump.age", Format: "custom", Size: 1234,
			BLAKE3: strings.Repeat("b", 64), SHA256: strings.Repeat("5", 64), Files: 1, Compression: 1, Compressor: "pgattest deflate",
			Jobs: 1, Manifest: "backups/shop/shop-20261101T020000Z.manifest.json",
			Store: &Store{Repo: "s3://acme/pg", Endpoint: "https://s3.example", Bucket: "acme", Key: "shop/shop-20261101T020000Z.dump.age",
				ManifestKey: "shop/shop-20261101T020000Z.manifest.json", VersionID: "v1", RetainUntil: &retain, LockMode: "COMPLIANCE"},
			Encryption: &Encryption{Scheme: "age", Recipients: []string{"age1example"}, PlaintextBLAKE3: strings.Repeat("p", 64), PlaintextSize: 1200},
			Segments:   &Segments{Size: 4 << 20, BLAKE3: []string{strings.Repeat("s", 64)}}},
		TOC: TOC{Entries: 3, Counts: map[string]int{"TABLE": 1, "TABLE DATA": 1, "SCHEMA": 1}, Tables: []TableName{{Schema: "shop", Name: "orders"}},
			DBName: "shop", DumpVersion: "1.14-0", ServerVersion: "15.14", PgDumpVersion: "15.14", Compression: "gzip",
			CreatedAt: "2026-11-01 02:00:00 UTC", EntriesBLAKE3: strings.Repeat("e", 64)},
		Proofs:           []Proof{proof},
		Labels:           map[string]string{"env": "prod"},
		Tools:            Tools{PgDump: "pg_dump (PostgreSQL) 15.14", PgRestore: "pg_restore (PostgreSQL) 15.14", ProofServer: "15.14", Pgattest: "dev"},
		Stages:           []Stage{{Name: "dump", DurationMS: 30000}},
		Roles:            []string{"app"},
		PrunedAt:         &pruned,
		Attestation:      "signed by a trusted key",
		UnattestedProofs: []Proof{proof},
		Receipts:         []Receipt{{SHA256: strings.Repeat("r", 64), KeyID: strings.Repeat("k", 64), Path: "shop/shop-20261101T020000Z.receipt.json", Envelope: json.RawMessage(`{"payloadType":"application/vnd.in-toto+json"}`)}},
		ReencryptedFrom:  "shop-20261001T020000Z-cd34",
	}
}

// unset names the fields of v (recursively, through pointers, slices and
// maps' first elements) left at their zero value.
func unset(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return unset(v.Elem(), path)
	case reflect.Struct:
		if _, ok := v.Interface().(time.Time); ok {
			if v.Interface().(time.Time).IsZero() {
				return []string{path}
			}
			return nil
		}
		var out []string
		for i := 0; i < v.NumField(); i++ {
			out = append(out, unset(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		return unset(v.Index(0), path+"[0]")
	case reflect.Map:
		if v.Len() == 0 {
			return []string{path}
		}
		return nil
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// TestRecordJSONContractV1: a record's JSON (what manifests hold, what
// show, list, backup, verify, reencrypt and restore print with --json) is
// a contract of its own: for a record with every field set it is the
// golden file's, byte for byte. A field added to Record fails the first
// check until the fixture sets it (and the golden file, reviewed, gains
// it); a field renamed or retyped fails the second: scripts and rebuilds
// read these names. Add fields, never rename; a change that cannot be an
// addition is a v2 (DESIGN.md, "Contracts").
func TestRecordJSONContractV1(t *testing.T) {
	rec := contractRecord()
	if missing := unset(reflect.ValueOf(rec), "Record"); len(missing) > 0 {
		t.Fatalf("the contract's fixture leaves fields unset: %v (set them, then run with -update and review the golden file's diff)", missing)
	}
	got, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "record-v1.golden.json")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("a record's JSON is no longer the v1 contract:\n%s", firstDiff(string(want), string(got)))
	}
	// And it reads back whole: a manifest written by this version is
	// read by the next.
	var back Record
	err = json.Unmarshal(want, &back)
	again, _ := json.MarshalIndent(&back, "", "  ")
	if err != nil || !bytes.Equal(append(again, '\n'), want) {
		t.Errorf("the golden record does not read back as written (%v)", err)
	}
}
