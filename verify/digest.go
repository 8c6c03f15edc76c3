package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/zeebo/blake3"
)

// Archive formats.
const (
	FormatCustom    = "custom"
	FormatDirectory = "directory"
)

// Hasher is a BLAKE3 hash that counts what passes through it. Writing the
// archive through one (io.MultiWriter with the file) gives its digest without
// a second read.
type Hasher struct {
	h *blake3.Hasher
	n int64
	// With segments: the hash of the current segment and the digests of
	// those before it.
	seg     *blake3.Hasher
	segSize int64
	segs    []string
	sha     hash.Hash // with WithSHA256
}

// SegmentSize is how many stored bytes one segment digest covers: what a
// reader holds in memory to check before it passes any of them on.
const SegmentSize = 4 << 20

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{h: blake3.New()} }

// NewSegmentedHasher returns an empty Hasher that also takes the digest of
// every SegmentSize bytes (Segments).
func NewSegmentedHasher() *Hasher {
	return &Hasher{h: blake3.New(), seg: blake3.New(), segSize: SegmentSize}
}

// WithSHA256 makes h also take the SHA-256 of what passes (SHA256), in
// the same pass: what a signed receipt's subject names.
func (h *Hasher) WithSHA256() *Hasher {
	h.sha = sha256.New()
	return h
}

// SHA256 is the SHA-256 of what was hashed, 64 hex digits ("" without
// WithSHA256).
func (h *Hasher) SHA256() string {
	if h.sha == nil {
		return ""
	}
	return hex.EncodeToString(h.sha.Sum(nil))
}

// Write adds p to the hash.
func (h *Hasher) Write(p []byte) (int, error) {
	h.h.Write(p)
	if h.sha != nil {
		h.sha.Write(p)
	}
	for rest := p; h.seg != nil && len(rest) > 0; {
		room := h.segSize - h.n%h.segSize
		take := rest[:min(int64(len(rest)), room)]
		h.seg.Write(take)
		h.n += int64(len(take))
		rest = rest[len(take):]
		if h.n%h.segSize == 0 {
			h.segs = append(h.segs, hex.EncodeToString(h.seg.Sum(nil)))
			h.seg.Reset()
		}
	}
	if h.seg == nil {
		h.n += int64(len(p))
	}
	return len(p), nil
}

// Segments returns the digests of the segments hashed so far, the last
// (shorter) one included; nil for a Hasher without segments.
func (h *Hasher) Segments() []string {
	if h.seg == nil {
		return nil
	}
	out := slices.Clone(h.segs)
	if h.n%h.segSize != 0 || h.n == 0 {
		out = append(out, hex.EncodeToString(h.seg.Sum(nil)))
	}
	return out
}

// SegmentDigest is the digest of one segment, as Segments gives it.
func SegmentDigest(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Size is the number of bytes hashed so far.
func (h *Hasher) Size() int64 { return h.n }

// Sum returns the digest as 64 hex digits.
func (h *Hasher) Sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// Digest is an archive's BLAKE3 digest and size.
type Digest struct {
	BLAKE3 string // 64 hex digits
	Size   int64  // bytes (for a folder: the sum of its files)
	Files  int    // for a folder: how many files
}

// HashArchive computes the digest of a custom-format file or a
// directory-format folder, as DESIGN §3 defines them.
func HashArchive(path, format string) (Digest, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Digest{}, &MissingError{Path: path, Err: err}
	}
	switch format {
	case FormatDirectory:
		if !fi.IsDir() {
			return Digest{}, &NotArchiveError{Path: path, Want: "a directory-format folder", Found: describe(fi)}
		}
		d, _, err := HashFolder(path, false)
		return d, err
	default:
		if !fi.Mode().IsRegular() {
			return Digest{}, &NotArchiveError{Path: path, Want: "a custom-format file", Found: describe(fi)}
		}
		d, _, err := hashFile(path, false)
		return d, err
	}
}

// Describe says what a file is, for errors: "a folder", "a symbolic link", …
func Describe(fi fs.FileInfo) string { return describe(fi) }

func describe(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "a folder"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symbolic link"
	case fi.Mode().IsRegular():
		return "a file"
	}
	return "a special file"
}

func hashFile(path string, withSHA bool) (Digest, string, error) {
	// No link followed, and a FIFO swapped in since the listing neither
	// blocks the open nor is read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Digest{}, "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return Digest{}, "", err
	} else if !fi.Mode().IsRegular() {
		return Digest{}, "", &NotArchiveError{Path: path, Want: "a regular file", Found: describe(fi)}
	}
	h := NewHasher()
	if withSHA {
		h.WithSHA256()
	}
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return Digest{}, "", fmt.Errorf("read %s: %w", path, err)
	}
	return Digest{BLAKE3: h.Sum(), Size: h.Size(), Files: 1}, h.SHA256(), nil
}

// HashFolder hashes every file of a directory-format archive in parallel,
// then hashes the sorted lines "<relative path> <size> <blake3 of file>\n",
// so a changed, added or missing file changes the digest. It also returns
// each file's digests, sorted by path, with its SHA-256 taken in the same
// pass when withSHA (what a signed receipt's subjects name).
func HashFolder(root string, withSHA bool) (Digest, []FileDigest, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			found := "not a regular file"
			if fi, err := d.Info(); err == nil {
				found = describe(fi)
			}
			return &NotArchiveError{Path: root, Want: "a folder of regular files", Found: fmt.Sprintf("%q in it, %s", filepath.ToSlash(rel), found)}
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	var na *NotArchiveError
	if errors.As(err, &na) {
		return Digest{}, nil, na
	}
	if err != nil {
		return Digest{}, nil, fmt.Errorf("list archive folder %s: %w", root, err)
	}
	sort.Strings(files)
	sums := make([]Digest, len(files))
	shas := make([]string, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sums[i], shas[i], errs[i] = hashFile(filepath.Join(root, files[i]), withSHA)
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Digest{}, nil, err
	}
	out := make([]FileDigest, len(files))
	for i, f := range files {
		out[i] = FileDigest{Path: f, Digest: sums[i], SHA256: shas[i]}
	}
	return DirDigest(out), out, nil
}

// FileDigest is one file of a directory-format archive: its path relative
// to the folder (slash-separated), its digest, and its SHA-256 when taken
// ("" otherwise; not part of the folder's digest).
type FileDigest struct {
	Path string
	Digest
	SHA256 string
}

// DirDigest is a directory-format archive's digest from its files', in
// any order: BLAKE3 over the sorted lines "<path> <size> <blake3>\n".
func DirDigest(files []FileDigest) Digest {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b FileDigest) int { return strings.Compare(a.Path, b.Path) })
	h := NewHasher()
	var total int64
	for _, f := range files {
		fmt.Fprintf(h, "%s %d %s\n", f.Path, f.Size, f.BLAKE3)
		total += f.Size
	}
	return Digest{BLAKE3: h.Sum(), Size: total, Files: len(files)}
}

// CheckDigest re-hashes the archive and compares it with want. A mismatch is
// a *DigestMismatchError; a missing archive a *MissingError.
func CheckDigest(path, format, want string) (Digest, error) {
	d, err := HashArchive(path, format)
	if err != nil {
		return d, err
	}
	if d.BLAKE3 != want {
		return d, &DigestMismatchError{Path: path, Want: want, Got: d.BLAKE3}
	}
	return d, nil
}
