package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline"
	"github.com/pgattest/pgattest/testenv"
	"github.com/pgattest/pgattest/testenv/pgtest"
	"github.com/pgattest/pgattest/verify"
)

// hostileDump makes a custom-format archive whose first table's CHECK runs
// COPY … TO PROGRAM (writing a file into markers) for every row restored
// into any database but its own source's, followed by about 1.5 MB of other
// rows: what a writer of the backups folder or the bucket puts in place of
// a backup's archive.
func hostileDump(t *testing.T, markers string) []byte {
	t.Helper()
	evil := pgtest.New(t)
	execAs(t, evil.ConnString("postgres"), `CREATE DATABASE evil`)
	execAs(t, evil.ConnString("evil"), strings.ReplaceAll(`
CREATE FUNCTION public.pwn() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_database() <> 'evil' THEN
    EXECUTE format('COPY (SELECT current_user) TO PROGRAM %L', 'id > MARKERS/swapped-' || current_database());
  END IF;
  RETURN true;
END $$;
CREATE TABLE public.a_first (x int CHECK (public.pwn()));
INSERT INTO public.a_first VALUES (1);
CREATE TABLE public.z_filler (s text);
INSERT INTO public.z_filler SELECT md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 30000) g;`, "MARKERS", markers))
	tc := pgtest.Require(t, testenv.Want{Tools: testenv.ClientTools})
	out, err := exec.Command(tc.Path("pg_dump"), "-Fc", "-Z0", "--dbname="+evil.ConnString("evil")).Output()
	if err != nil {
		t.Fatalf("pg_dump of the hostile database: %v", err)
	}
	return out
}

