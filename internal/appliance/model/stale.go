package model

import "fmt"

// StaleError refuses a document whose generation is older than the applied
// one, so that a stale orchestrator can never roll a router back.
type StaleError struct {
	Got, Applied uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("generation %d is older than the applied generation %d", e.Got, e.Applied)
}
