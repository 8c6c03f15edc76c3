package repo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a repository in a bucket of an S3-compatible store (AWS S3,
// Cloudflare R2, Backblaze B2, MinIO, Ceph, versitygw …). An object is
// written as a multipart upload whose parts grow with it (8 MiB, doubled
// every 1,000 parts: 10,000 parts hold 8 TB), each part buffered in a
// file of the staging folder while the one before it uploads, so pgattest
// holds at most two parts on disk and a few small buffers in memory, and
// each sent with its SHA-256 (the store checks it in transit). Nothing is
// visible before CompleteMultipartUpload (Commit); Abort and AbortStale
// abort the upload.
type S3 struct {
	loc     Location
	client  *minio.Client
	core    minio.Core
	staging string // part buffers (the locks that say an upload is live are among the marks)
	cfg     S3Config
}

var _ Repo = (*S3)(nil)

// S3Config is how to reach the store. S3ConfigFromEnv reads the AWS
// variables and files users already have.
type S3Config struct {
	Endpoint  string // host[:port]; "" for AWS (s3.amazonaws.com)
	Secure    bool   // https
	Region    string
	PathStyle bool // bucket in the path, not the host name (most stores besides AWS and R2 need it)
	Creds     *credentials.Credentials
	// Transport, when set, carries the requests (tests put a faulty
	// proxy in between); nil is minio-go's default.
	Transport http.RoundTripper
	// PartSize is the first part's size (default 8 MiB; S3's least is 5).
	PartSize int64
	// Staging is the folder for part buffers (default: the temp folder).
	Staging string
	// Timeout is how long a request may move no data, or wait for an
	// answer, before it is given up (default 1 minute;
	// PGATTEST_S3_TIMEOUT). Retries happen within it.
	Timeout time.Duration
}

// S3ConfigFromEnv reads the endpoint and credentials as the AWS tools do:
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (R2, B2, MinIO, Ceph…; path-style
// addressing unless the endpoint is AWS's or R2's), AWS_REGION (or
// AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, else AWS_PROFILE in ~/.aws/credentials and
// ~/.aws/config.
func S3ConfigFromEnv() (S3Config, error) { return S3ConfigFor("") }

// S3ConfigFor is S3ConfigFromEnv with endpoint (an http(s) URL: the one a
// record names) used when the environment names none.
func S3ConfigFor(endpoint string) (S3Config, error) {
	c := S3Config{Endpoint: "s3.amazonaws.com", Secure: true, Region: firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")}
	what := "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL"
	e := firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	if e == "" {
		e, what = endpoint, "the record's endpoint"
	}
	if e != "" {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return c, fmt.Errorf("endpoint %q is not an http(s) URL (%s)", redactURL(e), what)
		}
		c.Endpoint, c.Secure = u.Host, u.Scheme == "https"
		c.PathStyle = !strings.HasSuffix(u.Hostname(), ".amazonaws.com") && !strings.HasSuffix(u.Hostname(), ".r2.cloudflarestorage.com")
	}
	if p := os.Getenv("PGATTEST_S3_PART_SIZE"); p != "" {
		mib, err := strconv.Atoi(strings.TrimSuffix(p, "MiB"))
		if err != nil || mib < 5 || mib > 5<<10 {
			return c, fmt.Errorf("PGATTEST_S3_PART_SIZE=%q is not a part size of 5 to 5120 MiB", p)
		}
		c.PartSize = int64(mib) << 20
	}
	c.Staging = os.Getenv("PGATTEST_STAGING_DIR")
	if t := os.Getenv("PGATTEST_S3_TIMEOUT"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("PGATTEST_S3_TIMEOUT=%q is not a duration such as 90s or 5m", t)
		}
		c.Timeout = d
	}
	c.Creds = credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Profile: os.Getenv("AWS_PROFILE")},
	})
	return c, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// NewS3 opens the S3 repository at loc. It checks nothing with the store:
