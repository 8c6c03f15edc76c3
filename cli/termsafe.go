package cli

import (
	"fmt"
	"io"
	"strconv"
	"unicode"
)

// Names in pgattest's human output come from databases and archives:
// whoever can create a table, a role or a schema writes them. A name with
// terminal controls in it (ESC [2K erases a line, ESC [1A moves up) could
// hide or forge lines on the screen of whoever reads the evidence. Two
// layers keep the screen pgattest's:
//
//   - termSafe, around stdout and stderr, shows every control byte but
//     newline and tab as \xNN (a C1 control as \u00NN), whatever printed it (a name, an error of
//     pg_restore's, a tool's output). pgattest's own live progress line
//     writes its carriage return and erase around it, to the raw stream.
//   - safe, at the places that print a name, shows a name holding any
//     control (newline included: a line of its own would look like
//     pgattest's) as a quoted Go string, so it reads as one value.
//
// JSON is left exact: encoding/json escapes controls itself.

// termSafe escapes control bytes (C0 but \n and \t, and DEL) written
// through it, unless off says the output is JSON.
type termSafe struct {
	w   io.Writer
	off func() bool
}

func (t *termSafe) Write(p []byte) (int, error) {
	if t.off != nil && t.off() {
		return t.w.Write(p)
	}
	clean := true
	for i, b := range p {
		if isControlByte(b) || isC1(p, i) {
			clean = false
			break
		}
	}
	if clean {
		return t.w.Write(p)
	}
	out := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch {
		case isControlByte(b):
			out = fmt.Appendf(out, `\x%02x`, b)
		case isC1(p, i): // U+0080–U+009F: some terminals take U+009B for ESC [
			out = fmt.Appendf(out, `\u%04x`, p[i+1])
			i++
		default:
			out = append(out, b)
		}
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// isC1 says whether p[i:] starts with a C1 control in UTF-8 (0xC2
// 0x80–0x9F).
func isC1(p []byte, i int) bool {
	return p[i] == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f
}

func isControlByte(b byte) bool {
	return (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f
}

// safe returns s as it is when it holds no control character (C0, DEL,
// C1; newline and tab included) nor invalid UTF-8, and otherwise quoted as
// a Go string ("a\nb", "\x1b[2K…"), which says exactly what is there.
func safe(s string) string {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// safeText is safe for a sentence of pgattest's that holds names: the
// controls shown escaped as safe does, without the quotes around it all.
func safeText(s string) string {
	if q := safe(s); q != s {
		return q[1 : len(q)-1]
	}
	return s
}
