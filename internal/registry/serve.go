package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/storage"
)

// Run serves the registry described by cfg until ctx ends, then shuts
// down gracefully. ready, if not nil, gets the bound address.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	srv, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry: listening on %s: %w", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: time.Duration(cfg.Limits.ReadTimeout),
		IdleTimeout:       time.Duration(cfg.Limits.IdleTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			ln.Close()
			return fmt.Errorf("registry: tls: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	if cfg.Addr != ln.Addr().String() {
		log.Info("registry listening", "addr", ln.Addr().String(), "tls", cfg.TLS.Cert != "")
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go srv.purgeLoop(bg, time.Duration(cfg.Limits.UploadTTL))
	if cfg.GC.Interval > 0 {
		go srv.gcLoop(bg, time.Duration(cfg.GC.Interval), cfg.GCOptions(false))
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// New builds the server for cfg (defaults applied).
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	fs, err := storage.NewFS(cfg.Root)
	if err != nil {
		return nil, err
	}
	st := storage.New(fs)
	st.MaxUpload = cfg.Limits.MaxBlobBytes
	pol := cfg.Policies
	if len(pol.ImmutableTags) > 0 {
		st.ImmutableTags = func(repo string) bool { return matchAny(pol.ImmutableTags, repo) }
	}
	if len(pol.Quotas) > 0 {
		st.Quota = func(repo string) (int64, string) { return quotaFor(pol.Quotas, repo) }
	}
	s := &Server{Store: st, ReadOnly: cfg.ReadOnly, MaxManifest: cfg.Limits.MaxManifestBytes, BodyTimeout: time.Duration(cfg.Limits.ReadTimeout)}
	s.LimitInflight(cfg.Limits.MaxInflight)
	if len(cfg.Proxy) > 0 {
		p, err := NewProxy(st, cfg.Proxy)
		if err != nil {
			return nil, err
		}
		s.Upstream = p
	}
	s.Metrics = NewMetrics(st)
	s.Extra = http.NewServeMux()
	s.Extra.Handle("GET /metrics", s.Metrics.Handler())
	az, tokens, tokenPath, err := auth.New(cfg.Auth, cfg.Root)
	if err != nil {
		return nil, err
	}
	if az != nil {
		s.Authorize, s.Permits = az.Authorize, az.Permits
	}
	if tokens != nil {
		s.Extra.Handle(tokenPath, tokens)
	}
	if *cfg.AccessLog {
		s.Log = log
	}
	return s, nil
}

// matchAny reports whether repo matches one of the path.Match patterns.
func matchAny(patterns []string, repo string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, repo); ok {
			return true
		}
	}
	return false
}

// quotaFor is repo's limit and the scope it is shared in: a namespace
// ("team/") or the repository itself.
func quotaFor(qs []Quota, repo string) (int64, string) {
	for _, q := range qs {
		if strings.HasSuffix(q.Repository, "/") {
			if strings.HasPrefix(repo, q.Repository) {
				return q.Bytes, q.Repository
			}
			continue
		}
		if ok, _ := path.Match(q.Repository, repo); ok {
			return q.Bytes, repo
		}
	}
	return 0, ""
}

// purgeLoop removes abandoned upload sessions, at start and hourly.
func (s *Server) purgeLoop(ctx context.Context, ttl time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.Store.PurgeUploads(ctx, ttl); err != nil {
			slog.Warn("purging abandoned uploads failed", "err", err)
		} else if n > 0 {
			slog.Info("purged abandoned uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// timedBody extends the connection's read deadline on every read: a
// client that sends nothing for the timeout is cut off, while a slow but
// steady upload of any size goes on.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b timedBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}

// GCOptions are a collection's options from the config.
func (c Config) GCOptions(dryRun bool) storage.GCOptions {
	o := storage.GCOptions{DryRun: dryRun, Grace: time.Duration(c.GC.Grace), DeleteUntagged: c.GC.DeleteUntagged}
	if rs := c.Policies.Retention; len(rs) > 0 {
		o.Retention = func(repo string) (int, time.Duration) {
			for _, r := range rs {
				if ok, _ := path.Match(r.Repository, repo); ok {
					return r.KeepTags, time.Duration(r.UntaggedOlderThan)
				}
			}
			return 0, 0
		}
	}
	return o
}

// gcLoop collects every interval while the server runs.
func (s *Server) gcLoop(ctx context.Context, every time.Duration, o storage.GCOptions) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		started := time.Now()
		res, err := s.Store.Collect(ctx, o)
		if s.Metrics != nil {
			s.Metrics.gcRun(err, len(res.Blobs), res.Bytes)
		}
		if err != nil {
			slog.Warn("garbage collection failed", "err", err)
			continue
		}
		slog.Info("garbage collection", "blobs", len(res.Blobs), "bytes", res.Bytes, "manifests", len(res.Manifests), "tags", len(res.Tags), "took", time.Since(started).Round(time.Millisecond))
	}
}

// Collect runs one garbage collection on cfg's storage.
func Collect(ctx context.Context, cfg Config, dryRun bool) (storage.GCResult, error) {
	fs, err := storage.NewFS(cfg.Root)
	if err != nil {
		return storage.GCResult{}, err
	}
	return storage.New(fs).Collect(ctx, cfg.GCOptions(dryRun))
}