// Check does.
func NewS3(loc Location, c S3Config) (*S3, error) {
	if c.PartSize == 0 {
		c.PartSize = 8 << 20
	}
	if c.Staging == "" {
		c.Staging = os.TempDir()
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	if c.Transport == nil {
		tr, err := minio.DefaultTransport(c.Secure)
		if err != nil {
			return nil, err
		}
		tr.ResponseHeaderTimeout = c.Timeout
		c.Transport = tr
	}
	client, err := minio.New(c.Endpoint, &minio.Options{Creds: c.Creds, Secure: c.Secure, Region: c.Region,
		BucketLookup: lookup, Transport: c.Transport})
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %s: %w", c.Endpoint, err)
	}
	// Upload ids are unique, so one folder per user serves every store
	// (the lock files are found again whatever endpoint names the store).
	staging := filepath.Join(c.Staging, fmt.Sprintf("pgattest-s3-%d", os.Getuid()))
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return nil, err
	}
	return &S3{loc: loc, client: client, core: minio.Core{Client: client}, staging: staging, cfg: c}, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// URL is s3://BUCKET/PREFIX.
func (s *S3) URL() string { return s.loc.URL() }

// Endpoint is the store's host, for the record.
func (s *S3) Endpoint() string { return s.cfg.Endpoint }

// EndpointURL is the endpoint with its scheme: https://host[:port].
func (s *S3) EndpointURL() string {
	if s.cfg.Secure {
		return "https://" + s.cfg.Endpoint
	}
	return "http://" + s.cfg.Endpoint
}

// Bucket is the repository's bucket.
func (s *S3) Bucket() string { return s.loc.Bucket }

func (s *S3) object(key string) (string, error) {
	if err := cleanKey(key); err != nil {
		return "", err
	}
	if s.loc.Prefix == "" {
		return key, nil
	}
	return s.loc.Prefix + "/" + key, nil
}

func (s *S3) keyOf(object string) string {
	if s.loc.Prefix == "" {
		return object
	}
	return strings.TrimPrefix(object, s.loc.Prefix+"/")
}

// Check asks the store whether the bucket is there and can be written to,
// and, when lock is set, whether it has Object Lock: before any dump.
func (s *S3) Check(ctx context.Context, lock bool) error {
	// A listing, not a HEAD: its answer has a body that says why.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // the first answer is enough
	if o, ok := <-s.client.ListObjects(lctx, s.loc.Bucket, minio.ListObjectsOptions{MaxKeys: 1, Prefix: s.loc.Prefix + "/"}); ok && o.Err != nil {
		err := s3Error(o.Err, "reach bucket "+s.loc.Bucket)
		if se, ok := err.(*S3Error); ok && se.NoBucket() {
			se.Message = "the bucket does not exist"
		}
		return err
	}
	if lock {
		enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.loc.Bucket)
		if err != nil || enabled != "Enabled" {
			return &NoObjectLockError{Bucket: s.loc.Bucket, Err: err}
		}
	}
	return nil
}

// NoObjectLockError: retention was asked for, the bucket has no Object Lock.
type NoObjectLockError struct {
	Bucket string
	Err    error
}

func (e *NoObjectLockError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("bucket %s has no Object Lock (%v): objects there cannot be locked", e.Bucket, e.Err)
	}
	return fmt.Sprintf("bucket %s has no Object Lock: objects there cannot be locked", e.Bucket)
}

// S3Error is an answer of the store, in its own words (never a credential).
type S3Error struct {
	Op, Code, Message string
	StatusCode        int
	Err               error
}

func (e *S3Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("S3: %s: %s (%s)", e.Op, e.Message, e.Code)
	}
	return fmt.Sprintf("S3: %s: %v", e.Op, e.Err)
}
func (e *S3Error) Unwrap() error { return e.Err }

// Credentials reports whether the store refused who we are.
func (e *S3Error) Credentials() bool {
	switch e.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
		"XAdminUserNotFound": // versitygw's InvalidAccessKeyId
		return true
	}
	return e.StatusCode == 403
}

// NoBucket reports a missing bucket.
func (e *S3Error) NoBucket() bool { return e.Code == "NoSuchBucket" }

