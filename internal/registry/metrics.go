package registry

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/internal/registry/storage"
)

// Metrics are the registry's Prometheus metrics, in a registry of their
// own (no global state).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytesOut *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec
	gcRuns   *prometheus.CounterVec
	gcBlobs  prometheus.Counter
	gcBytes  prometheus.Counter
}

// NewMetrics makes the metrics; storage usage is read from st when
// scraped (at most once a minute: it walks the store).
func NewMetrics(st *storage.Store) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_requests_total", Help: "Requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_registry_request_duration_seconds", Help: "Request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"method", "route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_bytes_sent_total", Help: "Response bytes by route.",
		}, []string{"route"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_bytes_received_total", Help: "Request body bytes by route.",
		}, []string{"route"}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_registry_gc_runs_total", Help: "Garbage collections by result.",
		}, []string{"result"}),
		gcBlobs: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_registry_gc_blobs_deleted_total", Help: "Blobs garbage collection removed."}),
		gcBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_registry_gc_bytes_freed_total", Help: "Bytes garbage collection freed."}),
	}
	u := &usage{st: st}
	m.reg.MustRegister(m.requests, m.latency, m.bytesOut, m.bytesIn, m.gcRuns, m.gcBlobs, m.gcBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_registry_storage_bytes", Help: "Bytes of blobs stored (each once)."}, u.bytes),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) observe(method, route string, status int, took time.Duration, out, in int64) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(took.Seconds())
	m.bytesOut.WithLabelValues(route).Add(float64(out))
	if in > 0 {
		m.bytesIn.WithLabelValues(route).Add(float64(in))
	}
}

func (m *Metrics) gcRun(err error, blobs int, bytes int64) {
	if err != nil {
		m.gcRuns.WithLabelValues("error").Inc()
		return
	}
	m.gcRuns.WithLabelValues("ok").Inc()
	m.gcBlobs.Add(float64(blobs))
	m.gcBytes.Add(float64(bytes))
}

// usage caches the store's size between scrapes.
type usage struct {
	st *storage.Store
	// mu guards at and n.
	mu sync.Mutex
	at time.Time
	n  int64
}

func (u *usage) bytes() float64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Since(u.at) > time.Minute {
		if n, err := u.st.StoredBytes(context.Background()); err == nil {
			u.n, u.at = n, time.Now()
		}
	}
	return float64(u.n)
}
