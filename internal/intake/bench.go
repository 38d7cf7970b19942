package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/event/eventtest"
)

const benchDedupSize = 1024

// BenchTarget is the throughput the intake must reach on 2 cores.
const BenchTarget = 50000

// BenchRow is one measurement: Workers goroutines for Duration.
type BenchRow struct {
	Workers int
	// Rate is messages per second decoded, de-duplicated, normalized and
	// dispatched; Events how many events that made.
	Rate   float64
	Events uint64
	// Baseline is messages per second of a naive decode alone: the body,
	// then the message, each json.Unmarshal'ed into map[string]any.
	Baseline float64
}

// BenchResult is the outcome of RunBench.
type BenchResult struct {
	Fixtures int // distinct captured notifications in the mix
	Messages int // distinct messages (fixtures with fresh _unique_ids)
	Duration time.Duration
	Rows     []BenchRow
}

// RunBench measures the intake's hot path over the captured Neutron
// notification mix: decode, de-duplicate, normalize and dispatch to a
// trivial in-memory sink sharding events by tenant, with 1 worker and with
// one per CPU, each for d; and, in the same run, the naive decode.
func RunBench(ctx context.Context, d time.Duration) (BenchResult, error) {
	bodies, fixtures, err := benchBodies(200)
	if err != nil {
		return BenchResult{}, err
	}
	res := BenchResult{Fixtures: fixtures, Messages: len(bodies), Duration: d}
	workers := []int{1}
	if n := runtime.GOMAXPROCS(0); n > 1 {
		workers = append(workers, n)
	}
	for _, w := range workers {
		rate, events, err := measure(ctx, d, w, bodies, intakeWorker)
		if err != nil {
			return res, err
		}
		base, _, err := measure(ctx, d, w, bodies, naiveWorker)
		if err != nil {
			return res, err
		}
		res.Rows = append(res.Rows, BenchRow{Workers: w, Rate: rate, Events: events, Baseline: base})
	}
	return res, nil
}

// benchBodies makes copies copies of every notification fixture, each
// with its own _unique_id so that de-duplication lets them all through.
func benchBodies(copies int) ([][]byte, int, error) {
	all, err := eventtest.All()
	if err != nil {
		return nil, 0, err
	}
	var bodies [][]byte
	for i := range copies {
		for _, f := range all {
			id, _ := f.Message["_unique_id"].(string)
			if id == "" || len(id) != 32 {
				return nil, 0, fmt.Errorf("fixture %s: no 32-digit _unique_id", f.Name)
			}
			fresh := fmt.Sprintf("%08x%s", i, id[8:])
			bodies = append(bodies, bytes.Replace(f.Body, []byte(id), []byte(fresh), 1))
		}
	}
	// Copies come back only after every other message, which must be
	// more than the de-duplication window, counting only the messages
	// that make events (the others are not remembered).
	if len(bodies) <= 8*benchDedupSize {
		return nil, 0, errors.New("bench: too few messages to defeat the de-duplication window")
	}
	return bodies, len(all), nil
}

// shardSink is the trivial dispatcher: it counts events per tenant shard.
type shardSink struct {
	shards [64]atomic.Uint64
}

func (s *shardSink) Dispatch(_ context.Context, ev event.Event) error {
	h := fnv.New32a()
	_, _ = io.WriteString(h, ev.Resource.TenantID)
	s.shards[h.Sum32()%uint32(len(s.shards))].Add(1)
	return nil
}

func (s *shardSink) total() uint64 {
	var n uint64
	for i := range s.shards {
		n += s.shards[i].Load()
	}
	return n
}

// A workerFunc handles bodies[first], bodies[first+step], ... in a loop
// until stop (at least one): workers never share a message, so that none
// looks like a duplicate of another's.
type workerFunc func(ctx context.Context, stop *atomic.Bool, bodies [][]byte, first, step int, p *processor, sink Sink) (int, error)

func intakeWorker(ctx context.Context, stop *atomic.Bool, bodies [][]byte, first, step int, p *processor, sink Sink) (int, error) {
	n := 0
	for i := first; n == 0 || !stop.Load(); i += step {
		if v, _ := p.handle(ctx, sink, bodies[i%len(bodies)], nil); v != done {
			return n, errors.New("bench: a message was not handled")
		}
		n++
	}
	return n, nil
}

func naiveWorker(_ context.Context, stop *atomic.Bool, bodies [][]byte, first, step int, _ *processor, _ Sink) (int, error) {
	n := 0
	for i := first; n == 0 || !stop.Load(); i += step {
		var env map[string]any
		if err := json.Unmarshal(bodies[i%len(bodies)], &env); err != nil {
			return n, err
		}
		s, _ := env["oslo.message"].(string)
		var msg map[string]any
		if err := json.Unmarshal([]byte(s), &msg); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// measure runs workers copies of fn for d and returns messages per second
// and the events dispatched.
func measure(ctx context.Context, d time.Duration, workers int, bodies [][]byte, fn workerFunc) (float64, uint64, error) {
	// A smaller window than the default, so that the mix, which repeats
	// every len(bodies) messages, never looks duplicated; its cost is the
	// same.
	p := newProcessor(nil, benchDedupSize, nil, Backoff{}, 0)
	sink := &shardSink{}
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		total atomic.Int64
		errs  = make([]error, workers)
	)
	runtime.GC()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := fn(ctx, &stop, bodies, w, workers, p, sink)
			total.Add(int64(n))
			errs[w] = err
		}()
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return 0, 0, err
	}
	if s := p.c.snapshot(); s.Duplicates+s.Malformed+s.Unmappable > 0 {
		return 0, 0, fmt.Errorf("bench: %d duplicates, %d malformed, %d unmappable: the mix is wrong", s.Duplicates, s.Malformed, s.Unmappable)
	}
	return float64(total.Load()) / elapsed.Seconds(), sink.total(), nil
}

// Print writes the result as a table, with the machine it ran on.
func (r BenchResult) Print(w io.Writer, machine string) {
	fmt.Fprintf(w, "orchestrator intake: decode + de-duplicate + normalize + dispatch of the captured Neutron notification mix\n")
	fmt.Fprintf(w, "(%d fixtures, %d distinct messages, %v per measurement)\n", r.Fixtures, r.Messages, r.Duration)
	fmt.Fprintf(w, "machine: %s\n\n", machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workers\tastara msgs/s\tevents/s\tnaive decode msgs/s\tratio\t")
	best := 0.0
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.1fx\t\n", row.Workers, row.Rate,
			float64(row.Events)/r.Duration.Seconds(), row.Baseline, row.Rate/row.Baseline)
		best = max(best, row.Rate)
	}
	tw.Flush()
	verdict := "met"
	if best < BenchTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\ntarget >= %d msgs/s on 2 cores: %s (best %.0f msgs/s)\n", BenchTarget, verdict, best)
}
