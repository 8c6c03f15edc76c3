package verify

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
)

// SchemaFacts are what the proof needs from the archive's SQL (its entries
// without data) before restoring: the roles it names and its encoding.
type SchemaFacts struct {
	Roles    []string // owners, grantees, grantors, policy roles: exact names
	Encoding string   // from "SET client_encoding = 'UTF8';", "" if absent
	DBOwner  string   // the source database's owner (its DATABASE entry), "" if unknown
}

// ScanSQL reads SQL as pg_dump writes it and collects the roles it names
// (OWNER TO, GRANT … TO, REVOKE … FROM, FOR ROLE, GRANTED BY, SET SESSION
// AUTHORIZATION, AUTHORIZATION, CREATE/ALTER POLICY … TO, USER MAPPING FOR)
// and the client encoding. String literals, dollar-quoted bodies and
// comments are skipped, so a function body that mentions GRANT adds nothing.
// Built-in roles (pg_*) and PUBLIC, CURRENT_USER and the like are left out.
func ScanSQL(r io.Reader) (SchemaFacts, error) {
	return scanSQL(bufio.NewReaderSize(r, 64*1024))
}

func scanSQL(br *bufio.Reader) (SchemaFacts, error) {
	sc := &sqlScanner{r: br}
	roles := map[string]bool{}
	var facts SchemaFacts
	for {
		stmt, err := sc.statement()
		if len(stmt) > 0 {
			for _, role := range rolesIn(stmt) {
				roles[role] = true
			}
			if facts.Encoding == "" && len(stmt) == 4 && stmt[0].is("SET") && stmt[1].is("client_encoding") && stmt[3].kind == tokString {
				facts.Encoding = stmt[3].text
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return facts, fmt.Errorf("scan archive SQL: %w", err)
		}
	}
	for role := range roles {
		facts.Roles = append(facts.Roles, role)
	}
	sort.Strings(facts.Roles)
	return facts, nil
}

type tokKind int

const (
	tokWord   tokKind = iota // unquoted word: keyword or identifier (folded to lower case)
	tokIdent                 // "quoted identifier"
	tokString                // 'string literal' (text without quotes)
	tokPunct                 // , ( ) = and the like
)

type token struct {
	kind tokKind
	text string
}

func (t token) is(word string) bool { return t.kind == tokWord && strings.EqualFold(t.text, word) }

// name returns the role name a token stands for, if it can be one.
func (t token) name() (string, bool) {
	switch t.kind {
	case tokIdent, tokString:
		return t.text, t.text != ""
	case tokWord:
		return strings.ToLower(t.text), true
	}
	return "", false
}

// rolesIn returns the roles one statement names.
func rolesIn(stmt []token) []string {
	var out []string
	add := func(t token) {
		name, ok := t.name()
		if !ok || strings.HasPrefix(name, "pg_") {
			return
		}
		if t.kind == tokWord {
			switch name {
			case "public", "current_user", "current_role", "session_user", "none", "default":
				return
			}
		}
		out = append(out, name)
	}
	// list adds the comma-separated names starting at i.
	list := func(i int) {
		for ; i < len(stmt); i += 2 {
			if stmt[i].kind == tokPunct {
				return
			}
			if stmt[i].kind == tokWord && (stmt[i].is("WITH") || stmt[i].is("GRANTED") || stmt[i].is("CASCADE") ||
				stmt[i].is("RESTRICT") || stmt[i].is("USING") || stmt[i].is("IN")) {
				return
			}
			add(stmt[i])
			if i+1 >= len(stmt) || !(stmt[i+1].kind == tokPunct && stmt[i+1].text == ",") {
				return
			}
		}
	}
	first := stmt[0]
	isGrant := first.is("GRANT") || first.is("REVOKE") ||
		(first.is("ALTER") && len(stmt) > 2 && stmt[1].is("DEFAULT") && stmt[2].is("PRIVILEGES"))
	isPolicy := (first.is("CREATE") || first.is("ALTER")) && len(stmt) > 1 && stmt[1].is("POLICY")
	for i := 0; i < len(stmt)-1; i++ {
		t, next := stmt[i], stmt[i+1]
		switch {
		case t.is("OWNER") && next.is("TO") && i+2 < len(stmt):
			add(stmt[i+2])
		case t.is("AUTHORIZATION"):
			add(next)
		case t.is("FOR") && (next.is("ROLE") || next.is("USER")) && i+2 < len(stmt) && !stmt[i+2].is("MAPPING"):
			list(i + 2)
		case t.is("GRANTED") && next.is("BY"):
			if i+2 < len(stmt) {
				add(stmt[i+2])
			}
		case t.is("MAPPING") && next.is("FOR"):
			if i+2 < len(stmt) {
				add(stmt[i+2])
			}
		case (isGrant || isPolicy) && (t.is("TO") || (t.is("FROM") && first.is("REVOKE")) ||
			(t.is("FROM") && isGrant && stmt[0].is("ALTER"))):
			list(i + 1)
		}
	}
	return out
}

// sqlScanner splits SQL into statements of tokens, skipping comments,
// string contents it does not need and dollar-quoted bodies.
type sqlScanner struct {
	r *bufio.Reader
}

// statement returns the tokens up to the next top-level ";". Long statements
// keep only their first 4096 tokens: role names come early in every
// statement pg_dump writes that names one.
func (s *sqlScanner) statement() ([]token, error) {
	var toks []token
	push := func(t token) {
		if len(toks) < 4096 {
			toks = append(toks, t)
		}
	}
	for {
		c, _, err := s.r.ReadRune()
		if err != nil {
			return toks, err
		}
		switch {
		case c == ';':
			return toks, nil
		case unicode.IsSpace(c):
		case c == '-':
			if n, _ := s.r.Peek(1); len(n) == 1 && n[0] == '-' {
				if _, err := s.r.ReadString('\n'); err != nil {
					return toks, err
				}
				continue
			}
			push(token{tokPunct, "-"})
		case c == '/':
			if n, _ := s.r.Peek(1); len(n) == 1 && n[0] == '*' {
				s.r.ReadRune()
				if err := s.skipBlockComment(); err != nil {
					return toks, err
				}
				continue
			}
			push(token{tokPunct, "/"})
		case c == '"':
			text, err := s.quoted('"')
			if err != nil {
				return toks, err
			}
			push(token{tokIdent, text})
		case c == '\'':
			text, err := s.quoted('\'')
			if err != nil {
				return toks, err
			}
			push(token{tokString, text})
		case c == '$':
			// $tag$ … $tag$, or a positional parameter $1.
			tag, isQuote, err := s.dollarTag()
			if err != nil {
				return toks, err
			}
			if isQuote {
				if err := s.skipDollarBody(tag); err != nil {
					return toks, err
				}
				push(token{tokString, ""})
			}
		case c == '_' || unicode.IsLetter(c):
			word := []rune{c}
			for {
				n, _, err := s.r.ReadRune()
				if err != nil {
					break
				}
				if n == '_' || n == '$' || unicode.IsLetter(n) || unicode.IsDigit(n) {
					word = append(word, n)
					continue
				}
				s.r.UnreadRune()
				break
			}
			push(token{tokWord, string(word)})
		default:
			push(token{tokPunct, string(c)})
		}
	}
}

// quoted reads up to the closing quote q; a doubled quote is one quote.
func (s *sqlScanner) quoted(q rune) (string, error) {
	var b strings.Builder
	for {
		c, _, err := s.r.ReadRune()
		if err != nil {
			return b.String(), err
		}
		if c == q {
			if n, _ := s.r.Peek(1); len(n) == 1 && rune(n[0]) == q {
				s.r.ReadRune()
				b.WriteRune(q)
				continue
			}
			return b.String(), nil
		}
		if b.Len() < 4096 {
			b.WriteRune(c)
		}
	}
}

func (s *sqlScanner) skipBlockComment() error {
	depth := 1
	for depth > 0 {
		c, _, err := s.r.ReadRune()
		if err != nil {
			return err
		}
		n, _ := s.r.Peek(1)
		switch {
		case c == '*' && len(n) == 1 && n[0] == '/':
			s.r.ReadRune()
			depth--
		case c == '/' && len(n) == 1 && n[0] == '*':
			s.r.ReadRune()
			depth++
		}
	}
	return nil
}

// dollarTag reads after a "$": a tag and its closing "$" make a dollar
// quote; digits make a parameter.
func (s *sqlScanner) dollarTag() (string, bool, error) {
	var tag []rune
	for {
		c, _, err := s.r.ReadRune()
		if err != nil {
			return "", false, err
		}
		if c == '$' {
			return string(tag), true, nil
		}
		if c == '_' || unicode.IsLetter(c) || (len(tag) > 0 && unicode.IsDigit(c)) {
			tag = append(tag, c)
			continue
		}
		s.r.UnreadRune()
		return "", false, nil
	}
}

func (s *sqlScanner) skipDollarBody(tag string) error {
	end := []rune("$" + tag + "$")
	window := make([]rune, 0, len(end))
	for {
		c, _, err := s.r.ReadRune()
		if err != nil {
			return err
		}
		if len(window) == len(end) {
			window = append(window[:0], window[1:]...)
		}
		window = append(window, c)
		if string(window) == string(end) {
			return nil
		}
	}
}
