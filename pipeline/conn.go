package pipeline

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pgattest/pgattest/testenv"
)

// ConnInfo is a connection string as libpq reads it, split into keywords,
// with the password held apart: it goes to child processes through their
// environment, never through argv, and is redacted everywhere else.
type ConnInfo struct {
	params   [][2]string // keyword, value (decoded), in order, without "password"
	password string
	hasPass  bool
}

// ErrBadConnString marks a connection string that cannot be read.
var ErrBadConnString = errors.New("cannot read connection string")

// ParseConnString reads a postgresql:// or postgres:// URL, a libpq
// key=value string, or a bare database name, following libpq's rules.
// An empty string is valid: libpq's PG* environment variables then apply.
func ParseConnString(s string) (*ConnInfo, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return &ConnInfo{}, nil
	case strings.HasPrefix(s, "postgresql://"), strings.HasPrefix(s, "postgres://"):
		return parseURL(s)
	case strings.Contains(s, "="):
		return parseKeyValue(s)
	case strings.Contains(s, "@") && !strings.ContainsAny(s, " \t"):
		// "app:Secret@host/db": a URL without its scheme, which libpq would
		// take whole for a database name, password and all.
		return nil, &SchemelessURLError{password: schemelessPassword(s)}
	}
	return &ConnInfo{params: [][2]string{{"dbname", s}}}, nil
}

// SchemelessURLError: a connection string that looks like a URL without
// postgresql:// in front. Its text is never repeated (it may hold a
// password); Password tells the redactor.
type SchemelessURLError struct{ password string }

func (e *SchemelessURLError) Error() string {
	return ErrBadConnString.Error() + ": it looks like a URL without postgresql:// in front (user@host/db)"
}
func (e *SchemelessURLError) Is(target error) bool { return target == ErrBadConnString }

// Password is the password the string seemed to hold, for the redactor.
func (e *SchemelessURLError) Password() string { return e.password }

// schemelessPassword is what sits between the first ":" and the last "@"
// of "user:password@host/db", or "".
func schemelessPassword(s string) string {
	at := strings.LastIndexByte(s, '@')
	if c := strings.IndexByte(s[:at], ':'); c >= 0 {
		return s[c+1 : at]
	}
	return ""
}

// parseURL follows libpq's conninfo_uri_parse: userinfo ends at the first
// "@" before any "/", hosts are comma-separated with optional ports, IPv6
// addresses sit in brackets, and every part is percent-decoded.
func parseURL(s string) (*ConnInfo, error) {
	c := &ConnInfo{}
	rest := s[strings.Index(s, "://")+3:]
	// The query starts at the first "?"; the path at the first "/" before it.
	var query string
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, fmt.Errorf("%w: a URL may not contain \"#\" (percent-encode it as %%23 in a password)", ErrBadConnString)
	}
	hostpart, path, hasPath := strings.Cut(rest, "/")
	if at := strings.IndexByte(hostpart, '@'); at >= 0 {
		userinfo := hostpart[:at]
		hostpart = hostpart[at+1:]
		if strings.Contains(hostpart, "@") {
			return nil, fmt.Errorf("%w: more than one \"@\" before the host (percent-encode \"@\" in a password as %%40)", ErrBadConnString)
		}
		user, pass, hasPass := strings.Cut(userinfo, ":")
		u, err := url.PathUnescape(user)
		if err != nil {
			return nil, fmt.Errorf("%w: bad percent-encoding in the user name", ErrBadConnString)
		}
		if u != "" {
			c.params = append(c.params, [2]string{"user", u})
		}
		if hasPass {
			p, err := url.PathUnescape(pass)
			if err != nil {
				return nil, fmt.Errorf("%w: bad percent-encoding in the password", ErrBadConnString)
			}
			c.password, c.hasPass = p, true
		}
	}
	if hostpart != "" {
		var hosts, ports []string
		anyPort := false
		for _, hp := range strings.Split(hostpart, ",") {
			host, port := hp, ""
			if strings.HasPrefix(hp, "[") { // [::1]:5432
				end := strings.IndexByte(hp, ']')
				if end < 0 {
					return nil, fmt.Errorf("%w: unclosed \"[\" in a host", ErrBadConnString)
				}
				host, port = hp[1:end], strings.TrimPrefix(hp[end+1:], ":")
			} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
				host, port = hp[:i], hp[i+1:]
			}
			if port != "" {
				anyPort = true
				for _, r := range port {
					if r < '0' || r > '9' {
						return nil, fmt.Errorf("%w: a port is not a number (percent-encode / ? # @ : in a password)", ErrBadConnString)
					}
				}
			}
			h, err := url.PathUnescape(host)
			if err != nil {
				return nil, fmt.Errorf("%w: bad percent-encoding in a host", ErrBadConnString)
			}
			hosts, ports = append(hosts, h), append(ports, port)
		}
		c.params = append(c.params, [2]string{"host", strings.Join(hosts, ",")})
		if anyPort {
			c.params = append(c.params, [2]string{"port", strings.Join(ports, ",")})
		}
	}
	if hasPath && path != "" {
		db, err := url.PathUnescape(path)
		if err != nil {
			return nil, fmt.Errorf("%w: bad percent-encoding in the database name", ErrBadConnString)
		}
		c.params = append(c.params, [2]string{"dbname", db})
	}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%w: a query parameter has no \"=\"", ErrBadConnString)
			}
			k, err1 := url.QueryUnescape(k)
			v, err2 := url.QueryUnescape(v)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%w: bad percent-encoding in a query parameter", ErrBadConnString)
			}
			if !keywordRE.MatchString(k) {
				return nil, fmt.Errorf("%w: %q is not a connection parameter (sslmode, application_name, …)", ErrBadConnString, k)
			}
			if k == "ssl" && v == "true" { // libpq's JDBC compatibility
				k, v = "sslmode", "require"
			}
			c.set(k, v)
		}
	}
	return c, nil
}

