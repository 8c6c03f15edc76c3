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
	// held is a 0xC2 that ended the last write: the first byte of a C1
	// control, maybe, whose second byte comes next (Flush writes it).
	held bool
}

// Flush writes a byte held back at the end of the last write.
func (t *termSafe) Flush() {
	if t.held {
		t.held = false
		t.w.Write([]byte{0xc2})
	}
}

func (t *termSafe) Write(p []byte) (int, error) {
	if t.off != nil && t.off() {
		t.Flush()
		return t.w.Write(p)
	}
	n := len(p)
	if t.held { // joined to what follows it, checked together
		t.held = false
		p = append([]byte{0xc2}, p...)
	}
	if len(p) > 0 && p[len(p)-1] == 0xc2 {
		t.held, p = true, p[:len(p)-1]
	}
	if err := t.write(p); err != nil {
		return 0, err
	}
	return n, nil
}

func (t *termSafe) write(p []byte) error {
	clean := true
	for i, b := range p {
		if isControlByte(b) || isC1(p, i) {
			clean = false
			break
		}
	}
	if clean {
		_, err := t.w.Write(p)
		return err
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
	_, err := t.w.Write(out)
	return err
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
