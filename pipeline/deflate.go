package pipeline

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"

	"github.com/pgattest/pgattest/verify"
)

// pg_dump compresses a custom-format archive in the one thread that also
// reads the database, and on a small machine that thread is what a backup
// waits for (zlib level 1 is ~60 MB/s). So pgattest runs pg_dump with
// --compress=0 and deflates the data itself, on every core: the archive it
// writes is an ordinary gzip-compressed custom-format archive that any
// pg_restore reads, and the proof restores exactly those bytes.
//
// A custom-format archive written to a pipe is: a header, the table of
// contents, then one block per TABLE DATA or BLOBS entry. A block's data
// is a list of chunks (an int length, that many bytes) ended by a zero
// length; with compression each list holds one zlib stream. The rewrite
// copies the header and TOC as they are except for the compression field,
// and turns each block's raw chunks into one zlib stream, cut in segments
// that are compressed in parallel and joined with sync flushes (as pigz
// does), each segment one chunk.

// Archive format versions the rewrite knows (pg_backup_archiver.h):
// 1.14 for pg_dump 12–15, 1.15 (compression algorithm byte) for 16,
// 1.16 (relkind in the TOC) for 17 and 18.
const (
	vers114 = 1<<16 | 14<<8
	vers115 = 1<<16 | 15<<8
	vers116 = 1<<16 | 16<<8
)

// deflatesArchive says whether pgattest compresses what this pg_dump
// writes: it knows the archive formats of pg_dump 14 to 18.
func deflatesArchive(pgDumpMajor, level int) bool {
	return level > 0 && pgDumpMajor >= 14 && pgDumpMajor <= 18
}

const (
	blkData  = 1 // a TABLE DATA entry's block
	blkBlobs = 3 // a BLOBS entry's block: large objects, each a chunk list
	offSet   = 2 // K_OFFSET_POS_SET
)

// segmentSize is how much raw data one parallel compression job takes.
const segmentSize = 512 << 10

// archiveFormatError is an archive pg_dump wrote that pgattest cannot
// read; io.ErrUnexpectedEOF inside means the stream just stopped (pg_dump
// died), which pg_dump's own exit explains better.
type archiveFormatError struct{ err error }

func (e *archiveFormatError) Error() string {
	return "pgattest could not read pg_dump's output to compress it: " + e.err.Error()
}
func (e *archiveFormatError) Unwrap() error { return e.err }

