package mgmt

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/worker"
)

// schedulerCollector exposes the scheduler's view: resources by state,
// debug modes, and each worker's queues.
type schedulerCollector struct {
	s     Scheduler
	stale func(worker.ResourceStatus, time.Time) bool

	resources, inDebug, staleRes, inError *prometheus.Desc
	debugModes                            *prometheus.Desc
	inputQueue, inputCap, runQueue        *prometheus.Desc
	workerRes, sleeping, busy             *prometheus.Desc
}

func newSchedulerCollector(s Scheduler, stale func(worker.ResourceStatus, time.Time) bool) *schedulerCollector {
	w := []string{"worker"}
	return &schedulerCollector{
		s: s, stale: stale,
		resources: prometheus.NewDesc("astara_resources", "Managed resources, by instance state.", []string{"instance_state"}, nil),
		inDebug:   prometheus.NewDesc("astara_resources_debug", "Managed resources a debug mode covers (left alone).", nil, nil),
		staleRes: prometheus.NewDesc("astara_resources_stale",
			"Managed resources that missed health polls (in ERROR, in debug mode, or behind a full queue).", nil, nil),
		inError: prometheus.NewDesc("astara_resources_error_since_seconds",
			"For each resource in ERROR, how long it has been.", []string{"resource_id"}, nil),
		debugModes: prometheus.NewDesc("astara_debug_modes", "Debug modes in effect, by scope (global, tenant, resource).", []string{"scope"}, nil),
		inputQueue: prometheus.NewDesc("astara_worker_input_queue", "Events accepted by a worker and not yet delivered.", w, nil),
		inputCap:   prometheus.NewDesc("astara_worker_input_capacity", "Capacity of a worker's input queue (worker_queue_size).", w, nil),
		runQueue:   prometheus.NewDesc("astara_worker_run_queue", "Resources waiting for one of a worker's goroutines.", w, nil),
		workerRes:  prometheus.NewDesc("astara_worker_resources", "Resources a worker manages.", w, nil),
		sleeping:   prometheus.NewDesc("astara_worker_sleeping", "Resources of a worker waiting on a timer (boot, retry, hold).", w, nil),
		busy:       prometheus.NewDesc("astara_worker_busy", "A worker's goroutines running a state machine.", w, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *schedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.resources, c.inDebug, c.staleRes, c.inError, c.debugModes,
		c.inputQueue, c.inputCap, c.runQueue, c.workerRes, c.sleeping, c.busy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *schedulerCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	byState := map[state.InstanceState]int{}
	debug, stale := 0, 0
	for _, rs := range c.s.Resources() {
		byState[rs.Instance]++
		if rs.Debug {
			debug++
		}
		if c.stale(rs, now) {
			stale++
		}
		if !rs.ErrorSince.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.inError, prometheus.GaugeValue, now.Sub(rs.ErrorSince).Seconds(), rs.Resource.ID)
		}
	}
	for st := state.Down; st <= state.Degraded; st++ {
		ch <- prometheus.MustNewConstMetric(c.resources, prometheus.GaugeValue, float64(byState[st]), st.String())
	}
	ch <- prometheus.MustNewConstMetric(c.inDebug, prometheus.GaugeValue, float64(debug))
	ch <- prometheus.MustNewConstMetric(c.staleRes, prometheus.GaugeValue, float64(stale))
	dm := c.s.DebugModes()
	global := 0.0
	if dm.Global != nil {
		global = 1
	}
	ch <- prometheus.MustNewConstMetric(c.debugModes, prometheus.GaugeValue, global, "global")
	ch <- prometheus.MustNewConstMetric(c.debugModes, prometheus.GaugeValue, float64(len(dm.Tenants)), "tenant")
	ch <- prometheus.MustNewConstMetric(c.debugModes, prometheus.GaugeValue, float64(len(dm.Resources)), "resource")
	for _, ws := range c.s.Workers() {
		id := strconv.Itoa(ws.ID)
		for _, m := range []struct {
			d *prometheus.Desc
			v int
		}{
			{c.inputQueue, ws.InputQueue}, {c.inputCap, ws.InputCapacity}, {c.runQueue, ws.RunQueue},
			{c.workerRes, ws.Resources}, {c.sleeping, ws.Sleeping}, {c.busy, len(ws.Busy)},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(m.v), id)
		}
	}
}
