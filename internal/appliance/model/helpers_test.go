package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cmpOpts compares documents: netip values are comparable with ==.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
	cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// readFixture returns the bytes of a file under testdata.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

// mustDecode decodes data and fails the test on any error.
func mustDecode(t testing.TB, data []byte) *Document {
	t.Helper()
	d, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: unexpected error: %v\ninput: %s", err, abbreviate(data))
	}
	if d == nil {
		t.Fatalf("Decode returned a nil document and no error")
	}
	return d
}

func abbreviate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

// An edit changes a generic JSON tree (as decoded into any) in place.
type edit struct {
	path string
	// op gets the current value at path (and whether it exists) and returns
	// the new value, or keep=false to remove the key or list element.
	op func(t testing.TB, old any, exists bool) (v any, keep bool)
}

// set puts v at path, e.g. set("networks[2].interface.mtu", 9000).
func set(path string, v any) edit {
	return edit{path, func(testing.TB, any, bool) (any, bool) { return v, true }}
}

// del removes the key or list element at path, which must exist.
func del(path string) edit {
	return edit{path, func(t testing.TB, _ any, exists bool) (any, bool) {
		if !exists {
			t.Fatalf("del(%q): nothing there", path)
		}
		return nil, false
	}}
}

// add appends v to the list at path.
func add(path string, v any) edit {
	return edit{path, func(t testing.TB, old any, _ bool) (any, bool) {
		list, ok := old.([]any)
		if !ok {
			t.Fatalf("add(%q): not a list but %T", path, old)
		}
		return append(list, v), true
	}}
}

type step struct {
	key   string
	index int // when key == ""
}

func parsePath(t testing.TB, path string) []step {
	var steps []step
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			steps = append(steps, step{key: name})
		}
		for rest != "" {
			num, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("bad edit path %q", path)
			}
			steps = append(steps, step{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return steps
}

func (e edit) apply(t testing.TB, node any, steps []step) any {
	t.Helper()
	s := steps[0]
	if s.key == "" {
		list, ok := node.([]any)
		if !ok || s.index >= len(list) {
			t.Fatalf("edit %q: no list element %d in %T", e.path, s.index, node)
		}
		if len(steps) > 1 {
			list[s.index] = e.apply(t, list[s.index], steps[1:])
			return list
		}
		v, keep := e.op(t, list[s.index], true)
		if !keep {
			return slices.Delete(list, s.index, s.index+1)
		}
		list[s.index] = v
		return list
	}
	m, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("edit %q: %q is not in an object but in %T", e.path, s.key, node)
	}
	old, exists := m[s.key]
	if len(steps) > 1 {
		if !exists {
			t.Fatalf("edit %q: no key %q", e.path, s.key)
		}
		m[s.key] = e.apply(t, old, steps[1:])
		return m
	}
	v, keep := e.op(t, old, exists)
	if keep {
		m[s.key] = v
	} else {
		delete(m, s.key)
	}
	return m
}

// tree decodes JSON into a generic tree, keeping numbers exact.
func tree(t testing.TB, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("test fixture is not a JSON object: %v", err)
	}
	return m
}

// example returns testdata/example_config.json with the edits applied.
// The base document is valid; the networks are
//
//	[0] management ge0  fdca:3ba5:a17a:acda::/64
//	[1] external   ge1  172.16.77.0/24 (gw .1, router .2), 2001:db8:77::/64
//	[2] internal   ge2  192.168.0.0/24 (.1), fdd6:a1fa:cfa8:9df::/64; allocations .5 and .6
//	[3] internal   ge3  10.1.0.0/24 (.1); no type/conf-service/mtu keys
//
// and floating_ips[0] maps 172.16.77.50 to 192.168.0.5.
func example(t testing.TB, edits ...edit) []byte {
	t.Helper()
	return edited(t, readFixture(t, "example_config.json"), edits...)
}

func edited(t testing.TB, base []byte, edits ...edit) []byte {
	t.Helper()
	var doc any = tree(t, base)
	for _, e := range edits {
		doc = e.apply(t, doc, parsePath(t, e.path))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("marshalling edited document: %v", err)
	}
	return b
}

// wantErr is one expected FieldError: the exact field and part of the message.
type wantErr struct {
	field, msg string
}

// checkFieldErrors asserts that err is a *ValidationError listing exactly
// the wanted errors, in order.
func checkFieldErrors(t testing.TB, err error, want []wantErr) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want *ValidationError with %v", err, err, want)
	}
	var got strings.Builder
	for _, fe := range ve.Errors {
		fmt.Fprintf(&got, "\n\t%s: %s", fe.Field, fe.Msg)
	}
	if len(ve.Errors) != len(want) {
		t.Fatalf("got %d field errors, want %d %v:%s", len(ve.Errors), len(want), want, got.String())
	}
	for i, w := range want {
		fe := ve.Errors[i]
		if fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
			t.Errorf("error[%d] = %q: %q, want field %q and a message containing %q; all errors:%s",
				i, fe.Field, fe.Msg, w.field, w.msg, got.String())
		}
	}
}