// deflateArchive reads an uncompressed custom-format archive from src and
// writes the same archive, compressed at level (flate levels 1–9), to dst.
// It returns the bytes read.
func deflateArchive(dst io.Writer, src io.Reader, level int) (int64, error) {
	cr := &countingReader{r: src}
	d := &deflater{
		in:    bufio.NewReaderSize(cr, 256<<10),
		seg:   (*segments.Get().(*[]byte))[:0],
		level: min(max(level, 1), 9),
		out:   make(chan *piece, 2*runtime.GOMAXPROCS(0)+2),
		cores: make(chan struct{}, runtime.GOMAXPROCS(0)),
		done:  make(chan error, 1),
	}
	go d.writeOut(dst)
	err := d.rewrite()
	d.emitLiteral()
	close(d.out)
	if werr := <-d.done; werr != nil { // a write failed: that is the story
		return cr.n, werr
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return cr.n, &archiveFormatError{err}
	}
	return cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// piece is output in order: literal bytes, or a segment being compressed.
type piece struct {
	lit   []byte
	ready chan struct{} // closed when comp is set
	comp  []byte        // head bytes of room, then the deflate output of raw
	head  int
	adler uint32 // of raw
	n     int    // len(raw)
	first bool   // the stream's first segment: write the zlib header
	last  bool   // its last: the deflate final block; write the checksum
}

type deflater struct {
	in      *bufio.Reader
	level   int
	intSize int
	offSize int
	blocks  int    // data blocks still due: the TOC's entries that had a dumper
	lit     []byte // header, TOC and block framing not yet queued
	seg     []byte // raw data of the segment being filled
	first   bool   // no segment of the current stream queued yet
	out     chan *piece
	cores   chan struct{} // one token per core: at most that many compressors
	failed  atomic.Bool   // a write failed: stop reading
	done    chan error
	scratch [9]byte
}

func (d *deflater) rewrite() error {
	if err := d.header(); err != nil {
		return err
	}
	for !d.failed.Load() {
		t, err := d.in.ReadByte()
		if err == io.EOF {
			if d.blocks > 0 { // pg_dump stopped between two blocks
				return fmt.Errorf("%d data blocks missing: %w", d.blocks, io.ErrUnexpectedEOF)
			}
			return nil // the end of the archive: after a block, never inside one
		}
		if err != nil {
			return err
		}
		d.lit = append(d.lit, t)
		d.blocks--
		if _, err := d.copyInt(); err != nil { // the entry's dump id
			return err
		}
		switch t {
		case blkData:
			if err := d.stream(); err != nil {
				return err
			}
		case blkBlobs:
			for {
				oid, err := d.copyInt()
				if err != nil {
					return err
				}
				if oid == 0 {
					break
				}
				if err := d.stream(); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unknown block type %d", t)
		}
	}
	return nil // writeOut has the error
}

// header copies the header and the TOC, marking the archive compressed.
func (d *deflater) header() error {
	head := make([]byte, 11)
	if _, err := io.ReadFull(d.in, head); err != nil {
		return err
	}
	if !bytes.HasPrefix(head, archiveMagic) {
		return errors.New("not a custom-format archive")
	}
	version := int(head[5])<<16 | int(head[6])<<8 | int(head[7])
	d.intSize, d.offSize = int(head[8]), int(head[9])
	if head[10] != 1 {
		return fmt.Errorf("archive format %d is not custom", head[10])
	}
	if d.intSize < 1 || d.intSize > 8 || d.offSize < 1 || d.offSize > 8 {
		return fmt.Errorf("unexpected integer sizes %d/%d", d.intSize, d.offSize)
	}
	if version < vers114 || version > vers116|0xff {
		return fmt.Errorf("archive format %d.%d is not one pgattest knows (1.14 to 1.16)", head[5], head[6])
	}
	d.lit = append(d.lit, head...)
	if version >= vers115 {
		alg, err := d.in.ReadByte()
		if err != nil {
			return err
		}
		if alg != 0 {
			return fmt.Errorf("pg_dump compressed the archive already (algorithm %d)", alg)
		}
		d.lit = append(d.lit, 1) // gzip
	} else {
		level, err := d.readInt()
		if err != nil {
			return err
		}
		if level != 0 {
			return fmt.Errorf("pg_dump compressed the archive already (level %d)", level)
		}
		d.writeInt(1)
	}
	for range 7 { // the creation time
		if _, err := d.copyInt(); err != nil {
			return err
		}
	}
	for range 3 { // database name, server version, pg_dump version
		if err := d.copyStr(); err != nil {
			return err
		}
	}
	entries, err := d.copyInt()
	if err != nil {
		return err
	}
	if entries < 0 || entries > 1<<30 {
		return fmt.Errorf("TOC of %d entries", entries)
	}
	for range entries {
		if err := d.tocEntry(version); err != nil {
			return err
		}
	}
	return nil
}

func (d *deflater) tocEntry(version int) error {
	if _, err := d.copyInt(); err != nil { // dump id
		return err
	}
	hadDumper, err := d.copyInt()
	if err != nil {
		return err
	}
	if hadDumper != 0 {
		d.blocks++
	}
	for range 4 { // table oid, oid, tag, desc
		if err := d.copyStr(); err != nil {
			return err
		}
	}
	if _, err := d.copyInt(); err != nil { // section
		return err
	}
	for range 6 { // defn, drop, copy statement, namespace, tablespace, table AM
		if err := d.copyStr(); err != nil {
			return err
		}
	}
	if version >= vers116 {
		if _, err := d.copyInt(); err != nil { // relkind
			return err
		}
	}
	for range 2 { // owner, "false" (with OIDs)
		if err := d.copyStr(); err != nil {
			return err
		}
	}
	for { // dependencies, ended by a NULL string
		n, err := d.readInt()
		if err != nil {
			return err
		}
		d.writeInt(n)
		if n < 0 {
			break
		}
		if err := d.copyN(n); err != nil {
			return err
		}
	}
	// The data offset: a flag byte and offSize bytes. A pipe cannot seek,
	// so pg_dump never sets it; if it did, compression would move the data.
	flag, err := d.in.ReadByte()
	if err != nil {
		return err
	}
	if flag == offSet {
		return errors.New("the TOC holds data offsets (pg_dump wrote to a file, not a pipe)")
	}
	d.lit = append(d.lit, flag)
	return d.copyN(d.offSize)
}

// stream turns one raw chunk list into one zlib stream.
func (d *deflater) stream() error {
	d.first = true
	for !d.failed.Load() { // else writeOut has the error
		n, err := d.readInt()
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("chunk of %d bytes", n)
		}
		if n == 0 {
			break
		}
		for n > 0 {
			take := min(n, segmentSize-len(d.seg))
			start := len(d.seg)
			d.seg = append(d.seg, make([]byte, take)...)
			if _, err := io.ReadFull(d.in, d.seg[start:]); err != nil {
				return err
			}
			n -= take
			if len(d.seg) == segmentSize {
				d.emitSegment(false)
			}
		}
	}
	d.emitSegment(true)
	d.writeInt(0)
	return nil
}

func (d *deflater) emitLiteral() {
	if len(d.lit) > 0 {
		d.out <- &piece{lit: d.lit}
		d.lit = nil
	}
}

// emitSegment queues the segment for compression on any core.
func (d *deflater) emitSegment(last bool) {
	d.emitLiteral()
	p := &piece{ready: make(chan struct{}), first: d.first, last: last, n: len(d.seg)}
	p.head = 1 + d.intSize // room for the chunk's length
	if p.first {
		p.head += 2 // and the zlib header
	}
	d.first = false
	raw := d.seg
	d.seg = (*segments.Get().(*[]byte))[:0]
	d.out <- p // blocks while enough pieces are in flight: memory stays bounded
	go func() {
		defer close(p.ready)
		d.cores <- struct{}{}
		defer func() { <-d.cores }()
		p.adler = adler32.Checksum(raw)
		buf := bytes.NewBuffer((*segments.Get().(*[]byte))[:p.head])
		w := getFlateWriter(buf, d.level)
		w.Write(raw)
		if last {
			w.Close()
		} else {
			w.Flush() // ends byte-aligned: the next segment's output follows on
		}
		putFlateWriter(w, d.level)
		segments.Put(&raw)
		p.comp = buf.Bytes()
	}()
}

// segments recycles the buffers of raw and compressed segments.
var segments = sync.Pool{New: func() any { b := make([]byte, 0, segmentSize); return &b }}

var flateWriters [10]sync.Pool

func getFlateWriter(w io.Writer, level int) *flate.Writer {
	if fw, ok := flateWriters[level].Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	fw, _ := flate.NewWriter(w, level) // the level is always valid
	return fw
}

func putFlateWriter(fw *flate.Writer, level int) { flateWriters[level].Put(fw) }

// writeOut writes the pieces in order, each compressed segment as one
// chunk, the zlib header before a stream's first and its Adler-32 after
// its last. After a write error it drains the rest.
func (d *deflater) writeOut(dst io.Writer) {
	var werr error
	var adler uint32
	write := func(b []byte) {
		if werr == nil {
			if _, werr = dst.Write(b); werr != nil {
				d.failed.Store(true)
			}
		}
	}
	for p := range d.out {
		if p.ready == nil {
			write(p.lit)
			continue
		}
		<-p.ready
		if p.first {
			adler = p.adler
		} else {
			adler = adler32Combine(adler, p.adler, p.n)
		}
		chunk := p.comp
		if p.last {
			chunk = binary.BigEndian.AppendUint32(chunk, adler)
		}
		// The room before the deflate output: the chunk's length, then,
		// first in a stream, the zlib header (deflate, 32K window).
		d.appendInt(chunk[:0], len(chunk)-(1+d.intSize))
		if p.first {
			chunk[1+d.intSize], chunk[2+d.intSize] = 0x78, 0x5e
		}
		write(chunk) // one write per chunk: the proof's copy is one piece too
		chunk = chunk[:0]
		segments.Put(&chunk)
	}
	d.done <- werr
}

// adler32Combine is zlib's adler32_combine: the checksum of A+B from
// those of A and B and B's length.
func adler32Combine(a, b uint32, lenB int) uint32 {
	const base = 65521
	rem := uint32(lenB % base)
	sum1 := a & 0xffff
	sum2 := (rem * sum1) % base
	sum1 += (b & 0xffff) + base - 1
	sum2 += (a >> 16) + (b >> 16) + base - rem
	if sum1 >= base {
		sum1 -= base
	}
	if sum1 >= base {
		sum1 -= base
	}
	if sum2 >= base<<1 {
		sum2 -= base << 1
	}
	if sum2 >= base {
		sum2 -= base
	}
	return sum1 | sum2<<16
}

// readInt reads one of pg_dump's integers (verify.ArchiveInt).
func (d *deflater) readInt() (int, error) {
	b := d.scratch[:1+d.intSize]
	if _, err := io.ReadFull(d.in, b); err != nil {
		return 0, err
	}
	return verify.ArchiveInt(b)
}

func (d *deflater) appendInt(b []byte, v int) []byte {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	b = append(b, sign)
	for range d.intSize {
		b = append(b, byte(v))
		v >>= 8
	}
	return b
}

func (d *deflater) writeInt(v int) { d.lit = d.appendInt(d.lit, v) }

func (d *deflater) copyInt() (int, error) {
	v, err := d.readInt()
	if err == nil {
		d.writeInt(v)
	}
	return v, err
}

// copyStr copies a string: its length (-1 for NULL), then its bytes.
func (d *deflater) copyStr() error {
	n, err := d.copyInt()
	if err != nil || n <= 0 {
		return err
	}
	return d.copyN(n)
}

// copyN copies n bytes, growing the buffer only as they arrive (a damaged
// length must not allocate gigabytes up front).
func (d *deflater) copyN(n int) error {
	for n > 0 {
		k := min(n, 64<<10)
		start := len(d.lit)
		d.lit = append(d.lit, make([]byte, k)...)
		if _, err := io.ReadFull(d.in, d.lit[start:]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
