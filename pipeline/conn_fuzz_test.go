package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseConnString: any string either fails to parse with an error, or
// parses into keywords whose key=value rendering (what goes into a child's
// argv) reads back to the same keywords and carries no password, and whose
// password the redactor removes from the string as typed.
func FuzzParseConnString(f *testing.F) {
	for _, s := range []string{
		"postgresql://alice:s3cr%3At%40%2F%3F%23%25'%22%20p@db.example.com:5432/app?sslmode=require",
		"postgres://u@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write&application_name=x",
		"postgresql:///app?host=/var/run/postgresql&port=5433",
		"host=db.example.com port=5432 dbname='my db' user=bob password='it''s \\'quoted\\''",
		"host = h  dbname=d password=p\\ w",
		"postgresql://ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
		"neondb", "", "=", "postgresql://", "postgresql://@", "postgresql://[::1", "password=", "a='unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ci, err := ParseConnString(s)
		if err != nil {
			return
		}
		kv := ci.Sanitized()
		back, err := ParseConnString(kv)
		if err != nil {
			if len(ci.params) == 0 && kv == "" {
				return
			}
			t.Fatalf("rendering %q of %q does not parse: %v", kv, s, err)
		}
		if len(ci.params) > 0 && !reflect.DeepEqual(back.params, ci.params) {
			t.Fatalf("%q → %q reads back as %q, want %q", s, kv, back.params, ci.params)
		}
		if _, has := back.Password(); has {
			t.Fatalf("rendering %q of %q carries a password", kv, s)
		}
		pw, has := ci.Password()
		if !has || len(pw) < 4 || strings.Contains(Redacted, pw) {
			return // a 1-3 character password cannot be told from other text
		}
		r := &Redactor{}
		r.Add(pw)
		if out := r.String(s); strings.Contains(out, pw) {
			t.Fatalf("redacted %q still holds the password %q: %q", s, pw, out)
		}
	})
}