// TestHostileStore: whoever can write to the backups folder or the bucket
// swaps a backup's archive for a hostile one, before a restore and while it
// starts. No byte of it reaches pg_restore before it is checked, so its
// code never runs (no marker), the target keeps nothing of it, and a swap
// after the check changes nothing: the bytes checked are the bytes used.
// Both backends, one suite.
func TestHostileStore(t *testing.T) {
	markers, noMarker := markerDir(t)
	hostile := hostileDump(t, markers)
	src := shopCluster(t)
	s := pgtest.NewS3(t)
	s.MakeBucket(t, "hostile", false)
	s.SetEnv(t)
	for _, backend := range []string{"folder", "s3"} {
		t.Run(backend, func(t *testing.T) {
			o := backupOptions(t, src.ConnString("shop"))
			o.Name = "shop"
			if backend == "s3" {
				o.Repo = "s3://hostile/" + t.Name()
			}
			res, err := pipeline.Backup(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			rec := res.Record
			if rec.Archive.Segments == nil || len(rec.Archive.Segments.BLAKE3) == 0 {
				t.Fatalf("the record holds no segment digests")
			}
			swap := func() {
				t.Helper()
				if backend == "folder" { // a new file renamed over it, as a writer of the folder can
					tmp := rec.Archive.Path + ".evil"
					if err := os.WriteFile(tmp, hostile, 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, rec.Archive.Path); err != nil {
						t.Fatal(err)
					}
					return
				}
				_, err := s.Client(t).PutObject(context.Background(), "hostile", strings.TrimPrefix(rec.Archive.Path, "s3://hostile/"),
					bytes.NewReader(hostile), int64(len(hostile)), minio.PutObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
			}
			var genuine []byte
			if backend == "folder" {
				if genuine, err = os.ReadFile(rec.Archive.Path); err != nil {
					t.Fatal(err)
				}
			} else {
				o, err := s.Client(t).GetObject(context.Background(), "hostile", strings.TrimPrefix(rec.Archive.Path, "s3://hostile/"), minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				b.ReadFrom(o)
				o.Close()
				genuine = b.Bytes()
			}
			restore := func(db string, ro pipeline.RestoreOptions) error {
				db = backend + "_" + db
				execAs(t, src.ConnString("postgres"), "CREATE DATABASE "+db)
				ro.Record, ro.Target, ro.NoOwner, ro.NoACL = rec, src.ConnString(db), true, true
				_, err := pipeline.Restore(context.Background(), ro)
				return err
			}
			tables := func(db string) int {
				db = backend + "_" + db
				return len(sourceCounts(t, src, db))
			}

			// Swapped while the restore starts (after it opened the
			// archive): the restore uses what it opened and checked.
			err = restore("during", pipeline.RestoreOptions{Starting: func(*pipeline.Source) { swap() }})
			noMarker(t, "swapped as the restore started")
			var mm *verify.DigestMismatchError
			switch {
			case err == nil:
				if got := sourceCounts(t, src, backend+"_during"); got["shop.orders"] == 0 {
					t.Errorf("restored without the backup's orders: %v", got)
				}
			case errors.As(err, &mm): // a bucket without versions may serve the new bytes mid-stream: refused
				if n := tables("during"); n != 0 {
					t.Errorf("a refused restore left %d tables", n)
				}
			default:
				t.Errorf("restore with the archive swapped as it started: %v", err)
			}

			// Swapped before: every reader refuses it, and runs none of it.
			err = restore("before", pipeline.RestoreOptions{})
			noMarker(t, "restore of a swapped archive")
			if !errors.As(err, &mm) {
				t.Errorf("restore of a swapped archive: %v, want a digest mismatch", err)
			}
			if n := tables("before"); n != 0 {
				t.Errorf("the target holds %d tables of a swapped archive", n)
			}
			err = restore("jobs", pipeline.RestoreOptions{Jobs: 2})
			noMarker(t, "restore --jobs 2 of a swapped archive")
			if !errors.As(err, &mm) || tables("jobs") != 0 {
				t.Errorf("restore --jobs 2 of a swapped archive: %v, %d tables", err, tables("jobs"))
			}
			proof, err := pipeline.Reprove(context.Background(), rec, pipeline.ReproveOptions{})
			noMarker(t, "verify of a swapped archive")
			if err != nil || proof.Status != catalog.ProofFailed || !strings.Contains(proof.Error, "digest") {
				t.Errorf("verify of a swapped archive: %v, %+v", err, proof)
			}
			if _, err := pipeline.LiveTOC(context.Background(), rec, nil, nil); !errors.As(err, &mm) {
				t.Errorf("toc --live of a swapped archive: %v, want a digest mismatch", err)
			}

			// Put back: restored whole.
			if backend == "folder" {
				os.WriteFile(rec.Archive.Path, genuine, 0o600)
			} else {
				s.Client(t).PutObject(context.Background(), "hostile", strings.TrimPrefix(rec.Archive.Path, "s3://hostile/"),
					bytes.NewReader(genuine), int64(len(genuine)), minio.PutObjectOptions{})
			}
			if err := restore("after", pipeline.RestoreOptions{}); err != nil {
				t.Fatalf("restore of the archive put back: %v", err)
			}
			if got := sourceCounts(t, src, backend+"_after"); got["shop.orders"] == 0 {
				t.Errorf("restored without orders: %v", got)
			}
		})
	}
}

// TestRebuildRefusesImpossibleManifests: a writer of the backups folder
// plants manifests beside copies of a real archive: one whose backup starts
// next year, one whose proof counted a table the archive's table of
// contents lacks. The rebuild records the genuine backup and refuses each
// forged one, naming why, as evidence (the old code recorded all three).
func TestRebuildRefusesImpossibleManifests(t *testing.T) {
	src := shopCluster(t)
	o := backupOptions(t, src.ConnString("shop"))
	o.Name = "shop"
	res, err := pipeline.Backup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Record
	m, err := pipeline.ReadManifest(rec.Archive.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(rec.Archive.Path)
	if err != nil {
		t.Fatal(err)
	}
	plant := func(base string, edit func(r *catalog.Record)) {
		t.Helper()
		forged, err := pipeline.ReadManifest(rec.Archive.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		forged.Record.ID = base
		edit(forged.Record)
		dir := filepath.Dir(rec.Archive.Path)
		if err := os.WriteFile(filepath.Join(dir, base+".dump"), archive, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := pipeline.WriteManifest(filepath.Join(dir, base+".manifest.json"), forged.Record, m.TOCEntries); err != nil {
			t.Fatal(err)
		}
	}
	plant("shop-20990101T000000Z", func(r *catalog.Record) {
		r.StartedAt, r.FinishedAt = time.Now().AddDate(1, 0, 0), time.Now().AddDate(1, 0, 0)
	})
	plant("shop-20200101T000000Z", func(r *catalog.Record) {
		r.StartedAt, r.FinishedAt = r.StartedAt.AddDate(-1, 0, 0), r.FinishedAt.AddDate(-1, 0, 0)
		p := &r.Proofs[len(r.Proofs)-1]
		p.Tables = append(p.Tables, catalog.TableCount{Schema: "shop", Name: "invented", Rows: 42})
	})
	rb, err := pipeline.Rebuild(context.Background(), pipeline.RebuildOptions{CatalogPath: filepath.Join(t.TempDir(), "rebuilt.db"), Repo: o.Dir})
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, row := range rb.Rows {
		switch {
		case row.Result == "imported" && row.Record.ID == rec.ID:
			why["genuine"] = "imported"
		case row.Err != nil && verify.ProofFailed(row.Err):
			why[filepath.Base(row.Manifest)] = row.Err.Error()
		default:
			t.Errorf("%s: %s %v", row.Manifest, row.Result, row.Err)
		}
	}
	if why["genuine"] != "imported" ||
		!strings.Contains(why["shop-20990101T000000Z.manifest.json"], "starts in the future") ||
		!strings.Contains(why["shop-20200101T000000Z.manifest.json"], "shop.invented, which the archive's table of contents lacks") {
		t.Errorf("rebuild: %v", why)
	}
}
