package pipeline

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

// TestSegmentsCheckedBeforeUse: a stream read back from storage gives on
// no byte of a segment before the whole segment has hashed to the record,
// however long the rest takes to come; a segment changed, a stream cut
// short or one longer than recorded stops it with a mismatch, after only
// the recorded bytes before that segment were given; a matching stream
// gives every byte.
func TestSegmentsCheckedBeforeUse(t *testing.T) {
	archive := make([]byte, 3*verify.SegmentSize+12345)
	rand.Read(archive)
	h := verify.NewSegmentedHasher()
	h.Write(archive[:100])
	h.Write(archive[100:])
	a := catalog.Archive{Path: "s3://b/k", Size: int64(len(archive)), BLAKE3: h.Sum(),
		Segments: &catalog.Segments{Size: verify.SegmentSize, BLAKE3: h.Segments()}}
	if len(a.Segments.BLAKE3) != 4 {
		t.Fatalf("%d segment digests for 3 segments and a bit, want 4", len(a.Segments.BLAKE3))
	}
	changed := bytes.Clone(archive)
	changed[2*verify.SegmentSize+7] ^= 1
	for _, c := range []struct {
		name   string
		stored []byte
		given  int // bytes given before the mismatch; -1: all, no error
	}{
		{"matching", archive, -1},
		{"changed in the third segment", changed, 2 * verify.SegmentSize},
		{"cut short", archive[:len(archive)-1], 3 * verify.SegmentSize},
		{"longer", append(bytes.Clone(archive), 'x'), len(archive)},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			r, err := newSegmentReader(pr, a)
			if err != nil {
				t.Fatal(err)
			}
			var given atomic.Int64
			var out bytes.Buffer
			var readErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 100_000)
				for {
					n, err := r.Read(buf)
					out.Write(buf[:n])
					given.Add(int64(n))
					if err != nil {
						if err != io.EOF {
							readErr = err
						}
						return
					}
				}
			}()
			pw.Write(c.stored[:verify.SegmentSize+5]) // one segment and a bit of the next
			time.Sleep(100 * time.Millisecond)
			if n := given.Load(); n > verify.SegmentSize {
				t.Errorf("gave %d bytes with %d written: a segment not yet whole was given", n, verify.SegmentSize+5)
			}
			go func() { // the reader stops at a mismatch: the rest is never read
				pw.Write(c.stored[verify.SegmentSize+5:])
				pw.Close()
			}()
			<-done
			pr.Close()
			if c.given < 0 {
				if readErr != nil || !bytes.Equal(out.Bytes(), archive) {
					t.Fatalf("a matching archive: %v, %d of %d bytes", readErr, out.Len(), len(archive))
				}
				return
			}
			var mm *verify.DigestMismatchError
			if !errors.As(readErr, &mm) {
				t.Fatalf("error %v, want a digest mismatch", readErr)
			}
			if out.Len() != c.given || !bytes.Equal(out.Bytes(), archive[:out.Len()]) {
				t.Errorf("gave %d bytes before the mismatch, want the %d recorded bytes before the bad segment", out.Len(), c.given)
			}
		})
	}
	// A reader left early (pg_restore failed) and closed stops reading
	// ahead (its goroutine ends), and a Read after that says it is closed
	// rather than wait for a segment that will not come.
	before := settledGoroutines()
	pr, pw := io.Pipe()
	r, err := newSegmentReader(pr, a)
	if err != nil {
		t.Fatal(err)
	}
	go pw.Write(archive)
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.close()
	pr.Close()
	if _, err := r.Read(make([]byte, verify.SegmentSize)); err == nil {
		// (what the first segment still held may come first)
		if _, err := r.Read(make([]byte, verify.SegmentSize)); err == nil {
			t.Error("a closed reader gave more than the segment it held")
		}
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the reader was closed, %d before: it still reads ahead", n, before)
	}
	// A record whose digests do not cover its size is refused.
	bad := a
	bad.Segments = &catalog.Segments{Size: verify.SegmentSize, BLAKE3: a.Segments.BLAKE3[:3]}
	if _, err := newSegmentReader(bytes.NewReader(archive), bad); err == nil {
		t.Error("a record with too few segment digests was accepted")
	}
}

// settledGoroutines is the number of goroutines once those ending (the
// writers and readers of the cases before) have ended.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}
