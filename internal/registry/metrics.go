package registry

import "time"

// Metrics is filled in by metrics wiring.
type Metrics struct {
	observeFn func(method, route string, status int, took time.Duration, out, in int64)
}

func (m *Metrics) observe(method, route string, status int, took time.Duration, out, in int64) {
	if m.observeFn != nil {
		m.observeFn(method, route, status, took, out, in)
	}
}

func (m *Metrics) gcRun(err error, blobs int, bytes int64) {}