// keywordRE is what a libpq connection keyword looks like.
var keywordRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// isSpace is C's isspace, which libpq's conninfo_parse splits on: space,
// \t, \n, \v, \f and \r.
func isSpace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

// parseKeyValue follows libpq's conninfo_parse: keyword = value pairs,
// values bare (backslash escapes) or in single quotes (\' and \\).
func parseKeyValue(s string) (*ConnInfo, error) {
	c := &ConnInfo{}
	i := 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("%w: missing \"=\" after the keyword at character %d", ErrBadConnString, start+1)
		}
		i++
		skip()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					closed = true
					break
				}
				val.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value (a ' is missing)", ErrBadConnString)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		if key == "" {
			return nil, fmt.Errorf("%w: empty keyword", ErrBadConnString)
		}
		c.set(key, val.String())
	}
	return c, nil
}

func (c *ConnInfo) set(k, v string) {
	if k == "password" {
		c.password, c.hasPass = v, true
		return
	}
	for i := range c.params {
		if c.params[i][0] == k {
			c.params[i][1] = v
			return
		}
	}
	c.params = append(c.params, [2]string{k, v})
}

// Get returns a keyword's value as written ("" if absent).
func (c *ConnInfo) Get(k string) string {
	for _, p := range c.params {
		if p[0] == k {
			return p[1]
		}
	}
	return ""
}

// Password returns the password the string carried, if any.
func (c *ConnInfo) Password() (string, bool) { return c.password, c.hasPass }

// Sanitized renders the connection string for a child's argv: libpq
// key=value form, every keyword but the password.
func (c *ConnInfo) Sanitized() string { return testenv.KeyValue(c.params) }

// WithPassword renders the full connection string (key=value form) for pgx.
// Never print it.
func (c *ConnInfo) withPassword() string {
	if !c.hasPass {
		return c.Sanitized()
	}
	return testenv.KeyValue(append(c.params[:len(c.params):len(c.params)], [2]string{"password", c.password}))
}

// Hosts returns the hosts named in the string.
func (c *ConnInfo) Hosts() []string {
	h := c.Get("host")
	if h == "" {
		return nil
	}
	return strings.Split(h, ",")
}

// PooledHost reports whether host is a Neon pooled endpoint ("-pooler" in
// its first label) and returns the direct host name.
func PooledHost(host string) (direct string, pooled bool) {
	first, rest, _ := strings.Cut(host, ".")
	if !strings.Contains(first, "-pooler") {
		return host, false
	}
	first = strings.Replace(first, "-pooler", "", 1)
	if rest == "" {
		return first, true
	}
	return first + "." + rest, true
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// ValidName checks a backup name: it becomes a folder and part of file names
// under --dir, so it may hold only letters, digits and . _ @ + -, must start
// with a letter or digit, and is at most 128 characters.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("backup name %q is not allowed", name)
	}
	return nil
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._@+-]+`)

// DefaultName derives a backup name from a database, a host and a port:
// the whole host, and the port unless it is 5432, so that two servers never
// share a name: "neondb@ep-cool-darkness-a1b2c3d4.us-east-2.aws.neon.tech"
// (a -pooler host named by its direct one), "shop@127.0.0.1+56710",
// "shop@local+5433" for a Unix socket on port 5433.
func DefaultName(database, host string, port int) string {
	label := "local"
	if host != "" && !strings.HasPrefix(host, "/") && !strings.HasPrefix(host, "@") {
		label, _ = PooledHost(host)
		label = strings.ToLower(strings.Trim(label, "[]"))
		if strings.Contains(label, ":") { // IPv6
			label = strings.ReplaceAll(label, ":", "-")
		}
	}
	if port != 0 && port != 5432 {
		label += "+" + strconv.Itoa(port)
	}
	label = nameUnsafe.ReplaceAllString(label, "_")
	db := strings.TrimLeft(nameUnsafe.ReplaceAllString(database, "_"), "._@+-")
	if db == "" {
		db = "db"
	}
	// The host keeps the whole of its share of the 128 characters.
	if len(db)+1+len(label) > 128 {
		db = db[:max(1, 128-1-len(label))]
	}
	name := db + "@" + label
	if len(name) > 128 {
		name = name[:128]
	}
	if !nameRE.MatchString(name) {
		return "db@" + label[:min(len(label), 120)]
	}
	return name
}

// Redactor replaces secrets in text from outside pgattest (tools' output,
// driver errors, what the user typed) before it is kept or shown; it never
// rewrites pgattest's own output. Secrets can be added at any time.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers a secret, and the forms it takes inside URLs and quoted
// connection strings.
func (r *Redactor) Add(secret string) {
	if secret == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret),
		url.UserPassword("u", secret).String()[2:], strings.ReplaceAll(secret, `'`, `\'`)} {
		if s == "" {
			continue
		}
		dup := false
		for _, have := range r.secrets {
			dup = dup || have == s
		}
		if !dup {
			r.secrets = append(r.secrets, s)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// Redacted is what a secret is replaced with.
const Redacted = "[REDACTED]"

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return s
}
