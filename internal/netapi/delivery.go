package netapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/astara-go/astara/internal/event"
)

// Delivery of notifications.
//
// The .end notifications of a change are written to the outbox bucket in
// the change's own transaction, so a committed change always has its
// notifications stored. After the commit, they are queued, in commit
// order, to one lane per notifier; each lane delivers in order, retrying a
// failed notification with a backoff until it succeeds or the server shuts
// down. A notification is removed from the outbox once every lane has
// delivered it. At start-up the outbox is replayed to every lane before
// any new change: after a crash or a shutdown with notifications still
// queued, they are delivered again (at least once; consumers deduplicate
// by _unique_id, as the intake sources do).
//
// A .start notification announces a request that may still fail; it is
// queued (not stored) before the change, so it precedes its .end, and a
// crash may lose it. Nothing acts on .start notifications.

const maxRetryBackoff = 30 * time.Second

type item struct {
	seq  uint64 // outbox key; 0 for a .start, which is not stored
	note event.Notification
}

type delivery struct {
	db      *bbolt.DB
	log     *slog.Logger
	backoff time.Duration
	lanes   []*lane

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	remaining map[uint64]int // stored notification → lanes yet to deliver it
	delivered []uint64       // stored notifications every lane delivered
	idle      *sync.Cond     // signalled when a lane empties
	reap      chan struct{}
}

type lane struct {
	n     Notifier
	mu    sync.Mutex
	queue []item
	busy  bool
	wake  chan struct{}
}

func newDelivery(db *bbolt.DB, notifiers []Notifier, backoff time.Duration, log *slog.Logger) *delivery {
	ctx, cancel := context.WithCancel(context.Background())
	d := &delivery{db: db, log: log, backoff: backoff, ctx: ctx, cancel: cancel,
		remaining: map[uint64]int{}, reap: make(chan struct{}, 1)}
	d.idle = sync.NewCond(&d.mu)
	for _, n := range notifiers {
		d.lanes = append(d.lanes, &lane{n: n, wake: make(chan struct{}, 1)})
	}
	return d
}

// durable reports whether notifications are stored: only when someone
// takes them.
func (d *delivery) durable() bool { return len(d.lanes) > 0 }

// start queues the notifications left in the outbox by a previous run
// (or deletes them when there is no notifier), then starts the lanes.
func (d *delivery) start() error {
	var items []item
	var orphans [][]byte
	err := d.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			if !d.durable() {
				orphans = append(orphans, append([]byte(nil), k...))
				return nil
			}
			n, err := event.Decode(v)
			if err != nil {
				return fmt.Errorf("outbox entry %x: %w", k, err)
			}
			items = append(items, item{seq: binary.BigEndian.Uint64(k), note: n})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	if len(orphans) > 0 {
		err := d.db.Update(func(tx *bbolt.Tx) error {
			for _, k := range orphans {
				if err := tx.Bucket(bucketOutbox).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear the outbox: %w", err)
		}
	}
	if len(items) > 0 {
		d.log.Info("replaying the notifications of changes committed before the restart", "count", len(items))
	}
	d.enqueue(items)
	for _, l := range d.lanes {
		d.wg.Add(1)
		go d.run(l)
	}
	d.wg.Add(1)
	go d.reaper()
	return nil
}

// enqueue queues items to every lane, in order.
func (d *delivery) enqueue(items []item) {
	if len(items) == 0 || !d.durable() {
		return
	}
	d.mu.Lock()
	for _, it := range items {
		if it.seq != 0 {
			d.remaining[it.seq] = len(d.lanes)
		}
	}
	d.mu.Unlock()
	for _, l := range d.lanes {
		l.mu.Lock()
		l.queue = append(l.queue, items...)
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run delivers a lane's queue until the delivery stops.
func (d *delivery) run(l *lane) {
	defer d.wg.Done()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.busy = false
			l.mu.Unlock()
			d.mu.Lock()
			d.idle.Broadcast()
			d.mu.Unlock()
			select {
			case <-d.ctx.Done():
				return
			case <-l.wake:
				continue
			}
		}
		it := l.queue[0]
		l.busy = true
		l.mu.Unlock()
		if !d.deliver(l, it) {
			return
		}
		l.mu.Lock()
		l.queue = l.queue[1:]
		l.mu.Unlock()
		if it.seq != 0 {
			d.ack(it.seq)
		}
	}
}

// deliver hands one notification to the lane's notifier, retrying with
// a doubling backoff; false when the delivery stopped first.
func (d *delivery) deliver(l *lane, it item) bool {
	wait := d.backoff
	for attempt := 1; ; attempt++ {
		err := l.n.Notify(d.ctx, it.note)
		if err == nil {
			return true
		}
		if d.ctx.Err() != nil {
			return false
		}
		d.log.Warn("notification not delivered; retrying", "event_type", it.note.EventType,
			"message_id", it.note.MessageID, "attempt", attempt, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, maxRetryBackoff)
	}
}

// ack records that a lane delivered a stored notification.
func (d *delivery) ack(seq uint64) {
	d.mu.Lock()
	d.remaining[seq]--
	if d.remaining[seq] <= 0 {
		delete(d.remaining, seq)
		d.delivered = append(d.delivered, seq)
	}
	d.mu.Unlock()
	select {
	case d.reap <- struct{}{}:
	default:
	}
}

// reaper removes delivered notifications from the outbox, in batches.
func (d *delivery) reaper() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.reap:
			if err := d.flush(); err != nil {
				d.log.Error("cannot remove delivered notifications from the outbox (they will be delivered again after a restart)", "error", err)
			}
		}
	}
}

func (d *delivery) flush() error {
	d.mu.Lock()
	seqs := d.delivered
	d.delivered = nil
	d.mu.Unlock()
	if len(seqs) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, s := range seqs {
			if err := b.Delete(outboxKey(s)); err != nil {
				return fmt.Errorf("delete outbox entry %d: %w", s, err)
			}
		}
		return nil
	})
}

// drained reports whether every lane has delivered everything queued.
func (d *delivery) drained() bool {
	for _, l := range d.lanes {
		l.mu.Lock()
		pending := len(l.queue) > 0 || l.busy
		l.mu.Unlock()
		if pending {
			return false
		}
	}
	return true
}

// stop waits until every lane is drained or ctx is done, then stops the
// lanes and removes what was delivered from the outbox. What is left is
// delivered after the next start.
func (d *delivery) stop(ctx context.Context) error {
	stopWaiting := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.idle.Broadcast()
		d.mu.Unlock()
	})
	d.mu.Lock()
	for !d.drained() && ctx.Err() == nil {
		d.idle.Wait()
	}
	d.mu.Unlock()
	stopWaiting()
	d.cancel()
	d.wg.Wait()
	var errs []error
	if err := d.flush(); err != nil {
		errs = append(errs, fmt.Errorf("outbox: %w", err))
	}
	if err := ctx.Err(); err != nil && !d.drained() {
		errs = append(errs, fmt.Errorf("notifications still queued (kept for the next start): %w", err))
	}
	return errors.Join(errs...)
}