func s3Error(err error, op string) error {
	if err == nil {
		return nil
	}
	r := minio.ToErrorResponse(err)
	if r.Code == "" {
		return &S3Error{Op: op, Err: err}
	}
	return &S3Error{Op: op, Code: r.Code, Message: r.Message, StatusCode: r.StatusCode, Err: err}
}

// Create starts a multipart upload; its lock file among this user's marks
// (MarksHome, which outlives a reboot) says the upload is live for as long
// as this process holds it.
func (s *S3) Create(ctx context.Context, key string, o CreateOptions) (Upload, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	// Every part carries its SHA-256, which the store checks on arrival
	// and again over the whole at completion.
	opts := minio.PutObjectOptions{UserMetadata: o.Metadata, Checksum: minio.ChecksumSHA256}
	if !o.RetainUntil.IsZero() {
		opts.Mode, opts.RetainUntilDate = minio.Governance, o.RetainUntil.UTC()
		if strings.EqualFold(o.LockMode, "compliance") {
			opts.Mode = minio.Compliance
		}
	}
	id, err := s.core.NewMultipartUpload(ctx, s.loc.Bucket, obj, opts)
	if err != nil {
		return nil, s3Error(err, "start upload of "+obj)
	}
	marks := s.marks()
	err = marks.own()
	var lock *os.File
	if err == nil {
		lock, err = os.OpenFile(s.uploadLock(id), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	}
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		s.core.AbortMultipartUpload(context.WithoutCancel(ctx), s.loc.Bucket, obj, id)
		if lock != nil {
			lock.Close()
		}
		return nil, fmt.Errorf("lock the upload in %s: %w", marks.dir, err)
	}
	if o.Exclusive {
		if err := s.claim(ctx, key, obj, id); err != nil {
			s.core.AbortMultipartUpload(context.WithoutCancel(ctx), s.loc.Bucket, obj, id)
			lock.Close()
			os.Remove(lock.Name())
			return nil, err
		}
	}
	u := &s3Upload{s: s, key: key, obj: obj, id: id, lock: lock, ctx: ctx, size: s.cfg.PartSize,
		queue: make(chan *partBuf), done: make(chan struct{})}
	go u.sender()
	return u, nil
}

// claim decides whether the upload id, just started, may write obj: not
// when an object is there, nor when another upload of obj was started no
// later than it (by the store's clock). Of uploads racing for a key at
// most one keeps it: a later one sees the earlier in the listing, and two
// started in the same instant both step aside.
func (s *S3) claim(ctx context.Context, key, obj, id string) error {
	if _, err := s.client.StatObject(ctx, s.loc.Bucket, obj, minio.StatObjectOptions{}); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, key)
	} else if r := minio.ToErrorResponse(err); r.Code != "NoSuchKey" && r.StatusCode != http.StatusNotFound {
		return s3Error(err, "look at "+obj)
	}
	var mine time.Time
	var others []minio.ObjectMultipartInfo
	for up := range s.client.ListIncompleteUploads(ctx, s.loc.Bucket, obj, true) {
		if up.Err != nil {
			return s3Error(up.Err, "list unfinished uploads of "+obj)
		}
		switch {
		case up.Key != obj:
		case up.UploadID == id:
			mine = up.Initiated
		default:
			others = append(others, up)
		}
	}
	for _, up := range others {
		if mine.IsZero() || !up.Initiated.After(mine) {
			return fmt.Errorf("%w: %s (another run is writing it)", ErrExists, key)
		}
	}
	return nil
}

// partBuf is one part on its way: a file in the staging folder, and its
// SHA-256 taken as it was written.
type partBuf struct {
	f   *os.File
	n   int64
	sum hash.Hash
	num int
}

type s3Upload struct {
	s        *S3
	key, obj string
	id       string
	lock     *os.File
	ctx      context.Context
	size     int64 // the current part size
	cur      *partBuf
	parts    []minio.CompletePart
	queue    chan *partBuf
	done     chan struct{}
	next     int // the number of the last part begun (the writer's own)
	mu       sync.Mutex
	err      error // the first failure of a part
	inFlight int   // parts handed to the sender and not answered yet
	n        int64
	finished bool
}

