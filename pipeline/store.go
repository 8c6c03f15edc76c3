package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pgattest/pgattest/catalog"
	"github.com/pgattest/pgattest/pipeline/repo"
	"github.com/pgattest/pgattest/pipeline/seal"
	"github.com/pgattest/pgattest/verify"
)

// An archive kept in an S3 repository is written by the dump as one more
// branch of its tee (a multipart upload), and read back by restore, verify,
// toc --live and audit --rehash from the record's location. The
// credentials come from the AWS variables and files each time; the record
// holds none.

// OpenS3 opens the S3 repository at loc with the endpoint and credentials
// of the environment (endpoint, when the environment names none: the one a
// record names).
func OpenS3(loc repo.Location, endpoint string) (*repo.S3, error) {
	cfg, err := repo.S3ConfigFor(endpoint)
	if err != nil {
		return nil, &UsageError{Err: err, hint: "set AWS_ENDPOINT_URL_S3 to the store's URL, such as https://ACCOUNT.r2.cloudflarestorage.com"}
	}
	return repo.NewS3(loc, cfg)
}

// archiveFile gives a private copy of a record's plain archive, for what
// needs a file to seek (pg_restore --jobs, -L lists) or a folder (the
// directory format): made in dir (0700, pgattest's own) while it is
// checked, downloaded or decrypted (with ids), and returned only once it
// is the record's; never the stored file itself, which its folder's
// writers could swap between the check and the use. A copy that does not
// match is removed, and the mismatch returned.
func archiveFile(ctx context.Context, rec *catalog.Record, dir string, ids *seal.Identities) (string, error) {
	a := rec.Archive
	if a.Format == verify.FormatDirectory { // (encryption takes the custom format)
		loc, err := locate(rec)
		if err != nil {
			return "", err
		}
		folder := filepath.Join(dir, path.Base(strings.TrimSuffix(loc.key, "/")))
		if _, _, err := hashFolder(ctx, loc, rec, folder, false); err != nil {
			os.RemoveAll(folder)
			return "", err
		}
		return folder, nil
	}
	st, err := openStream(ctx, rec, ids)
	if err != nil {
		return "", err
	}
	defer st.Close()
	file := filepath.Join(dir, strings.TrimSuffix(path.Base(a.Path), seal.Ext))
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.CopyBuffer(f, st, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return "", err
	}
	return file, nil
}

// HashStored re-hashes a record's archive where it is kept (the version
// the record names) and compares it with the record: a
// *verify.DigestMismatchError, or a *verify.MissingError when it is gone.
func HashStored(ctx context.Context, rec *catalog.Record) (verify.Digest, error) {
	d, _, err := hashStored(ctx, rec, false)
	return d, err
}

// storedDigests reads a record's archive once where it is kept and
// returns what its bytes are: BLAKE3, SHA-256, the segments' digests and
// the size; for a folder, its digest over its files, and each file's with
// its SHA-256 (no comparison: the caller compares with what it trusts).
func storedDigests(ctx context.Context, rec *catalog.Record) (storedBytes, error) {
	loc, err := locate(rec)
	if err != nil {
		return storedBytes{}, err
	}
	if rec.Archive.Format == verify.FormatDirectory {
		d, files, err := readFolder(ctx, loc, "", true)
		return storedBytes{blake3: d.BLAKE3, size: d.Size, files: files}, err
	}
	body, err := loc.open(ctx)
	if err != nil {
		return storedBytes{}, err
	}
	defer body.Close()
	h := verify.NewSegmentedHasher().WithSHA256()
	if _, err := io.CopyBuffer(h, body, make([]byte, 1<<20)); err != nil {
		return storedBytes{}, fmt.Errorf("read %s: %w", rec.Archive.Path, err)
	}
	return storedBytes{blake3: h.Sum(), sha256: h.SHA256(), segments: h.Segments(), size: h.Size()}, nil
}

// hashStored is HashStored, with the SHA-256 of the same bytes in the same
// pass when asked (a custom-format archive; "" otherwise).
func hashStored(ctx context.Context, rec *catalog.Record, withSHA bool) (verify.Digest, string, error) {
	a := rec.Archive
	loc, err := locate(rec)
	if err != nil {
		return verify.Digest{}, "", err
	}
	if a.Format == verify.FormatDirectory {
		d, _, err := hashFolder(ctx, loc, rec, "", false)
		return d, "", err
	}
	body, err := loc.open(ctx)
	if err != nil {
		return verify.Digest{}, "", err
	}
	defer body.Close()
	h := verify.NewHasher()
	if withSHA {
		h.WithSHA256()
	}
	if _, err := io.CopyBuffer(h, body, make([]byte, 1<<20)); err != nil {
		return verify.Digest{}, "", fmt.Errorf("read %s: %w", a.Path, err)
	}
	d := verify.Digest{BLAKE3: h.Sum(), Size: h.Size(), Files: 1}
	if d.BLAKE3 != a.BLAKE3 {
		return d, "", &verify.DigestMismatchError{Path: a.Path, Want: a.BLAKE3, Got: d.BLAKE3}
	}
	return d, h.SHA256(), nil
}

