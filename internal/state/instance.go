// Package state holds the states and transitions of a resource's state
// machine, and the contract it drives: the instance manager.
package state

import (
	"context"
	"fmt"
	"time"
)

// InstanceState is what the instance manager knows of a resource's service
// instance (astara/drivers/states.py).
type InstanceState uint8

// The instance states.
const (
	Down       InstanceState = iota // no instance, or it does not answer
	Booting                         // booted, not answering yet
	Up                              // answering, not configured (or configuration unknown)
	Configured                      // answering and running the current configuration
	Restart                         // must be replaced (e.g. wrong NICs that cannot be fixed)
	Replug                          // NICs do not match the resource's networks
	Gone                            // the resource no longer exists: delete the instance
	Error                           // too many failed boots; waiting for an operator or a cooldown
	Degraded                        // an HA pair lacks a member
)

var instanceStateNames = [...]string{"down", "booting", "up", "configured", "restart", "replug", "gone", "error", "degraded"}

func (s InstanceState) String() string {
	if int(s) < len(instanceStateNames) {
		return instanceStateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText encodes the state by name.
func (s InstanceState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Instance is the state machine's view of a resource's instance manager.
// Methods that reach the cloud take a context and report what they found
// as the returned state (the reference's instance manager, minus its bugs).
// Implementations are not required to be safe for concurrent use: a state
// machine runs on one goroutine at a time.
type Instance interface {
	// State is the last known state.
	State() InstanceState
	// UpdateState re-reads the compute and network APIs and the appliance:
	// Gone if the resource is gone; Down without an instance (or when a
	// configured one stopped answering); Booting until it answers; Up when
	// it answers but does not run the current configuration; Configured
	// when it does (an instance that survived an orchestrator restart and
	// already runs the current configuration is Configured, not Up).
	UpdateState(ctx context.Context) InstanceState
	// Boot creates the service instance and its ports, after deleting a
	// leftover one, and counts the attempt. The state becomes Booting, or
	// stays Down when the boot failed.
	Boot(ctx context.Context) error
	// Configure pushes the configuration document: Configured on success,
	// Replug when the instance's NICs do not match the resource's
	// networks, Restart/Down/Gone otherwise.
	Configure(ctx context.Context) InstanceState
	// Replug attaches and detaches ports so the NICs match the networks:
	// Replug when done (configure next), Restart when it cannot.
	Replug(ctx context.Context) InstanceState
	// Stop deletes the instance and the appliance's ports: Down, or Gone
	// when the resource itself is gone. Stop is idempotent.
	Stop(ctx context.Context) InstanceState
	// SetError marks the resource in error (after too many failed boots).
	SetError(ctx context.Context)
	// ClearError resets the error and the boot counter; the state is Down.
	ClearError(ctx context.Context)
	// BootAttempts counts boots since the last successful configuration.
	BootAttempts() int
	// ResetBootCounter forgets failed boots (operator rebuild).
	ResetBootCounter()
	// BootStarted is when the current instance was booted (zero if none is
	// booting): with the boot timeout it bounds how long Booting may last.
	BootStarted() time.Time
	// SetImage makes the next boots use image (rebuild with an image); ""
	// restores the configured default.
	SetImage(image string)
}
