package netapi

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// object is a JSON object whose members keep their order, as Neutron's
// responses list them.
type object []member

type member struct {
	Key   string
	Value any
}

func (o *object) add(k string, v any) { *o = append(*o, member{k, v}) }

// get returns the value of member k.
func (o object) get(k string) (any, bool) {
	for _, m := range o {
		if m.Key == k {
			return m.Value, true
		}
	}
	return nil, false
}

// only returns the members of o named in keep, in o's order.
func (o object) only(keep []string) object {
	out := make(object, 0, len(keep))
	for _, m := range o {
		for _, k := range keep {
			if m.Key == k {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// MarshalJSON encodes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteString(", ")
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteString(": ")
		v, err := marshal(m.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Key, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal encodes v without escaping HTML characters, as Python's json does.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// orEmpty returns s, or an empty slice (JSON []) for nil.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
