package web

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unbrick/unbrick/jobs"
)

// Metrics is what /metrics exposes to the plant's Prometheus
// (https://prometheus.io/docs/instrumenting/exposition_formats/), through
// prometheus/client_golang:
//
//	unbrick_attempts_total{outcome, class, fault}   finished attempts
//	unbrick_bytes_written_total                      bytes written to units
//	unbrick_step_duration_seconds{step, outcome}     histogram of step times
//	unbrick_active_jobs                              slots running a job
//	unbrick_slots{state}                             slots in each state
//	unbrick_quarantined_slots                        slots out of service
//
// The counters are fed by the record as each write commits (the station
// wires [Metrics] as the database's observer and seeds them with the
// record's totals at start), so they equal what the database holds; the
// gauges are read from the tracker at each scrape.
type Metrics struct {
	reg      *prometheus.Registry
	attempts *prometheus.CounterVec
	bytes    prometheus.Counter
	steps    *prometheus.HistogramVec
}

// NewMetrics returns the station's metrics; the slot gauges read t.
func NewMetrics(t *jobs.Tracker) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "unbrick_attempts_total", Help: "Finished attempts by outcome, failure class and fault side.",
	}, []string{"outcome", "class", "fault"})
	m.bytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "unbrick_bytes_written_total", Help: "Bytes written to units by finished attempts.",
	})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "unbrick_step_duration_seconds", Help: "How long each step of a job took.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50 ms to about 7 min
	}, []string{"step", "outcome"})
	m.reg.MustRegister(m.attempts, m.bytes, m.steps, slotCollector{t},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AttemptFinished counts a finished attempt.
func (m *Metrics) AttemptFinished(outcome, class, fault string, bytes int64) {
	m.attempts.WithLabelValues(outcome, class, fault).Inc()
	if bytes > 0 {
		m.bytes.Add(float64(bytes))
	}
}

// Seed adds n attempts that ended one way, and bytes, recorded before the
// metrics began.
func (m *Metrics) Seed(outcome, class, fault string, n, bytes int64) {
	if n > 0 {
		m.attempts.WithLabelValues(outcome, class, fault).Add(float64(n))
	}
	if bytes > 0 {
		m.bytes.Add(float64(bytes))
	}
}

// StepFinished observes one step's duration.
func (m *Metrics) StepFinished(step, outcome string, d time.Duration) {
	m.steps.WithLabelValues(step, outcome).Observe(d.Seconds())
}

// Handler serves the metrics in Prometheus's exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// slotCollector reads the slot gauges from the tracker at each scrape.
type slotCollector struct{ t *jobs.Tracker }

var (
	activeDesc      = prometheus.NewDesc("unbrick_active_jobs", "Slots running a job.", nil, nil)
	slotsDesc       = prometheus.NewDesc("unbrick_slots", "Slots in each state.", []string{"state"}, nil)
	quarantinedDesc = prometheus.NewDesc("unbrick_quarantined_slots", "Slots taken out of service.", nil, nil)
)

var slotStates = []jobs.State{jobs.Empty, jobs.Present, jobs.Running, jobs.Passed, jobs.Failed, jobs.Interrupted, jobs.Quarantined}

func (c slotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- slotsDesc
	ch <- quarantinedDesc
}

func (c slotCollector) Collect(ch chan<- prometheus.Metric) {
	n := map[jobs.State]int{}
	if c.t != nil {
		for _, s := range c.t.Slots() {
			n[s.State]++
		}
	}
	for _, st := range slotStates {
		ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(n[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(n[jobs.Running]))
	ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(n[jobs.Quarantined]))
}
