// Package memotest checks the hand-written equality and deep copy that the
// daemon drivers (dhcp, bird) use to recognize a Spec they have already
// validated and rendered: one field they forget, and a changed Spec would
// be taken for the old one.
//
// It walks a sample value by reflection and changes every field it reaches,
// one at a time (each leaf, each slice's length, each map's keys and values,
// each pointer's nil-ness); a field added to the Spec or to the model types
// it contains is changed too, so the check fails until equal compares it.
package memotest

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
)

// Check verifies, for every field reachable from sample() (a fresh value on
// every call, with every pointer, slice and map filled), that equal(v, c)
// is false when v is a value with that field changed and c the clone made
// of it before the change; and that clone shares nothing: c keeps its
// contents when v changes.
func Check[T any](t *testing.T, sample func() T, equal func(a, b *T) bool, clone func(*T) T) {
	t.Helper()
	orig := sample()
	if c := clone(&orig); !equal(&orig, &c) || !reflect.DeepEqual(orig, c) {
		t.Fatalf("a clone is not equal to its original")
	}
	ms := mutations(t, reflect.ValueOf(orig), "spec", func(v reflect.Value) reflect.Value { return v })
	if len(ms) == 0 {
		t.Fatal("nothing to change in the sample")
	}
	for _, m := range ms {
		work := sample()
		c := clone(&work)
		m.apply(reflect.ValueOf(&work).Elem())
		if equal(&work, &c) {
			t.Errorf("equal does not see a change of %s", m.path)
		}
		if pristine := sample(); !reflect.DeepEqual(c, pristine) {
			t.Errorf("clone shares %s with its original: changing the original changed the clone", m.path)
		}
	}
}

type mutation struct {
	path  string
	apply func(root reflect.Value)
}

// mutations lists the changes of the value v (found in a root at path by
// get) and of everything it contains.
func mutations(t *testing.T, v reflect.Value, path string, get func(reflect.Value) reflect.Value) []mutation {
	t.Helper()
	typ := v.Type()
	if _, ok := leafTypes[typ]; ok || isBasic(typ.Kind()) {
		return []mutation{{path, func(r reflect.Value) {
			f := get(r)
			f.Set(other(t, f))
		}}}
	}
	switch typ.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if v.IsNil() || (typ.Kind() != reflect.Pointer && v.Len() == 0) {
			t.Errorf("the sample leaves %s empty: fill it, so that the clone can be checked for sharing it", path)
		}
	}
	var ms []mutation
	switch typ.Kind() {
	case reflect.Struct:
		for i := range typ.NumField() {
			sf := typ.Field(i)
			if !sf.IsExported() {
				t.Fatalf("%s has unexported fields (%s): teach memotest about %v", path, sf.Name, typ)
			}
			ms = append(ms, mutations(t, v.Field(i), path+"."+sf.Name, func(r reflect.Value) reflect.Value { return get(r).Field(i) })...)
		}
	case reflect.Pointer:
		if v.IsNil() {
			ms = append(ms, mutation{path + " (nil to set)", func(r reflect.Value) { get(r).Set(reflect.New(typ.Elem())) }})
			break
		}
		ms = append(ms, mutation{path + " (set to nil)", func(r reflect.Value) { get(r).SetZero() }})
		ms = append(ms, mutations(t, v.Elem(), path, func(r reflect.Value) reflect.Value { return get(r).Elem() })...)
	case reflect.Slice:
		ms = append(ms, mutation{path + " (one more)", func(r reflect.Value) {
			s := get(r)
			s.Set(reflect.Append(s, reflect.Zero(typ.Elem())))
		}})
		if v.Len() > 0 {
			ms = append(ms, mutation{path + " (one less)", func(r reflect.Value) {
				s := get(r)
				s.Set(s.Slice(0, s.Len()-1))
			}})
		}
		for j := range v.Len() {
			ms = append(ms, mutations(t, v.Index(j), fmt.Sprintf("%s[%d]", path, j), func(r reflect.Value) reflect.Value { return get(r).Index(j) })...)
		}
	case reflect.Map:
		if _, ok := leafTypes[typ.Elem()]; !ok && !isBasic(typ.Elem().Kind()) {
			t.Fatalf("%s: map values of type %v: teach memotest about them", path, typ.Elem())
		}
		ms = append(ms, mutation{path + " (new key)", func(r reflect.Value) {
			m := get(r)
			if m.IsNil() {
				m.Set(reflect.MakeMap(typ))
			}
			m.SetMapIndex(newKey(t, m), reflect.Zero(typ.Elem()))
		}})
		for _, k := range v.MapKeys() {
			ms = append(ms,
				mutation{fmt.Sprintf("%s[%v] (deleted)", path, k), func(r reflect.Value) { get(r).SetMapIndex(k, reflect.Value{}) }},
				mutation{fmt.Sprintf("%s[%v]", path, k), func(r reflect.Value) {
					m := get(r)
					m.SetMapIndex(k, other(t, m.MapIndex(k)))
				}})
		}
	default:
		t.Fatalf("%s has type %v: teach memotest about it", path, typ)
	}
	return ms
}

func isBasic(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// leafTypes are compared as a whole; each maps to two distinct values.
var leafTypes = map[reflect.Type][2]any{
	reflect.TypeFor[netip.Addr]():   {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8:7::7")},
	reflect.TypeFor[netip.Prefix](): {netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:7::/64")},
}

// other returns a value of v's type that differs from v.
func other(t *testing.T, v reflect.Value) reflect.Value {
	t.Helper()
	if alts, ok := leafTypes[v.Type()]; ok {
		if v.Interface() == alts[0] {
			return reflect.ValueOf(alts[1])
		}
		return reflect.ValueOf(alts[0])
	}
	n := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.String:
		n.SetString(v.String() + "x")
	case reflect.Bool:
		n.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.SetUint(v.Uint() + 1)
	default:
		t.Fatalf("no other value for %v", v.Type())
	}
	return n
}

// newKey returns a key that map m does not have.
func newKey(t *testing.T, m reflect.Value) reflect.Value {
	t.Helper()
	k := reflect.Zero(m.Type().Key())
	for i := 0; m.MapIndex(k).IsValid(); i++ {
		if i == 100 {
			t.Fatalf("no new key for %v", m.Type())
		}
		if k.Type() == reflect.TypeFor[netip.Addr]() {
			k = reflect.ValueOf(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
			continue
		}
		k = other(t, k)
	}
	return k
}
