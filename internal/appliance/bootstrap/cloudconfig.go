package bootstrap

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads the one thing the appliance needs from a cloud-config: the
// items of its top-level "bootcmd" sequence. It understands the YAML that
// cloud-config authors write for it (block and flow sequences, plain, quoted
// and block scalars, comments) without a YAML library; anything else in the
// document is skipped.

// node is a YAML scalar or sequence.
type node struct {
	scalar string
	list   []node
	isList bool
}

// bootcmd returns the items of the top-level bootcmd sequence.
func bootcmd(doc string) ([]node, error) {
	lines := strings.Split(strings.ReplaceAll(doc, "\r\n", "\n"), "\n")
	start := -1
	var rest string
	for i, l := range lines {
		if r, ok := strings.CutPrefix(l, "bootcmd"); ok {
			if r, ok = strings.CutPrefix(strings.TrimLeft(r, " \t"), ":"); ok && (r == "" || r[0] == ' ' || r[0] == '\t') {
				start, rest = i, r
				break
			}
		}
	}
	if start < 0 {
		return nil, errors.New("no bootcmd in the cloud-config (nor a JSON document)")
	}
	rest = strings.TrimSpace(rest)
	if rest != "" && rest[0] != '#' {
		if rest[0] != '[' {
			return nil, errors.New("bootcmd: must be a list")
		}
		// A flow sequence, possibly spanning lines.
		text := strings.Join(append([]string{rest}, lines[start+1:]...), "\n")
		n, _, err := parseFlow(text)
		if err != nil {
			return nil, fmt.Errorf("bootcmd: %w", err)
		}
		return n.list, nil
	}
	// A block sequence: the lines up to the next top-level key. Items may
	// start at column 0 ("bootcmd:\n- x").
	end := start + 1
	for ; end < len(lines); end++ {
		l := lines[end]
		if isBlank(l) || indentOf(l) > 0 {
			continue
		}
		if l == "---" || l == "..." || !isSeqEntry(l) {
			break
		}
	}
	items, err := parseBlockSeq(lines[start+1 : end])
	if err != nil {
		return nil, fmt.Errorf("bootcmd: %w", err)
	}
	return items, nil
}

// isBlank reports whether a line has no content (empty, spaces or a comment).
func isBlank(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return t == "" || t[0] == '#'
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

// isSeqEntry reports whether the content of a line starts a sequence entry.
func isSeqEntry(l string) bool {
	t := strings.TrimLeft(l, " ")
	return t == "-" || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "-\t")
}

// parseBlockSeq parses the lines of a block sequence (all entries at the
// indentation of the first one).
func parseBlockSeq(lines []string) ([]node, error) {
	var items []node
	ind := -1
	for i := 0; i < len(lines); {
		l := lines[i]
		if isBlank(l) {
			i++
			continue
		}
		if ind < 0 {
			ind = indentOf(l)
		}
		if indentOf(l) != ind || !isSeqEntry(l) {
			return nil, fmt.Errorf("line %q: expected a list item (\"- ...\")", strings.TrimSpace(l))
		}
		// The entry's continuation lines are the more indented ones.
		j := i + 1
		for j < len(lines) && (isBlank(lines[j]) || indentOf(lines[j]) > ind) {
			j++
		}
		n, err := parseEntry(l[ind+1:], ind+1, lines[i+1:j])
		if err != nil {
			return nil, err
		}
		items = append(items, n)
		i = j
	}
	return items, nil
}

// parseEntry parses one sequence entry: head is the text after its "-", at
// column col; cont are its continuation lines.
func parseEntry(head string, col int, cont []string) (node, error) {
	trimmed := strings.TrimLeft(head, " \t")
	col += len(head) - len(trimmed)
	head = trimmed
	switch {
	case head == "" || head[0] == '#':
		// The value starts on the next line.
		for k, l := range cont {
			if isBlank(l) {
				continue
			}
			if isSeqEntry(l) {
				items, err := parseBlockSeq(cont[k:])
				return node{list: items, isList: true}, err
			}
			return parseScalar(strings.TrimLeft(l, " "), cont[k+1:])
		}
		return node{}, nil // an empty (null) entry
	case isSeqEntry(head):
		// A nested sequence whose first entry shares this line.
		first := strings.Repeat(" ", col) + head
		items, err := parseBlockSeq(append([]string{first}, cont...))
		return node{list: items, isList: true}, err
	case head[0] == '[':
		n, rest, err := parseFlow(strings.Join(append([]string{head}, cont...), "\n"))
		if err == nil && skipSpaceAndComments(rest) != "" {
			err = fmt.Errorf("unexpected %q after a list", strings.TrimSpace(rest))
		}
		return n, err
	case head[0] == '|' || head[0] == '>':
		return node{scalar: blockScalar(head[0] == '>', cont)}, nil
	default:
		return parseScalar(head, cont)
	}
}

