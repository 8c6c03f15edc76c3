package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

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
//
// The next segment is read and checked while the one before is passed on
// (a goroutine, one segment ahead), so whoever reads it (pg_restore) does
// not wait for a segment's read and hash at each boundary: at most three
// segments are in memory, each passed on only once it is checked.
type segmentReader struct {
	body    io.Reader
	path    string
	size    int64 // a segment's
	total   int64 // the archive's
	digests []string
	ahead   chan checkedSegment // segments read and checked, in order
	free    chan []byte         // buffers passed on, for the next segments
	stop    chan struct{}       // closed: read no further (close)
	stopped sync.Once
	buf     []byte // the last segment read, checked
	off     int    // how much of buf was passed on
	err     error
}

// checkedSegment is a segment that hashed to the record, or why not (the
// last one sent: an error, io.EOF at the end).
type checkedSegment struct {
	buf []byte
	err error
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
	r := &segmentReader{body: body, path: a.Path, size: s.Size, total: a.Size, digests: s.BLAKE3,
		ahead: make(chan checkedSegment, 1), free: make(chan []byte, 2), stop: make(chan struct{})}
	go r.readAhead()
	return r, nil
}

// readAhead reads the segments in order, checks each, and sends it; it
// stops at the first error (sent), at the end (io.EOF sent), or when the
// reader is closed.
func (r *segmentReader) readAhead() {
	send := func(c checkedSegment) bool {
		select {
		case r.ahead <- c:
			return true
		case <-r.stop:
			return false
		}
	}
	for i := range r.digests {
		select {
		case <-r.stop:
			return
		default:
		}
		var buf []byte
		select {
		case buf = <-r.free:
		default:
			buf = make([]byte, 0, r.size)
		}
		at := int64(i) * r.size
		buf = buf[:min(r.size, r.total-at)]
		n, err := io.ReadFull(r.body, buf)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			send(checkedSegment{err: r.mismatch(i, fmt.Sprintf("%d bytes, not the recorded %d", at+int64(n), r.total))})
			return
		case err != nil:
			send(checkedSegment{err: fmt.Errorf("read %s: %w", r.path, err)})
			return
		}
		if got := verify.SegmentDigest(buf); got != r.digests[i] {
			send(checkedSegment{err: r.mismatch(i, "BLAKE3 "+got)})
			return
		}
		if !send(checkedSegment{buf: buf}) {
			return
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.body, one[:]); n > 0 {
		send(checkedSegment{err: r.mismatch(len(r.digests), fmt.Sprintf("more than the recorded %d bytes", r.total))})
		return
	}
	send(checkedSegment{err: io.EOF})
}

func (r *segmentReader) Read(p []byte) (int, error) {
	for r.off >= len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.buf != nil {
			select {
			case r.free <- r.buf[:0]:
			default:
			}
		}
		select {
		case <-r.stop: // closed: nothing more, also not what was read ahead
		default:
			select {
			case c := <-r.ahead:
				r.buf, r.off, r.err = c.buf, 0, c.err
				continue
			case <-r.stop:
			}
		}
		r.buf, r.off, r.err = nil, 0, fmt.Errorf("read %s: closed", r.path)
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// close stops the reading ahead (the body is the caller's to close).
func (r *segmentReader) close() { r.stopped.Do(func() { close(r.stop) }) }

func (r *segmentReader) mismatch(i int, got string) error {
	return &verify.DigestMismatchError{Path: r.path, Got: got, Segment: i + 1, Segments: len(r.digests), Offset: int64(i) * r.size}
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
