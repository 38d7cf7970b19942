package state

import (
	"context"
	"fmt"
	"time"

	"github.com/astara-go/astara/internal/event"
)

// Name names a state of the machine (the original's State classes).
type Name uint8

// The states. The zero value is CalcAction, where a machine rests.
const (
	CalcAction        Name = iota // coalesce the queue into the next action
	Alive                         // re-read the instance's state
	CreateInstance                // boot an instance (or go to ERROR)
	CheckBoot                     // is the booting instance answering yet?
	ConfigureInstance             // push the configuration
	PushUpdate                    // the push did not take: retry it later
	ReplugInstance                // make the NICs match the networks
	StopInstance                  // delete the instance
	RebuildInstance               // replace the instance (optionally with a new image)
	ClearError                    // leave ERROR and re-enter management
	ReadStats                     // read statistics (reserved: nothing emits READ)
	Exit                          // the resource is gone: forget the machine
)

var names = [...]string{"CalcAction", "Alive", "CreateInstance", "CheckBoot", "ConfigureInstance", "PushUpdate",
	"ReplugInstance", "StopInstance", "RebuildInstance", "ClearError", "ReadStats", "Exit"}

func (n Name) String() string {
	if int(n) < len(names) {
		return names[n]
	}
	return fmt.Sprintf("Name(%d)", uint8(n))
}

// MarshalText encodes the state by name.
func (n Name) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UsesQueue reports whether the state reads or writes Machine.Queue. Those
// states do no I/O, so a caller sharing the queue with the goroutine that
// receives events can run them under its lock, and run the others (which
// call the instance manager) without it.
func (n Name) UsesQueue() bool { return n == CalcAction || n == PushUpdate }

// Wait says why a machine stopped before returning to rest, and what may
// wake it before its delay ends.
type Wait uint8

// The waits.
const (
	NoWait Wait = iota
	// WaitBoot: the instance is booting; re-check it after the delay. Any
	// event may wake the machine earlier (it rests in CalcAction).
	WaitBoot
	// WaitRetry: a step failed; retry it after a backoff. Only a DELETE or
	// an operator command wakes the machine earlier, in CalcAction.
	WaitRetry
	// WaitHold: the resource is in ERROR within its cooldown; the queued
	// events are held, not dropped, until the cooldown ends. Only a DELETE
	// or an operator command wakes the machine earlier.
	WaitHold
)

var waitNames = [...]string{"", "boot", "retry", "hold"}

func (w Wait) String() string {
	if int(w) < len(waitNames) {
		return waitNames[w]
	}
	return fmt.Sprintf("Wait(%d)", uint8(w))
}

// MarshalText encodes the wait by name.
func (w Wait) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// Env is what a step may use besides the machine and its instance.
type Env struct {
	Now    time.Time
	Config Config
	// Jitter returns a random number in [0, n) for retry backoffs; nil
	// means no jitter.
	Jitter func(n int64) int64
}

// Outcome is what one step did.
type Outcome struct {
	From, To Name
	// Action is the machine's action after the step.
	Action event.Action
	// Instance is the instance's state after the step.
	Instance InstanceState
	// Wait, when not NoWait, says the machine must not run again before
	// Delay has passed (unless woken as Wait describes); it then resumes
	// in To.
	Wait  Wait
	Delay time.Duration
	// Err is what went wrong in the step, if anything: the resource's
	// last error, for operators.
	Err error
}

// StatsReader is implemented by instance managers that can read an
// instance's statistics (the ReadStats state); it is optional.
type StatsReader interface {
	ReadStats(ctx context.Context) error
}

// Machine is one resource's state machine: where it is, what it is doing,
// and its queue. The zero value is a machine at rest in CalcAction.
//
// Queue, Image and Forced are written by whoever receives events for the
// resource; only CalcAction and PushUpdate read or write them (see
// Name.UsesQueue). The rest belongs to the goroutine running Step.
type Machine struct {
	// State is where the machine is; Step executes it.
	State Name
	// Action is the action being performed (sticky: it is where the next
	// coalescing starts).
	Action event.Action
	// Forced is set when an operator command is queued: the error cooldown
	// does not hold it. CalcAction clears it when the queue empties.
	Forced bool

	next     Name  // where ClearError goes
	failures uint8 // consecutive failed steps: the backoff exponent
	replugs  uint8 // replugs since the last successful configuration

	// Queue holds the actions received and not yet coalesced.
	Queue Queue
	// Image is the image of the queued REBUILD ("" for the default).
	Image string

	rebuildImage string // the image of the REBUILD in progress
	errorAt      int64  // when the resource entered ERROR (Unix ns), 0 if unknown
	bootSeen     int64  // when this machine first saw the instance booting (Unix ns)
}

// Failures returns how many steps failed in a row.
func (m *Machine) Failures() int { return int(m.failures) }

// RebuildImage returns the image of the rebuild in progress.
func (m *Machine) RebuildImage() string { return m.rebuildImage }

