package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/astara-go/astara/internal/appliance/model"
)

// StatusError is an answer other than 200 OK.
type StatusError struct {
	Method, URL string
	Status      int
	// Message is the appliance's error message (or the body's start).
	Message string
	// Fields are the offending fields the appliance named, if any.
	Fields []model.FieldError
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// StaleError is the appliance's 409: it applied a newer generation than the
// document's, so the document was not applied.
type StaleError struct {
	// Generation is the refused document's.
	Generation uint64
	Message    string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("appliance refused generation %d as stale: %s", e.Generation, e.Message)
}

// RejectedError is the appliance's 422 (invalid document) or 400 (a
// service it cannot provide): the document was not applied.
type RejectedError struct {
	Status  int
	Message string
	// Fields name the offending fields (422).
	Fields []model.FieldError
}

func (e *RejectedError) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("appliance rejected the document (%d): %s", e.Status, e.Message)
	}
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return fmt.Sprintf("appliance rejected the document (%d): %s", e.Status, strings.Join(msgs, "; "))
}

// newStatusError reads the API's error body {"error": {"message", "fields"}}.
func newStatusError(method, url string, status int, body []byte) *StatusError {
	e := &StatusError{Method: method, URL: url, Status: status}
	var b struct {
		Error struct {
			Message string `json:"message"`
			Fields  []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"fields"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil && b.Error.Message != "" {
		// The API appends the field messages to the message; keep its headline.
		e.Message, _, _ = strings.Cut(b.Error.Message, "\n")
		for _, f := range b.Error.Fields {
			e.Fields = append(e.Fields, model.FieldError{Field: f.Field, Msg: f.Message})
		}
		return e
	}
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "..."
	}
	return e
}