// partSizeFor grows parts with the archive: 8 MiB (or the configured
// size) for the first 1,000, doubled for every 1,000 after, at most 5 GiB.
func (u *s3Upload) partSizeFor(num int) int64 {
	sz := u.s.cfg.PartSize << (uint(num-1) / 1000)
	return min(sz, 5<<30)
}

func (u *s3Upload) Write(p []byte) (int, error) {
	if err := u.failed(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if u.cur == nil {
			f, err := os.CreateTemp(u.s.staging, "part-*")
			if err != nil {
				return written, err
			}
			os.Remove(f.Name()) // the open file is enough, and nothing is left
			u.next++
			u.cur = &partBuf{f: f, sum: sha256.New(), num: u.next}
		}
		room := u.partSizeFor(u.cur.num) - u.cur.n
		take := min(int64(len(p)), room)
		if _, err := u.cur.f.Write(p[:take]); err != nil {
			return written, err
		}
		u.cur.sum.Write(p[:take])
		u.cur.n += take
		u.n += take
		written += int(take)
		p = p[take:]
		if u.cur.n == u.partSizeFor(u.cur.num) {
			if err := u.send(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (u *s3Upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// send hands the current part to the sender, waiting while it still
// uploads the one before (two parts at most, one of them in flight).
func (u *s3Upload) send() error {
	p := u.cur
	u.cur = nil
	u.mu.Lock()
	u.inFlight++
	u.mu.Unlock()
	select {
	case u.queue <- p:
	case <-u.ctx.Done():
		p.f.Close()
		return u.ctx.Err()
	}
	return u.failed()
}

// sender uploads the parts in order, one at a time.
func (u *s3Upload) sender() {
	defer close(u.done)
	for p := range u.queue {
		if u.failed() == nil {
			part, err := u.putPart(p)
			u.mu.Lock()
			if err != nil {
				u.err = err
			} else {
				u.parts = append(u.parts, minio.CompletePart{PartNumber: p.num, ETag: part.ETag})
			}
			u.inFlight--
			u.mu.Unlock()
		} else {
			u.mu.Lock()
			u.inFlight--
			u.mu.Unlock()
		}
		p.f.Close()
	}
}

// partTries is how many times a part is sent before its upload fails.
const partTries = 7

// putPart sends one part, retrying what the store may answer better next
// time (503 SlowDown, a 5xx, a dropped connection) with a backoff of 0.2 s
// doubling up to 5 s. Each try reads the part's file through a reader of
// its own: an HTTP transport may still be reading the body of a try that
// failed when the next begins (so minio-go's own retries, which seek one
// shared reader back, are not used for parts). A stall, the context's end
// or any other answer ends the tries.
func (u *s3Upload) putPart(p *partBuf) (minio.ObjectPart, error) {
	sum := p.sum.Sum(nil)
	op := fmt.Sprintf("upload part %d of %s", p.num, u.obj)
	opts := minio.PutObjectPartOptions{Sha256Hex: hex.EncodeToString(sum),
		CustomHeader: http.Header{"X-Amz-Checksum-Sha256": {base64.StdEncoding.EncodeToString(sum)}}}
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		ctx, g := newStallGuard(u.ctx, u.s.cfg.Timeout, op)
		body := guardedSection{io.NewSectionReader(p.f, 0, p.n), g}
		part, err := u.s.core.PutObjectPart(ctx, u.s.loc.Bucket, u.obj, u.id, p.num, body, p.n, opts)
		err = stalled(ctx, err)
		g.stop()
		var se *StalledError
		switch {
		case err == nil:
			return part, nil
		case errors.As(err, &se):
			return part, se
		case u.ctx.Err() != nil || try == partTries || !retryable(err):
			return part, s3Error(err, op)
		}
		select {
		case <-time.After(wait):
		case <-u.ctx.Done():
			return part, s3Error(u.ctx.Err(), op)
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// retryable: an answer the store may not give next time.
func retryable(err error) bool {
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "" && r.StatusCode == 0: // no answer: a connection refused or dropped
		return true
	case r.StatusCode >= 500, r.StatusCode == http.StatusTooManyRequests, r.StatusCode == http.StatusRequestTimeout:
		return true
	}
	switch r.Code {
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed":
		return true
	}
	return false
}

func (u *s3Upload) Commit(ctx context.Context) (Object, error) {
	if u.finished {
		return Object{}, errors.New("upload already finished")
	}
	if u.cur == nil && u.next == 0 { // an empty object: one empty part
		f, err := os.CreateTemp(u.s.staging, "part-*")
		if err != nil {
			return Object{}, err
		}
		os.Remove(f.Name())
		u.next++
		u.cur = &partBuf{f: f, sum: sha256.New(), num: u.next}
	}
	if u.cur != nil {
		if err := u.send(); err != nil {
			return Object{}, err
		}
	}
	close(u.queue)
	<-u.done
	if err := u.failed(); err != nil {
		return Object{}, err
	}
	sort.Slice(u.parts, func(i, j int) bool { return u.parts[i].PartNumber < u.parts[j].PartNumber })
	// Complete only if nothing is there yet: keys are unique per run, and
	// a second writer of one key must not replace the first.
	if _, err := u.s.client.StatObject(ctx, u.s.loc.Bucket, u.obj, minio.StatObjectOptions{}); err == nil {
		u.Abort(ctx)
		return Object{}, fmt.Errorf("%w: %s", ErrExists, u.key)
	}
	// And conditional where the store supports it (If-None-Match: *), so
	// two writers racing for one key cannot both win.
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	info, err := u.s.core.CompleteMultipartUpload(ctx, u.s.loc.Bucket, u.obj, u.id, u.parts, opts)
	if r := minio.ToErrorResponse(err); r.Code == "PreconditionFailed" || r.StatusCode == http.StatusPreconditionFailed {
		u.Abort(ctx)
		return Object{}, fmt.Errorf("%w: %s", ErrExists, u.key)
	}
	if err != nil {
		return Object{}, s3Error(err, "complete upload of "+u.obj)
	}
	u.finished = true
	u.release()
	return Object{Key: u.key, Size: u.n, VersionID: info.VersionID, ModTime: info.LastModified}, nil
}

func (u *s3Upload) Abort(ctx context.Context) error {
	if u.finished {
		return nil
	}
	u.finished = true
	if u.cur != nil {
		u.cur.f.Close()
		u.cur = nil
	}
	select {
	case <-u.done:
	default:
		close(u.queue)
		<-u.done
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.s.cfg.Timeout)
	defer cancel()
	err := u.s.core.AbortMultipartUpload(actx, u.s.loc.Bucket, u.obj, u.id)
	if err != nil { // the lock file stays, unlocked: the next run knows the upload is stale
		u.lock.Close()
		u.lock = nil
	}
	u.release()
	return s3Error(err, "abort upload of "+u.obj)
}

func (u *s3Upload) release() {
	if u.lock != nil {
		os.Remove(u.lock.Name())
		u.lock.Close()
		u.lock = nil
	}
}

// Open streams the object.
func (s *S3) Open(ctx context.Context, key, version string) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if _, err := s.Stat(ctx, key, version); err != nil {
		return nil, err
	}
	gctx, g := newStallGuard(ctx, s.cfg.Timeout, "read "+obj)
	r, err := s.client.GetObject(gctx, s.loc.Bucket, obj, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		g.stop()
		return nil, s3Error(err, "read "+obj)
	}
	return &guardedBody{ReadCloser: r, ctx: gctx, g: g}, nil
}

// Stat describes one version of the object ("": the current one), with
// its retention.
func (s *S3) Stat(ctx context.Context, key, version string) (Object, error) {
	obj, err := s.object(key)
	if err != nil {
		return Object{}, err
	}
	info, err := s.client.StatObject(ctx, s.loc.Bucket, obj, minio.StatObjectOptions{VersionID: version})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NoSuchVersion" || minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
			return Object{}, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return Object{}, s3Error(err, "look at "+obj)
	}
	o := Object{Key: key, Size: info.Size, ModTime: info.LastModified, VersionID: info.VersionID}
	// The retention comes with the object's headers.
	if until, err := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")); err == nil {
		o.LockMode, o.RetainUntil = info.Metadata.Get("X-Amz-Object-Lock-Mode"), until.UTC()
	} else if mode, until, err := s.client.GetObjectRetention(ctx, s.loc.Bucket, obj, info.VersionID); err == nil && mode != nil && until != nil {
		o.LockMode, o.RetainUntil = string(*mode), until.UTC()
	}
	return o, nil
}

// Delete removes the object's current version (not only hides it behind a
// delete marker, where the bucket keeps versions): a *LockedError while
// it is under retention.
func (s *S3) Delete(ctx context.Context, key, version string) error {
	o, err := s.Stat(ctx, key, version)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !o.RetainUntil.IsZero() && o.RetainUntil.After(time.Now()) {
		return &LockedError{Key: key, Until: o.RetainUntil, Mode: o.LockMode}
	}
	obj, _ := s.object(key)
	if err := s.client.RemoveObject(ctx, s.loc.Bucket, obj, minio.RemoveObjectOptions{VersionID: o.VersionID}); err != nil {
		return s3Error(err, "delete "+obj)
	}
	return nil
}

// List returns the objects under prefix.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	full := prefix
	if s.loc.Prefix != "" {
		full = s.loc.Prefix + "/" + prefix
	}
	var out []Object
	for info := range s.client.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if info.Err != nil {
			return nil, s3Error(info.Err, "list "+path.Join(s.loc.Bucket, full))
		}
		out = append(out, Object{Key: s.keyOf(info.Key), Size: info.Size, ModTime: info.LastModified, VersionID: info.VersionID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Versions lists the versions and delete markers of key, newest first.
func (s *S3) Versions(ctx context.Context, key string) ([]Version, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	var out []Version
	for info := range s.client.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: obj, WithVersions: true}) {
		if info.Err != nil {
			return nil, s3Error(info.Err, "list the versions of "+obj)
		}
		if info.Key != obj {
			continue
		}
		out = append(out, Version{ID: info.VersionID, ModTime: info.LastModified, Size: info.Size, DeleteMarker: info.IsDeleteMarker, Latest: info.IsLatest})
	}
	// Newest first: the current one, then by time (stores differ in the
	// order they list, and times have a second's resolution).
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Latest != out[j].Latest {
			return out[i].Latest
		}
		return out[i].ModTime.After(out[j].ModTime)
	})
	return out, nil
}

// Hidden lists the keys under prefix whose current entry is a delete
// marker and that have a version under it: that newest version each.
func (s *S3) Hidden(ctx context.Context, prefix string) ([]Object, error) {
	full := prefix
	if s.loc.Prefix != "" {
		full = s.loc.Prefix + "/" + prefix
	}
	type entry struct {
		marker bool
		newest minio.ObjectInfo // newest version that is not a marker
		latest bool
	}
	keys := map[string]*entry{}
	var order []string
	for info := range s.client.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true, WithVersions: true}) {
		if info.Err != nil {
			return nil, s3Error(info.Err, "list the versions under "+full)
		}
		e := keys[info.Key]
		if e == nil {
			e = &entry{}
			keys[info.Key] = e
			order = append(order, info.Key)
		}
		if info.IsLatest {
			e.latest, e.marker = true, info.IsDeleteMarker
		}
		if !info.IsDeleteMarker && (e.newest.Key == "" || info.LastModified.After(e.newest.LastModified)) {
			e.newest = info
		}
	}
	var out []Object
	for _, k := range order {
		e := keys[k]
		if e.latest && e.marker && e.newest.Key != "" {
			out = append(out, Object{Key: s.keyOf(k), Size: e.newest.Size, ModTime: e.newest.LastModified, VersionID: e.newest.VersionID})
		}
	}
	return out, nil
}

