package model

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of a document.
type FieldError struct {
	// Field is the path of the offending field, e.g. "networks[2].interface.mtu".
	Field string
	Msg   string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// ValidationError lists every problem found in a document.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

// UnsupportedError reports an advanced service this appliance cannot provide.
type UnsupportedError struct {
	Service string
}

func (e *UnsupportedError) Error() string {
	return "this appliance cannot service requested advanced service: " + e.Service
}

// errs accumulates field errors while walking a document.
type errs struct {
	list []FieldError
}

func (e *errs) add(field, format string, args ...any) {
	e.list = append(e.list, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (e *errs) err() error {
	if len(e.list) == 0 {
		return nil
	}
	return &ValidationError{Errors: e.list}
}

func idx(base string, i int) string { return fmt.Sprintf("%s[%d]", base, i) }
