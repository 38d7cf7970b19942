package event

// A small JSON reader for the hot path. Decoding a notification with
// encoding/json costs about as much as decoding it into map[string]any
// (the message is double-encoded and mostly made of fields nobody reads),
// so the decoder validates the inner message once with json.Valid and then
// walks it with these helpers, which assume valid JSON but never index out
// of range on anything else: on input that is not valid JSON they report
// errBadJSON instead of panicking.

import (
	"bytes"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

var errBadJSON = errors.New("invalid JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the closing quote of the string
// that opens at b[i]; -1 if it is not terminated.
func stringEnd(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		q := i + j
		// The quote is escaped when an odd number of backslashes precedes it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// valueEnd returns the index just past the value that starts at b[i]; -1
// if it is not terminated.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// members iterates over the members of one JSON object.
type members struct {
	b   []byte
	i   int
	err error
}

// objectMembers starts iterating over the object raw; ok is false when raw
// is not an object (null, a string, ...).
func objectMembers(raw []byte) (m members, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return members{}, false
	}
	return members{b: raw, i: i + 1}, true
}

// next returns the next member: its key as it is written between the
// quotes (escapes not decoded) and its raw value. It returns false at the
// end of the object or on an error (see m.err).
func (m *members) next() (key, val []byte, ok bool) {
	if m.err != nil || m.b == nil {
		return nil, nil, false
	}
	b := m.b
	i := skipSpace(b, m.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) {
		m.err = errBadJSON
		return nil, nil, false
	}
	if b[i] == '}' {
		m.b = nil
		return nil, nil, false
	}
	if b[i] != '"' {
		m.err = errBadJSON
		return nil, nil, false
	}
	end := stringEnd(b, i)
	if end < 0 {
		m.err = errBadJSON
		return nil, nil, false
	}
	key = b[i+1 : end-1]
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		m.err = errBadJSON
		return nil, nil, false
	}
	i = skipSpace(b, i+1)
	end = valueEnd(b, i)
	if end < 0 || end == i {
		m.err = errBadJSON
		return nil, nil, false
	}
	m.i = end
	return key, b[i:end], true
}

// keyIs reports whether a raw key (as members.next returns it) is s.
func keyIs(raw []byte, s string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == s
	}
	k, err := unescape(nil, raw)
	return err == nil && string(k) == s
}

// arrayElements iterates over the elements of one JSON array.
type elements struct {
	b   []byte
	i   int
	err error
}

// arrayElements starts iterating over the array raw; ok is false when raw
// is not an array.
func arrayElements(raw []byte) (e elements, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return elements{}, false
	}
	return elements{b: raw, i: i + 1}, true
}

// next returns the next element's raw value, false at the end or on error.
func (e *elements) next() ([]byte, bool) {
	if e.err != nil || e.b == nil {
		return nil, false
	}
	b := e.b
	i := skipSpace(b, e.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) {
		e.err = errBadJSON
		return nil, false
	}
	if b[i] == ']' {
		e.b = nil
		return nil, false
	}
	end := valueEnd(b, i)
	if end < 0 || end == i {
		e.err = errBadJSON
		return nil, false
	}
	e.i = end
	return b[i:end], true
}

// kind names the JSON type of a raw value, for error messages.
func kind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

var errNotString = errors.New("not a string")

// stringValue decodes a raw JSON string value; null decodes to "". Invalid
// UTF-8 becomes U+FFFD, as encoding/json does.
func stringValue(raw []byte) (string, error) {
	if string(raw) == "null" {
		return "", nil
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errNotString
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) && !hasControl(s) {
		return string(s), nil
	}
	u, err := unescape(make([]byte, 0, len(s)), s)
	if err != nil {
		return "", err
	}
	return string(u), nil
}

func hasControl(s []byte) bool {
	for _, c := range s {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// unescape appends to dst the decoded contents of a JSON string (s is what
// lies between the quotes). It rejects what JSON rejects (control
// characters, unknown escapes, a lone backslash) and, like encoding/json,
// turns invalid UTF-8 and unpaired surrogates into U+FFFD.
func unescape(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errBadJSON
			}
			switch s[i+1] {
			case '"', '\\', '/':
				dst = append(dst, s[i+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(s, i+2)
				if !ok {
					return nil, errBadJSON
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2, ok = hex4(s, i+2)
					}
					if ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				return nil, errBadJSON
			}
			i += 2
		case c < 0x20:
			return nil, errBadJSON
		case c < utf8.RuneSelf:
			// Copy the run of plain ASCII up to the next special byte.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst, nil
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
