package pgtest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Fault is what a FaultProxy does with one request.
type Fault int

// Faults.
const (
	Pass     Fault = iota // forward it to the store
	SlowDown              // answer 503 SlowDown, as S3 does when throttling
	Stall                 // read nothing, answer nothing, until the client gives up
)

// FaultProxy is an HTTP proxy on loopback in front of an S3 server that
// asks Decide what to do with each request (n counts the requests of the
// same kind, from 1): a store that throttles, stalls or dies on cue. The
// Host header is passed as the client sent it, so signatures hold.
type FaultProxy struct {
	Endpoint string // http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_S3
	Decide   func(r *http.Request, kind string, n int) Fault

	closed   chan struct{}
	after    func(r *http.Request, kind string, n int)
	mu       sync.Mutex
	counts   map[string]int
	injected map[Fault]int
}

// RequestKind names an S3 request: "UploadPart", "CreateMultipartUpload",
// "CompleteMultipartUpload", "AbortMultipartUpload", "GetObject", … (by
// method and query), "other" when it is none of those.
func RequestKind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodGet && q.Has("uploads"):
		return "ListMultipartUploads"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "HeadObject"
	}
	return "other"
}

// NewFaultProxy starts a proxy in front of s for the test's life.
func NewFaultProxy(tb testing.TB, s *S3Server, decide func(r *http.Request, kind string, n int) Fault) *FaultProxy {
	tb.Helper()
	target, _ := url.Parse(s.Endpoint)
	p := &FaultProxy{Decide: decide, closed: make(chan struct{}), counts: map[string]int{}, injected: map[Fault]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // signed by the client
		},
		ErrorLog: log.New(io.Discard, "", 0), // a dead store is what some tests want
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.Endpoint = "http://" + l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := RequestKind(r)
		p.mu.Lock()
		p.counts[kind]++
		n := p.counts[kind]
		p.mu.Unlock()
		f := Pass
		if p.Decide != nil {
			f = p.Decide(r, kind, n)
		}
		p.mu.Lock()
		p.injected[f]++
		p.mu.Unlock()
		switch f {
		case SlowDown:
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		case Stall: // the client's give-up is seen once its connection closes, or at the end
			select {
			case <-r.Context().Done():
			case <-p.closed:
			}
		default:
			rp.ServeHTTP(w, r)
			p.mu.Lock()
			after := p.after
			p.mu.Unlock()
			if after != nil {
				after(r, kind, n)
			}
		}
	})}
	go srv.Serve(l)
	tb.Cleanup(func() { close(p.closed); srv.Close() })
	return p
}

// After sets what is called once a request passed to the store has been
// answered (a client killed there has seen its request done).
func (p *FaultProxy) After(fn func(r *http.Request, kind string, n int)) {
	p.mu.Lock()
	p.after = fn
	p.mu.Unlock()
}

// Injected is how many requests got fault f.
func (p *FaultProxy) Injected(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[f]
}

// Count is how many requests of kind came.
func (p *FaultProxy) Count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}
