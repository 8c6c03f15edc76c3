package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/verify"
)

// Storage is hostile: whoever can write to the folder or the bucket may
// swap an archive for one whose code runs when pg_restore reads it. So no
// byte read back reaches pg_restore (or age, or a copy pgattest hands on)
// before it is known to be a recorded byte, and the bytes checked are the
// bytes used: the archive is opened once and read once.
//
//   - A record with segment digests (catalog.Segments, taken at backup in
//     the same pass as BLAKE3) is read a segment at a time: each is held in
//     memory (verify.SegmentSize) and passed on only once it hashes to the
//     record. Memory stays flat and nothing goes to disk.
//   - A record made before segments is copied whole into a private file
//     (unlinked at once: no name another user could replace), hashed on the
//     way, and read from that file once the whole matched.

// segmentReader passes on a record's stored bytes a checked segment at a
// time (see above). Its errors are sticky: a *verify.DigestMismatchError
// for a segment that differs, an archive that is shorter or longer than
// recorded.
type segmentReader struct {
	body    io.Reader
	path    string
	size    int64 // a segment's
	total   int64 // the archive's
	digests []string
	i       int    // segments read
	buf     []byte // the last segment read, checked
	off     int    // how much of buf was passed on
	err     error
}

func newSegmentReader(body io.Reader, a catalog.Archive) (*segmentReader, error) {
	s := a.Segments
	want := 1
	if a.Size > 0 && s.Size > 0 {
		want = int((a.Size + s.Size - 1) / s.Size)
	}
	if s.Size <= 0 || s.Size > 256<<20 || len(s.BLAKE3) != want {
		return nil, fmt.Errorf("the record of %s holds %d segment digests of %d bytes for %d bytes: not a record pgattest wrote", a.Path, len(s.BLAKE3), s.Size, a.Size)
	}
	return &segmentReader{body: body, path: a.Path, size: s.Size, total: a.Size, digests: s.BLAKE3, buf: make([]byte, 0, s.Size)}, nil
}

func (r *segmentReader) Read(p []byte) (int, error) {
	if r.off < len(r.buf) {
		n := copy(p, r.buf[r.off:])
		r.off += n
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.i == len(r.digests) {
		var one [1]byte
		if n, _ := io.ReadFull(r.body, one[:]); n > 0 {
			r.err = r.mismatch(fmt.Sprintf("more than the recorded %d bytes", r.total))
			return 0, r.err
		}
		r.err = io.EOF
		return 0, io.EOF
	}
	at := int64(r.i) * r.size
	r.buf, r.off = r.buf[:min(r.size, r.total-at)], 0
	n, err := io.ReadFull(r.body, r.buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.buf = r.buf[:0]
		r.err = r.mismatch(fmt.Sprintf("%d bytes, not the recorded %d", at+int64(n), r.total))
		return 0, r.err
	case err != nil:
		r.buf = r.buf[:0]
		r.err = fmt.Errorf("read %s: %w", r.path, err)
		return 0, r.err
	}
	if got := verify.SegmentDigest(r.buf); got != r.digests[r.i] {
		r.buf = r.buf[:0]
		r.err = r.mismatch("BLAKE3 " + got)
		return 0, r.err
	}
	r.i++
	return r.Read(p)
}

func (r *segmentReader) mismatch(got string) error {
	return &verify.DigestMismatchError{Path: r.path, Got: got, Segment: r.i + 1, Segments: len(r.digests), Offset: int64(r.i) * r.size}
}

// spoolChecked copies body whole into a private file in the temp folder,
// unlinked as soon as it is made, hashing it: the file, rewound, once the
// bytes are the record's; a *verify.DigestMismatchError (the file closed)
// when they are not.
func spoolChecked(body io.Reader, a catalog.Archive) (*os.File, error) {
	f, err := os.CreateTemp("", ".pgattest-checked-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	h := verify.NewHasher()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), body, make([]byte, 1<<20)); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", a.Path, err)
	}
	if got := h.Sum(); got != a.BLAKE3 || h.Size() != a.Size {
		f.Close()
		return nil, &verify.DigestMismatchError{Path: a.Path, Want: a.BLAKE3, Got: got}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