// ErrorSince returns when the resource entered ERROR (zero if it is not, or
// if the machine does not know).
func (m *Machine) ErrorSince() time.Time {
	if m.errorAt == 0 {
		return time.Time{}
	}
	return time.Unix(0, m.errorAt)
}

// Step executes the current state and takes its transition. It calls inst
// (except in CalcAction and PushUpdate) and never blocks otherwise.
func (m *Machine) Step(ctx context.Context, inst Instance, env Env) Outcome {
	out := Outcome{From: m.State, To: CalcAction}
	switch m.State {
	case CalcAction:
		m.calcAction(inst, env, &out)
	case Alive:
		m.alive(ctx, inst, &out)
	case CreateInstance:
		m.createInstance(ctx, inst, env, &out)
	case CheckBoot:
		m.checkBoot(ctx, inst, env, &out)
	case ConfigureInstance:
		m.configureInstance(ctx, inst, env, &out)
	case PushUpdate:
		m.pushUpdate(env, &out)
	case ReplugInstance:
		m.replugInstance(ctx, inst, &out)
	case StopInstance:
		m.stopInstance(ctx, inst, env, &out)
	case RebuildInstance:
		m.rebuildInstance(ctx, inst, env, &out)
	case ClearError:
		m.clearError(ctx, inst, &out)
	case ReadStats:
		m.readStats(ctx, inst, &out)
	case Exit:
		out.To = Exit
	default:
		out.Err = fmt.Errorf("unknown state %d", m.State)
	}
	m.State = out.To
	out.Action = m.Action
	out.Instance = inst.State()
	return out
}

// retry makes the machine retry to after a backoff.
func (m *Machine) retry(to Name, env Env, out *Outcome) {
	out.To, out.Wait, out.Delay = to, WaitRetry, env.Config.Backoff(int(m.failures), env.Jitter)
	if m.failures < 63 {
		m.failures++
	}
}

// calcAction rests the machine: it coalesces the queue into the next
// action and picks the state that performs it.
func (m *Machine) calcAction(inst Instance, env Env, out *Outcome) {
	// execute
	if m.Action == event.None {
		m.Action = event.Poll // the original's initial action
	}
	st := inst.State()
	if st == Error {
		now := env.Now.UnixNano()
		if m.errorAt == 0 {
			m.errorAt = now
		}
		m.Queue.Remove(event.Poll) // polls are ignored in ERROR
		if m.Queue.Len() == 0 {
			return
		}
		if end := m.errorAt + int64(env.Config.ErrorStateCooldown); now < end && !m.Forced && !m.Queue.Contains(event.Delete) {
			// The original consumed and ignored these events; hold them.
			out.Wait, out.Delay = WaitHold, time.Duration(end-now)
			return
		}
	}
	m.Action = Coalesce(m.Action, &m.Queue, st)
	if m.Action == event.Rebuild {
		m.rebuildImage, m.Image = m.Image, ""
	}
	if m.Queue.Len() == 0 {
		m.Forced = false
	}

	// transition
	var next Name
	switch {
	case st == Gone, m.Action == event.Delete:
		next = StopInstance
	case m.Action == event.Rebuild:
		next = RebuildInstance
	case m.Action == event.ClusterRebuild && (st == Degraded || st == Down):
		next = CreateInstance
	case st == Booting:
		next = CheckBoot
	case st == Down, st == Degraded:
		next = CreateInstance
	default:
		next = Alive
	}
	if st == Error {
		if m.Action == event.Poll {
			return
		}
		m.next, next = next, ClearError
	}
	out.To = next
}

// alive re-reads the instance and decides what it needs.
func (m *Machine) alive(ctx context.Context, inst Instance, out *Outcome) {
	st := inst.UpdateState(ctx)
	switch {
	case st == Gone:
		out.To = StopInstance
	case st == Down, st == Degraded:
		out.To = CreateInstance
	case st == Booting: // the original went on to configure it
		out.To = CheckBoot
	case st == Configured && m.Action == event.Poll:
		out.To = CalcAction // healthy and configured: nothing to push
	case st == Configured && m.Action == event.Read:
		out.To = ReadStats
	default:
		out.To = ConfigureInstance
	}
}

// createInstance boots an instance, or puts the resource in ERROR after too
// many failed boots.
func (m *Machine) createInstance(ctx context.Context, inst Instance, env Env, out *Outcome) {
	if st := inst.State(); st != Degraded && inst.BootAttempts() >= env.Config.RebootErrorThreshold {
		inst.SetError(ctx)
		m.errorAt = env.Now.UnixNano()
		m.failures = 0
		out.Err = fmt.Errorf("%d boots failed: resource in error", inst.BootAttempts())
	} else if err := inst.Boot(ctx); err != nil {
		out.Err = fmt.Errorf("boot: %w", err)
	}
	switch inst.State() {
	case Gone:
		out.To = StopInstance
	case Error:
		out.To = CalcAction
	case Down: // the boot failed: retry after a backoff, not at once
		m.retry(CreateInstance, env, out)
	default:
		m.failures = 0
		out.To = CheckBoot
	}
}