// blockScalar returns the content of a literal (|) or folded (>) scalar.
func blockScalar(folded bool, cont []string) string {
	ind := -1
	var out []string
	for _, l := range cont {
		if strings.TrimSpace(l) == "" {
			out = append(out, "")
			continue
		}
		if ind < 0 {
			ind = indentOf(l)
		}
		out = append(out, l[min(ind, indentOf(l)):])
	}
	if !folded {
		return strings.Join(out, "\n")
	}
	var b strings.Builder
	for i, l := range out {
		if i > 0 {
			if l == "" || out[i-1] == "" {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// parseScalar parses a block-context scalar starting with first and possibly
// continued (folded) on the lines of cont.
func parseScalar(first string, cont []string) (node, error) {
	text := first
	for _, l := range cont {
		text += "\n" + l
	}
	switch first[0] {
	case '"', '\'':
		s, rest, err := parseQuoted(text)
		if err != nil {
			return node{}, err
		}
		if skipSpaceAndComments(rest) != "" {
			return node{}, fmt.Errorf("unexpected %q after a quoted string", strings.TrimSpace(rest))
		}
		return node{scalar: s}, nil
	}
	var words []string
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
			words = append(words, l)
		}
	}
	return node{scalar: strings.Join(words, " ")}, nil
}

// parseQuoted parses a single- or double-quoted scalar at the start of s and
// returns its value and what follows it. Line breaks inside fold to spaces.
func parseQuoted(s string) (string, string, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == q:
			return b.String(), s[i+1:], nil
		case c == '\n':
			// Fold the break and the next line's indentation into a space.
			for i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
				i++
			}
			b.WriteByte(' ')
		case c == '\\' && q == '"':
			if i+1 >= len(s) {
				return "", "", errors.New("unterminated escape in a quoted string")
			}
			i++
			n, err := unescape(s[i:], &b)
			if err != nil {
				return "", "", err
			}
			i += n - 1
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated quoted string %.40q", s)
}

// unescape writes the value of the escape sequence at the start of s (after
// the backslash) and returns its length.
func unescape(s string, b *strings.Builder) (int, error) {
	simple := map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n",
		'v': "\v", 'f': "\f", 'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\"}
	if v, ok := simple[s[0]]; ok {
		b.WriteString(v)
		return 1, nil
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[0]]
	if width == 0 || len(s) < 1+width {
		return 0, fmt.Errorf("unknown escape \\%c in a quoted string", s[0])
	}
	r, err := strconv.ParseUint(s[1:1+width], 16, 32)
	if err != nil || !utf8.ValidRune(rune(r)) {
		return 0, fmt.Errorf("bad escape \\%s in a quoted string", s[:1+width])
	}
	b.WriteRune(rune(r))
	return 1 + width, nil
}

// parseFlow parses a flow sequence "[a, 'b', [c]]" at the start of s and
// returns it and what follows it.
func parseFlow(s string) (node, string, error) {
	if s == "" || s[0] != '[' {
		return node{}, s, errors.New("expected '['")
	}
	s = s[1:]
	var items []node
	for {
		s = skipSpaceAndComments(s)
		if s == "" {
			return node{}, "", errors.New("unterminated list: missing ']'")
		}
		if s[0] == ']' {
			return node{list: items, isList: true}, s[1:], nil
		}
		var n node
		var err error
		switch s[0] {
		case '[':
			n, s, err = parseFlow(s)
		case '"', '\'':
			n.scalar, s, err = parseQuoted(s)
		case ',':
			return node{}, "", errors.New("empty list item")
		default:
			end := strings.IndexAny(s, ",]\n")
			if c := strings.Index(s, " #"); c >= 0 && (end < 0 || c < end) {
				end = c
			}
			if end < 0 {
				return node{}, "", errors.New("unterminated list: missing ']'")
			}
			n.scalar, s = strings.TrimSpace(s[:end]), s[end:]
			// A plain scalar may continue on the next line.
			for strings.HasPrefix(s, "\n") {
				t := skipSpaceAndComments(s)
				if t == "" || t[0] == ',' || t[0] == ']' {
					break
				}
				end = strings.IndexAny(t, ",]\n")
				if end < 0 {
					return node{}, "", errors.New("unterminated list: missing ']'")
				}
				n.scalar += " " + strings.TrimSpace(t[:end])
				s = t[end:]
			}
		}
		if err != nil {
			return node{}, "", err
		}
		items = append(items, n)
		s = skipSpaceAndComments(s)
		switch {
		case strings.HasPrefix(s, ","):
			s = s[1:]
		case strings.HasPrefix(s, "]"):
		case s == "":
			return node{}, "", errors.New("unterminated list: missing ']'")
		default:
			return node{}, "", errors.New("expected ',' or ']' in a list")
		}
	}
}

// skipSpaceAndComments skips white space, line breaks and comments.
func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\n")
		if !strings.HasPrefix(s, "#") {
			return s
		}
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i:]
		} else {
			return ""
		}
	}
}

// shellCommands splits a shell script into simple commands (split at line
// breaks, ';', '&', '|'), each a list of words with quotes and backslashes
// resolved. It is enough to find a command and its literal arguments.
func shellCommands(script string) [][]string {
	var cmds [][]string
	var cmd []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			cmd = append(cmd, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(cmd) > 0 {
			cmds = append(cmds, cmd)
			cmd = nil
		}
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == '<' || c == '>':
			// A redirection is not an argument: drop it, its file
			// descriptor ("2>") and its target.
			if isDigits(w.String()) {
				w.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(script) && strings.IndexByte("<>&|", script[i+1]) >= 0 {
				i++
			}
			for i+1 < len(script) && (script[i+1] == ' ' || script[i+1] == '\t') {
				i++
			}
			for i+1 < len(script) && strings.IndexByte(" \t\n;&|()<>", script[i+1]) < 0 {
				i++
			}
		case c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')':
			endCmd()
		case c == '#' && !inWord:
			for i < len(script) && script[i] != '\n' {
				i++
			}
			endCmd()
		case c == '\\':
			if i+1 < len(script) {
				i++
				if script[i] != '\n' { // a backslash-newline continues the line
					w.WriteByte(script[i])
					inWord = true
				}
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(script[i+1:], '\'')
			if j < 0 {
				j = len(script) - i - 1
			}
			w.WriteString(script[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(script) && script[i] != '"'; i++ {
				if script[i] == '\\' && i+1 < len(script) && strings.IndexByte("\"\\$`\n", script[i+1]) >= 0 {
					i++
				}
				w.WriteByte(script[i])
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