// folderDigests reads a directory-format archive's files where they are
// kept, once, and gives each one's digests with its SHA-256, once the
// folder's digest matched the record's.
func folderDigests(ctx context.Context, rec *catalog.Record) ([]verify.FileDigest, error) {
	loc, err := locate(rec)
	if err != nil {
		return nil, err
	}
	_, files, err := hashFolder(ctx, loc, rec, "", true)
	return files, err
}

// hashFolder hashes the files of a directory-format archive as DESIGN §3
// says (verify.DirDigest) and compares the digest with the record's; with a
// folder given, it writes them there too, 0600 in 0700, as they are
// hashed: a copy to use once it matched. It gives each file's digests,
// with its SHA-256 when withSHA (in the same pass).
func hashFolder(ctx context.Context, loc location, rec *catalog.Record, folder string, withSHA bool) (verify.Digest, []verify.FileDigest, error) {
	d, files, err := readFolder(ctx, loc, folder, withSHA)
	if err == nil && d.BLAKE3 != rec.Archive.BLAKE3 {
		err = &verify.DigestMismatchError{Path: rec.Archive.Path, Want: rec.Archive.BLAKE3, Got: d.BLAKE3}
	}
	return d, files, err
}

// readFolder reads a directory-format archive's files where they are kept,
// once each, into the folder's digest and each file's (no comparison);
// with folder given, it writes them there as they are read.
func readFolder(ctx context.Context, loc location, folder string, withSHA bool) (verify.Digest, []verify.FileDigest, error) {
	objs, err := loc.files(ctx)
	if err != nil {
		return verify.Digest{}, nil, err
	}
	var files []verify.FileDigest
	buf := make([]byte, 1<<20)
	for _, o := range objs {
		rel := o.Key
		body, err := loc.repo.Open(ctx, loc.key+rel, "")
		if err != nil {
			return verify.Digest{}, nil, &verify.MissingError{Path: loc.display, Err: err}
		}
		h := verify.NewHasher()
		if withSHA {
			h.WithSHA256()
		}
		w := io.Writer(h)
		var f *os.File
		if folder != "" {
			p := filepath.Join(folder, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				body.Close()
				return verify.Digest{}, nil, err
			}
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
				body.Close()
				return verify.Digest{}, nil, err
			}
			w = io.MultiWriter(f, h)
		}
		_, err = io.CopyBuffer(w, body, buf)
		body.Close()
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return verify.Digest{}, nil, fmt.Errorf("read %s: %w", rel, err)
		}
		files = append(files, verify.FileDigest{Path: rel, Digest: verify.Digest{BLAKE3: h.Sum(), Size: h.Size()}, SHA256: h.SHA256()})
	}
	return verify.DirDigest(files), files, nil
}

// storedStream is a custom-format archive on its way to pg_restore (or
// age, or a private copy): the stored bytes checked before use (see
// verified.go) and hashed whole as they pass, decrypted when encrypted (the
// plaintext hashed too), its head (up to the end of the table of contents)
// kept in memory for pg_restore -l. A mismatch calls mismatch (which stops
// pg_restore) before its Read returns the *verify.DigestMismatchError.
type storedStream struct {
	rec      *catalog.Record
	body     io.ReadCloser  // the stored bytes: a segment reader's source, or the checked private copy
	seg      *segmentReader // nil: body is the checked copy
	tee      io.Reader      // the checked stored bytes, through stored
	stored   *verify.Hasher // of the stored bytes
	src      io.Reader      // the archive: tee, or tee decrypted
	plain    *verify.Hasher // of the decrypted bytes (nil: not encrypted)
	head     []byte
	buf      []byte
	chunk    []byte
	verified bool
	err      error
	mismatch func()
}

