package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/testenv/pgtest"
)

// TestRetentionKeepsWhatRestores: retention counts only archives that are
// there, and a re-encrypted copy and its original are one backup. On a
// folder and on the real S3 server:
//   - two backups of a name, the newer one's archive removed behind
//     pgattest's back, prune --keep-last 1: the older, intact one is kept
//     (the old code filled the slot with the newer record and deleted the
//     last restorable archive), the newer one is marked missing, named,
//     and no longer what restore picks;
//   - the kept backup re-encrypted for a new key, prune --keep-last 1: the
//     copy for the new key is kept and the original goes (the old code
//     broke the tie of their equal start times by the IDs' random suffix);
//     the copy restores with the new identity.
func TestRetentionKeepsWhatRestores(t *testing.T) {
	src := shopCluster(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "keep", false)
	s.SetEnv(t)
	identity := func(t *testing.T) (*age.X25519Identity, *seal.Identities) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "key.txt")
		if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ids, err := seal.LoadIdentities(f)
		if err != nil {
			t.Fatal(err)
		}
		return id, ids
	}
	for _, backend := range []string{"folder", "s3"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			oldKey, oldIDs := identity(t)
			newKey, newIDs := identity(t)
			o := backupOptions(t, src.ConnString("shop"))
			o.Name = "shop"
			o.EncryptTo = []string{oldKey.Recipient().String()}
			if backend == "s3" {
				o.Repo = "s3://keep/" + t.Name()
			}
			var recs []*catalog.Record
			for range 2 {
				res, err := pipeline.Backup(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				if res.Record.Status != catalog.StatusVerified {
					t.Fatalf("backup: %s", res.Record.Status)
				}
				recs = append(recs, res.Record)
				time.Sleep(1100 * time.Millisecond) // distinct start seconds
			}
			older, newer := recs[0], recs[1]
			remove := func(rec *catalog.Record) {
				t.Helper()
				if backend == "folder" {
					if err := os.Remove(rec.Archive.Path); err != nil {
						t.Fatal(err)
					}
					return
				}
				err := s.Client(t).RemoveObject(ctx, "keep", strings.TrimPrefix(rec.Archive.Path, "s3://keep/"), minio.RemoveObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
			}
			read := func(rec *catalog.Record) []byte {
				t.Helper()
				if backend == "folder" {
					b, err := os.ReadFile(rec.Archive.Path)
					if err != nil {
						t.Fatal(err)
					}
					return b
				}
				obj, err := s.Client(t).GetObject(ctx, "keep", strings.TrimPrefix(rec.Archive.Path, "s3://keep/"), minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer obj.Close()
				b, err := io.ReadAll(obj)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			put := func(rec *catalog.Record, b []byte) {
				t.Helper()
				if backend == "folder" {
					if err := os.WriteFile(rec.Archive.Path, b, 0o600); err != nil {
						t.Fatal(err)
					}
					return
				}
				if _, err := s.Client(t).PutObject(ctx, "keep", strings.TrimPrefix(rec.Archive.Path, "s3://keep/"), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			exists := func(rec *catalog.Record) bool {
				if backend == "folder" {
					_, err := os.Lstat(rec.Archive.Path)
					return err == nil
				}
				_, err := s.Client(t).StatObject(ctx, "keep", strings.TrimPrefix(rec.Archive.Path, "s3://keep/"), minio.StatObjectOptions{})
				return err == nil
			}
			status := func(id string) string {
				t.Helper()
				cat, err := catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				defer cat.Close()
				r, err := cat.Get(id)
				if err != nil {
					t.Fatal(err)
				}
				return r.Status
			}
			keepLast1 := pipeline.PruneOptions{CatalogPath: o.CatalogPath, Policy: catalog.Policy{Last: 1}}

			// 6: the newer archive gone.
			saved := read(newer)
			remove(newer)
			dry := keepLast1
			dry.DryRun = true
			res, err := pipeline.Prune(context.Background(), dry)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Removed) != 0 || len(res.Missing) != 1 || res.Missing[0].Record.ID != newer.ID || status(newer.ID) != catalog.StatusVerified {
				t.Errorf("dry run: removed %d, missing %+v, newer %s; want nothing removed, the newer named missing, its record unchanged", len(res.Removed), res.Missing, status(newer.ID))
			}
			res, err = pipeline.Prune(context.Background(), keepLast1)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Kept) != 1 || res.Kept[0].Record.ID != older.ID || len(res.Removed) != 0 {
				t.Errorf("prune --keep-last 1 with the newer archive gone: kept %v, removed %d; want the older, intact one kept", res.Kept, len(res.Removed))
			}
			if !exists(older) {
				t.Fatalf("the last intact archive was deleted")
			}
			if got := status(newer.ID); got != catalog.StatusMissing {
				t.Errorf("the newer record is %q, want missing", got)
			}
			if len(res.Missing) != 1 || !strings.Contains(res.Missing[0].Why, "no such") {
				t.Errorf("missing: %+v", res.Missing)
			}
			cat, err := catalog.Open(o.CatalogPath, catalog.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			pick, err := cat.AsOf("shop", time.Now())
			cat.Close()
			if err != nil || pick.ID != older.ID {
				t.Errorf("restore would pick %v (%v), want the intact %s", pick, err, older.ID)
			}
			// A second prune marks nothing again and keeps the same.
			if res, err = pipeline.Prune(context.Background(), keepLast1); err != nil || len(res.Kept) != 1 || res.Kept[0].Record.ID != older.ID || res.Event.Seq != 0 {
				t.Errorf("second prune: %v, %+v", err, res)
			}

			// 7: the kept backup re-encrypted for a new key.
			copied, err := pipeline.Reencrypt(ctx, pipeline.ReencryptOptions{CatalogPath: o.CatalogPath, Record: older,
				Identities: oldIDs, EncryptTo: []string{newKey.Recipient().String()}})
			if err != nil {
				t.Fatal(err)
			}
			cp := copied.Record
			if !cp.StartedAt.Equal(older.StartedAt) {
				t.Fatalf("the copy starts at %s, the original at %s", cp.StartedAt, older.StartedAt)
			}
			if res, err = pipeline.Prune(context.Background(), keepLast1); err != nil {
				t.Fatal(err)
			}
			if len(res.Kept) != 1 || res.Kept[0].Record.ID != cp.ID {
				t.Errorf("kept %v, want the copy for the new key %s", res.Kept, cp.ID)
			}
			if len(res.Removed) != 1 || res.Removed[0].ID != older.ID || res.Superseded[older.ID] != cp.ID {
				t.Errorf("removed %v (superseded %v), want the original %s, superseded by the copy", res.Removed, res.Superseded, older.ID)
			}
			if !exists(cp) || exists(older) {
				t.Errorf("after prune: copy there %v, original there %v", exists(cp), exists(older))
			}
			db := backend + "_rotated"
			execAs(t, src.ConnString("postgres"), "CREATE DATABASE "+db)
			if _, err := pipeline.Restore(ctx, pipeline.RestoreOptions{Record: cp, Target: src.ConnString(db), Identities: newIDs, NoOwner: true, NoACL: true}); err != nil {
				t.Fatalf("restore of the kept copy with the new identity: %v", err)
			}
			if got := sourceCounts(t, src, db); got["shop.orders"] == 0 {
				t.Errorf("restored without orders: %v", got)
			}

			// The missing archive put back (a disk mounted again): the
			// next prune gives the record back its proofs' status, and it
			// counts again (the newest, it is the one kept).
			put(newer, saved)
			if res, err = pipeline.Prune(context.Background(), keepLast1); err != nil {
				t.Fatal(err)
			}
			if status(newer.ID) != catalog.StatusVerified || len(res.Kept) != 1 || res.Kept[0].Record.ID != newer.ID {
				t.Errorf("with the archive back: %s, kept %v; want verified and kept", status(newer.ID), res.Kept)
			}
		})
	}
}
