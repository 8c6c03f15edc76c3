package pipeline

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

// TestStoredStreamHoldsBackTheEnd: a restore streamed from the bucket
// gives pg_restore nothing of the archive's last holdBack bytes before the
// whole object has hashed to the record, however long the end takes to
// come; a mismatch stops the stream (mismatch called, then the error) and
// the end is never given; a match gives every byte.
func TestStoredStreamHoldsBackTheEnd(t *testing.T) {
	archive := make([]byte, 3<<20+12345)
	rand.Read(archive)
	h := verify.NewHasher()
	h.Write(archive)
	good := h.Sum()
	for _, c := range []struct {
		name  string
		want  string
		match bool
	}{{"matching", good, true}, {"changed", "00" + good[2:], false}} {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			rec := &catalog.Record{Archive: catalog.Archive{Path: "s3://b/k", BLAKE3: c.want}}
			mismatched := make(chan struct{})
			s := &storedStream{rec: rec, body: pr, stored: verify.NewHasher(), chunk: make([]byte, 64<<10),
				mismatch: func() { close(mismatched) }}
			s.tee = io.TeeReader(pr, s.stored)
			s.src = s.tee
			var given atomic.Int64
			var out bytes.Buffer
			var readErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 100_000)
				for {
					n, err := s.Read(buf)
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
			pw.Write(archive) // every byte, but not the end
			time.Sleep(200 * time.Millisecond)
			if n := given.Load(); n >= int64(len(archive)) || n > int64(len(archive)-holdBack) {
				t.Errorf("before the end came, %d of %d bytes were given: the last %d must wait for the digest", n, len(archive), holdBack)
			}
			pw.Close()
			<-done
			if c.match {
				if readErr != nil || !bytes.Equal(out.Bytes(), archive) {
					t.Fatalf("a matching archive: %v, %d of %d bytes", readErr, out.Len(), len(archive))
				}
				return
			}
			var mm *verify.DigestMismatchError
			if !errors.As(readErr, &mm) {
				t.Fatalf("a changed archive: error %v, want a digest mismatch", readErr)
			}
			select {
			case <-mismatched:
			default:
				t.Error("mismatch was not called")
			}
			if out.Len() > len(archive)-holdBack {
				t.Errorf("gave %d of %d bytes: the last %d should never have been given", out.Len(), len(archive), holdBack)
			}
		})
	}
}