// checkBoot re-checks a booting instance; it replaces an instance that has
// been booting longer than the boot timeout.
func (m *Machine) checkBoot(ctx context.Context, inst Instance, env Env, out *Outcome) {
	st := inst.UpdateState(ctx)
	if st != Booting {
		m.bootSeen = 0
	}
	switch st {
	case Replug:
		out.To = ReplugInstance
	case Down, Gone:
		out.To = StopInstance
	case Up:
		out.To = ConfigureInstance
	case Booting:
		started := inst.BootStarted()
		if started.IsZero() {
			if m.bootSeen == 0 {
				m.bootSeen = env.Now.UnixNano()
			}
			started = time.Unix(0, m.bootSeen)
		}
		left := started.Add(env.Config.BootTimeout).Sub(env.Now)
		if left <= 0 {
			m.bootSeen = 0
			out.Err = fmt.Errorf("boot timed out: booting since %s, boot_timeout is %s",
				started.UTC().Format(time.RFC3339), env.Config.BootTimeout)
			out.To = StopInstance // then boot again, which counts the attempt
			return
		}
		out.To, out.Wait, out.Delay = CalcAction, WaitBoot, min(env.Config.BootCheckInterval, left)
	default:
		out.To = CalcAction
	}
}

// configureInstance pushes the configuration.
func (m *Machine) configureInstance(ctx context.Context, inst Instance, env Env, out *Outcome) {
	st := inst.Configure(ctx)
	if st == Configured {
		m.replugs, m.failures = 0, 0
		if m.Action != event.Read {
			m.Action = event.Poll
		}
	}
	switch {
	case st == Replug:
		switch {
		case int(m.replugs) >= env.Config.MaxReplugs:
			out.Err = fmt.Errorf("NICs still mismatched after %d replugs: replacing the instance", m.replugs)
			m.replugs = 0
			out.To = StopInstance
		case m.replugs > 0: // the original looped here without yielding
			m.retry(ReplugInstance, env, out)
		default:
			out.To = ReplugInstance
		}
	case st == Restart, st == Down, st == Gone:
		if st != Gone {
			out.Err = fmt.Errorf("configure: instance is %s", st)
		}
		out.To = StopInstance
	case st == Up:
		out.Err = fmt.Errorf("configure: the instance did not take the configuration")
		out.To = PushUpdate
	case m.Action == event.Read:
		out.To = ReadStats
	default:
		out.To = CalcAction
	}
}

// pushUpdate queues an UPDATE to push the configuration again, after a
// backoff (the original re-queued it at once).
func (m *Machine) pushUpdate(env Env, out *Outcome) {
	m.Queue.PushFront(event.Update)
	m.retry(CalcAction, env, out)
}

// replugInstance makes the NICs match the networks.
func (m *Machine) replugInstance(ctx context.Context, inst Instance, out *Outcome) {
	st := inst.Replug(ctx)
	if m.replugs < 255 {
		m.replugs++
	}
	if st == Restart {
		out.To = StopInstance
		return
	}
	out.To = ConfigureInstance
}

// stopInstance deletes the instance.
func (m *Machine) stopInstance(ctx context.Context, inst Instance, env Env, out *Outcome) {
	st := inst.Stop(ctx)
	if st == Gone {
		m.Action = event.Delete
	}
	switch {
	case st != Down && st != Gone: // the original retried at once, forever
		out.Err = fmt.Errorf("stop: instance is still %s", st)
		m.retry(StopInstance, env, out)
	case st == Gone, m.Action == event.Delete:
		out.To = Exit
	default:
		m.failures = 0
		out.To = CreateInstance
	}
}

// rebuildInstance replaces the instance, with the image of the REBUILD.
func (m *Machine) rebuildInstance(ctx context.Context, inst Instance, env Env, out *Outcome) {
	inst.SetImage(m.rebuildImage) // the original ignored the image
	st := inst.Stop(ctx)
	if st == Gone {
		m.Action = event.Delete
	} else {
		inst.ResetBootCounter()
		m.Action = event.Create
	}
	switch st {
	case Gone:
		out.To = Exit
	case Down:
		m.failures = 0
		out.To = CreateInstance
	default:
		out.Err = fmt.Errorf("rebuild: instance is still %s", st)
		m.retry(RebuildInstance, env, out)
	}
}

// clearError leaves ERROR and goes where CalcAction was going.
func (m *Machine) clearError(ctx context.Context, inst Instance, out *Outcome) {
	inst.ClearError(ctx)
	m.errorAt, m.failures = 0, 0
	out.To, m.next = m.next, CalcAction
}

// readStats reads statistics if the instance manager can.
func (m *Machine) readStats(ctx context.Context, inst Instance, out *Outcome) {
	if r, ok := inst.(StatsReader); ok {
		if err := r.ReadStats(ctx); err != nil {
			out.Err = fmt.Errorf("read stats: %w", err)
		}
	}
	m.Action = event.Poll
	out.To = CalcAction
}
