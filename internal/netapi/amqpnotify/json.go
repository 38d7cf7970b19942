package amqpnotify

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// jsonString encodes raw JSON text as a JSON string, the way the oslo v2
// envelope carries its message.
func jsonString(raw []byte) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(raw)); err != nil {
		return "", fmt.Errorf("encode message: %w", err)
	}
	return string(bytes.TrimRight(b.Bytes(), "\n")), nil
}