// openStream opens a record's archive where it is kept (locate: its
// bucket, at the recorded version, or the file here), once, checking what
// it reads (segments, or a private copy checked whole), decrypting it with
// ids when it is encrypted, and reads its head.
func openStream(ctx context.Context, rec *catalog.Record, ids *seal.Identities) (*storedStream, error) {
	a := rec.Archive
	if a.Encryption != nil && ids == nil {
		return nil, &IdentityNeededError{ID: rec.ID, Recipients: a.Encryption.Recipients}
	}
	loc, err := locate(rec)
	if err != nil {
		return nil, err
	}
	body, err := loc.open(ctx)
	if err != nil {
		return nil, err
	}
	st := &storedStream{rec: rec, body: body, stored: verify.NewHasher(), chunk: make([]byte, 1<<20), mismatch: func() {}}
	var checked io.Reader
	if a.Segments != nil {
		if st.seg, err = newSegmentReader(body, a); err != nil {
			body.Close()
			return nil, err
		}
		checked = st.seg
	} else {
		f, err := spoolChecked(body, a)
		body.Close()
		if err != nil {
			return nil, err
		}
		st.body, checked = f, f
	}
	st.tee = io.TeeReader(checked, st.stored)
	st.src = st.tee
	if a.Encryption != nil {
		plain, err := ids.Decrypt(st.tee)
		if err != nil {
			st.Close()
			if st.seg != nil && st.seg.err != nil && st.seg.err != io.EOF {
				return nil, st.seg.err
			}
			return nil, err
		}
		st.src, st.plain = plain, verify.NewHasher()
	}
	for {
		n, err := st.src.Read(st.chunk)
		st.took(st.chunk[:n])
		if toc, terr := verify.HeadTOC(st.buf); toc != nil || terr != nil {
			break
		}
		if err == io.EOF {
			break // a short archive: pg_restore -l says what is wrong with it
		}
		if err != nil {
			st.failed(err)
			st.Close()
			return nil, st.err
		}
	}
	st.head = bytes.Clone(st.buf)
	return st, nil
}

func (s *storedStream) took(b []byte) {
	if s.plain != nil {
		s.plain.Write(b)
	}
	s.buf = append(s.buf, b...)
}

// failed sets the stream's error for a failed read of src. A decryption
// that fails (a changed ciphertext) has the rest of the stored bytes
// hashed: a mismatch with the record is then the error.
func (s *storedStream) failed(err error) {
	var mismatch *verify.DigestMismatchError
	if errors.As(err, &mismatch) || (s.seg != nil && errors.As(s.seg.err, &mismatch)) {
		s.mismatch()
		s.err = mismatch
		return
	}
	if s.plain != nil {
		if _, rerr := io.Copy(io.Discard, s.tee); rerr == nil && s.stored.Sum() != s.rec.Archive.BLAKE3 {
			s.mismatch()
			s.err = &verify.DigestMismatchError{Path: s.rec.Archive.Path, Want: s.rec.Archive.BLAKE3, Got: s.stored.Sum()}
			return
		}
		s.err = fmt.Errorf("decrypt %s: %w", s.rec.Archive.Path, err)
		return
	}
	s.err = fmt.Errorf("read %s: %w", s.rec.Archive.Path, err)
}

// ended checks the digests once the archive has been read to its end.
func (s *storedStream) ended() {
	if _, err := io.Copy(io.Discard, s.tee); err != nil { // age stops at its last chunk
		s.failed(err)
		return
	}
	a := s.rec.Archive
	got, want := s.stored.Sum(), a.BLAKE3
	if got == want && s.plain != nil {
		got, want = s.plain.Sum(), a.Encryption.PlaintextBLAKE3
	}
	if got != want {
		s.mismatch()
		s.err = &verify.DigestMismatchError{Path: a.Path, Want: want, Got: got}
		return
	}
	s.verified = true
}

func (s *storedStream) Read(p []byte) (int, error) {
	for {
		switch {
		case s.err != nil:
			return 0, s.err
		case s.verified && len(s.buf) == 0:
			return 0, io.EOF
		case s.verified:
			n := copy(p, s.buf)
			s.buf = s.buf[n:]
			return n, nil
		case len(s.buf) > 0: // checked bytes (verified.go)
			n := copy(p, s.buf)
			s.buf = s.buf[n:]
			return n, nil
		}
		n, err := s.src.Read(s.chunk)
		s.took(s.chunk[:n])
		switch {
		case err == io.EOF:
			s.ended()
		case err != nil:
			s.failed(err)
		}
	}
}

// rest reads what pg_restore left unread (it stopped early), hashing it:
// the mismatch, when the archive is not the recorded one, explains the
// failure better than pg_restore's complaint about the bytes it choked on.
func (s *storedStream) rest() error {
	s.mismatch = func() {}
	for {
		s.buf = s.buf[:0]
		if _, err := s.Read(s.chunk); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func (s *storedStream) Close() error {
	if s.seg != nil {
		s.seg.close()
	}
	return s.body.Close()
}