// staleAfter is how old an upload must be before a run that did not
// start it (another machine's, say) aborts it.
const staleAfter = 24 * time.Hour

// uploadLock is the lock file of upload id among this user's marks.
func (s *S3) uploadLock(id string) string {
	return filepath.Join(s.marks().dir, "upload-"+safeName(id)+".lock")
}

// AbortStale aborts the multipart uploads under prefix that a process of
// this machine started and that is gone (its lock file among the marks
// can be taken: also after a reboot), and those older than a day.
func (s *S3) AbortStale(ctx context.Context, prefix string) (int, error) {
	full := prefix
	if s.loc.Prefix != "" {
		full = s.loc.Prefix + "/" + prefix
	}
	n := 0
	for up := range s.client.ListIncompleteUploads(ctx, s.loc.Bucket, full, true) {
		if up.Err != nil {
			return n, s3Error(up.Err, "list unfinished uploads under "+full)
		}
		stale := time.Since(up.Initiated) > staleAfter
		lockPath := s.uploadLock(up.UploadID)
		var lock *os.File
		if f, err := os.OpenFile(lockPath, os.O_RDWR|syscall.O_NOFOLLOW, 0); err == nil {
			stale = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
			lock = f
		}
		if !stale {
			if lock != nil {
				lock.Close()
			}
			continue
		}
		err := s.core.AbortMultipartUpload(ctx, s.loc.Bucket, up.Key, up.UploadID)
		if lock != nil {
			if err == nil {
				os.Remove(lockPath)
			}
			lock.Close()
		}
		if err != nil {
			return n, s3Error(err, "abort the unfinished upload of "+up.Key)
		}
		n++
	}
	return n, nil
}

