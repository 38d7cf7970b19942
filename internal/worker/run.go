package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/astara-go/astara/internal/state"
)

// maxSteps bounds one traversal: a machine that has not come back to rest
// after that many steps has a transition loop, which must not take a
// goroutine hostage.
const maxSteps = 64

// runner is one goroutine running machines from the run queue.
func (w *Worker) runner(idx int) {
	defer w.runners.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for w.runq.len() == 0 && !w.draining && !w.quitting {
			w.cond.Wait()
		}
		if w.quitting || w.runq.len() == 0 {
			return
		}
		a := w.runq.pop()
		a.clear(inRunQ)
		if !a.m.Forced && w.inDebug(a) {
			// In debug mode: leave it. Unlike the original, nothing stays
			// locked: the next event it takes (after resource-manage, a
			// POLL) schedules it again.
			w.log.Debug("resource in debug mode: not run", "resource", a.id)
			continue
		}
		a.set(running)
		w.busy[idx] = busy{id: a.id, since: time.Now().UnixNano()}
		w.run(a)
		w.busy[idx] = busy{}
		a.clear(running)
		if a.has(deleted) {
			w.forget(a)
			w.mu.Unlock() // a durable write: do not hold up deliveries
			w.forgetPending(a.id)
			w.mu.Lock()
			continue
		}
		w.schedule(a) // more work arrived meanwhile: back to the tail
	}
}

// run executes one traversal of a's machine: from where it is until it
// rests in CalcAction, sleeps or exits. It is called and returns with the
// lock held, which it releases around calls to the instance manager.
func (w *Worker) run(a *automaton) {
	a.clear(woken)
	cfg := w.cfg.Load()
	ctx := w.runCtx
	if a.inst == nil {
		r := a.resource()
		w.mu.Unlock()
		inst, err := w.deps.Factory.NewInstance(ctx, r)
		if err == nil && inst == nil {
			err = errors.New("factory returned no instance manager")
		}
		if err == nil {
			inst.UpdateState(ctx) // adopt what runs: see Factory
		}
		w.mu.Lock()
		if err != nil {
			now := time.Now()
			a.fail(fmt.Sprintf("create instance manager: %v", err), now.UnixNano())
			w.log.Error("cannot create the instance manager", "resource", a.id, "tenant", a.tenant.id, "err", err)
			d := cfg.State.Backoff(int(a.fails), rand.Int64N)
			a.fails = min(a.fails+1, 63)
			w.sleep(a, state.WaitRetry, d)
			return
		}
		a.fails = 0
		a.inst = inst
		a.shownInst = inst.State()
	}
	for range maxSteps {
		env := state.Env{Now: time.Now(), Config: cfg.State, Jitter: rand.Int64N}
		var out state.Outcome
		if a.m.State.UsesQueue() {
			out = a.m.Step(ctx, a.inst, env)
		} else {
			w.mu.Unlock()
			out = a.m.Step(ctx, a.inst, env)
			w.mu.Lock()
		}
		w.observe(a, out, env.Now)
		switch {
		case out.To == state.Exit:
			a.set(deleted)
			return
		case out.Wait != state.NoWait:
			w.sleep(a, out.Wait, out.Delay)
			return
		case out.To == state.CalcAction:
			return
		case w.quitting:
			return // Stop's deadline: the traversal is recorded as pending
		}
	}
	now := time.Now()
	a.fail(fmt.Sprintf("no rest after %d steps, in %s", maxSteps, a.m.State), now.UnixNano())
	w.log.Error("state machine loops: retrying later", "resource", a.id, "state", a.m.State.String())
	w.sleep(a, state.WaitRetry, cfg.State.MaxRetryDelay)
}

// observe records a step: status, history, errors and logs.
func (w *Worker) observe(a *automaton, out state.Outcome, now time.Time) {
	at := now.UnixNano()
	prevInst := a.shownInst
	a.shownState, a.shownAction, a.shownInst = out.To, out.Action, out.Instance
	a.remember(record{at: at, from: out.From, to: out.To, action: out.Action, inst: out.Instance, wait: out.Wait}, w.history)
	if w.log.Enabled(w.runCtx, levelTrace) {
		w.log.Log(w.runCtx, levelTrace, "transition", "resource", a.id, "from", out.From.String(), "to", out.To.String(),
			"action", out.Action.String(), "instance_state", out.Instance.String(), "wait", out.Wait.String(), "delay", out.Delay)
	}
	if out.Err != nil {
		a.fail(out.Err.Error(), at)
		w.log.Warn("step failed", "resource", a.id, "tenant", a.tenant.id, "state", out.From.String(),
			"action", out.Action.String(), "err", out.Err)
	}
	switch {
	case out.Instance == state.Error && prevInst != state.Error:
		w.log.Error("resource in error: events are held until the cooldown ends", "resource", a.id, "tenant", a.tenant.id,
			"error_state_cooldown", w.cfg.Load().State.ErrorStateCooldown)
	case out.Instance != state.Error && prevInst == state.Error:
		w.log.Info("resource out of error: managed again", "resource", a.id, "tenant", a.tenant.id)
	}
	if out.To == state.Exit {
		w.log.Info("resource gone: instance stopped", "resource", a.id, "tenant", a.tenant.id, "action", out.Action.String())
	}
}

// levelTrace logs every transition (below slog.LevelDebug).
const levelTrace = -8

// sleep puts a to sleep for d; a timer wakes it (see wake).
func (w *Worker) sleep(a *automaton, why state.Wait, d time.Duration) {
	when := time.Now().Add(d).UnixNano()
	a.sleep, a.wakeAt = why, when
	w.sleeping++
	time.AfterFunc(d, func() { w.wake(a, when) })
}

// wake ends a's sleep if it still sleeps until when (an event may have cut
// it short). While the worker stops, timers no longer wake anything: the
// sleeping machine's work is recorded as pending instead.
func (w *Worker) wake(a *automaton, when int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a.wakeAt != when || a.sleep == state.NoWait || w.draining {
		return
	}
	w.wakeUp(a)
	a.set(woken)
	w.schedule(a)
}

// wakeUp ends a's sleep.
func (w *Worker) wakeUp(a *automaton) {
	a.sleep, a.wakeAt = state.NoWait, 0
	w.sleeping--
}
