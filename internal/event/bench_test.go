package event

import (
	"encoding/json"
	"testing"
)

func benchBodies(b *testing.B) [][]byte {
	var bodies [][]byte
	for _, f := range fixtures(b) {
		bodies = append(bodies, f.Body)
	}
	return bodies
}

// BenchmarkDecodeNormalize decodes and maps the fixture mix.
func BenchmarkDecodeNormalize(b *testing.B) {
	bodies := benchBodies(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := Decode(bodies[i%len(bodies)])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Normalize(&n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNaiveDecode is the baseline: the body and the message each
// decoded into map[string]any.
func BenchmarkNaiveDecode(b *testing.B) {
	bodies := benchBodies(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var env map[string]any
		if err := json.Unmarshal(bodies[i%len(bodies)], &env); err != nil {
			b.Fatal(err)
		}
		var msg map[string]any
		if err := json.Unmarshal([]byte(env["oslo.message"].(string)), &msg); err != nil {
			b.Fatal(err)
		}
	}
}