// HoldKey marks key as being completed by this process (an archive whose
// manifest is not stored yet) until release, which forgets it. A process
// killed in between leaves the mark, free: KeyState tells the next run.
func (s *S3) HoldKey(key string) (release func(done bool), err error) { return s.marks().hold(key) }

// KeyState says whether a process of this machine is completing key now
// (live), or was and died (dead); neither when none here held it (keyMarks).
func (s *S3) KeyState(key string) (live, dead bool, done func(forget bool)) {
	return s.marks().state(key)
}

func (s *S3) marks() keyMarks {
	return keyMarks{dir: MarksHome(), ns: "s3://" + s.loc.Bucket + "/" + s.loc.Prefix}
}

// Move puts the current version of the object at from under to (never
// over an object there: ErrExists), then removes it from from: a copy in
// the store, then a delete of the key (a delete marker where the bucket
// keeps versions: no version is destroyed). An object under retention is
// not moved (*LockedError).
func (s *S3) Move(ctx context.Context, from, to string) error {
	src, err := s.object(from)
	if err != nil {
		return err
	}
	dst, err := s.object(to)
	if err != nil {
		return err
	}
	o, err := s.Stat(ctx, from, "")
	if err != nil {
		return err
	}
	if !o.RetainUntil.IsZero() && o.RetainUntil.After(time.Now()) {
		return &LockedError{Key: from, Until: o.RetainUntil, Mode: o.LockMode}
	}
	if _, err := s.Stat(ctx, to, ""); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, to)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	source := minio.CopySrcOptions{Bucket: s.loc.Bucket, Object: src, VersionID: o.VersionID}
	dest := minio.CopyDestOptions{Bucket: s.loc.Bucket, Object: dst}
	if o.Size <= 5<<30 {
		_, err = s.client.CopyObject(ctx, dest, source)
	} else {
		_, err = s.client.ComposeObject(ctx, dest, source)
	}
	if err != nil {
		return s3Error(err, "copy "+src+" to "+dst)
	}
	// The current version only: where the bucket keeps versions this is
	// a delete marker, and the moved bytes stay there too.
	if err := s.client.RemoveObject(ctx, s.loc.Bucket, src, minio.RemoveObjectOptions{}); err != nil {
		return s3Error(err, "delete "+src)
	}
	return nil
}
