// Package dockerapi serves the Docker Engine API (the wire format of
// dockerd: paths, versions, JSON field names, status codes, error bodies and
// progress streams) over berth's image, volume and container services, so
// the docker CLI and SDKs work against `berth daemon`. It is an adapter: it
// parses requests, calls one backend method, and renders the result or the
// error; it never reaches past the backends into runtime, snapshots or
// network. berth's own endpoints live under /berth/v1/.
//
// Only package daemon (the wiring) and tests import it.
package dockerapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/build"
	"github.com/berth-dev/berth/internal/errdefs"
	berthevents "github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/volumes"
)

// The API versions served. 1.50 is what the docker CLI 28.2 speaks; 1.51+
// changed response shapes (system df, image list) that berth does not
// serve yet, although the moby api module describes up to 1.56.
const (
	MinVersion = "1.24"
	MaxVersion = "1.50"
)

// ContainerUsage is what the image, volume and system endpoints need to
// know about containers. The engine implements it; nil means there are no
// containers.
type ContainerUsage interface {
	// ContainerCounts counts containers by state, for /info.
	ContainerCounts() (total, running, paused, stopped int)
	// ImageInUse reports whether a container uses the image (rmi, prune).
	ImageInUse(id digest.Digest) bool
	// ContainerDiskUsage describes every container with SizeRw and
	// SizeRootFs filled in, for /system/df.
	ContainerDiskUsage(ctx context.Context) ([]container.Summary, error)
}

// Options are the backends and facts a Server serves.
type Options struct {
	// Images is the image service; required.
	Images *images.Service
	// Volumes is the volume store; required.
	Volumes *volumes.Store
	// Containers serves the container endpoints (containers.go).
	Containers ContainerBackend
	// Usage answers questions about containers; nil means none exist.
	Usage ContainerUsage
	// Events is the event log: GET /events serves it, and the image,
	// volume and network handlers publish to it. nil: no /events, and
	// nothing is published.
	Events *berthevents.Log
	// Version is berth's version, reported as the server version.
	Version string
	// Root is berth's data directory (DockerRootDir).
	Root string
	// ID identifies this daemon in /info; default: derived from the host
	// name and Root.
	ID string
	// DefaultRuntime and Runtimes (name to executable) are reported by
	// /info; default "runc" alone.
	DefaultRuntime string
	Runtimes       map[string]string
	// Builder runs POST /build; nil: no builds.
	Builder *build.Builder
}

// Server serves the Docker Engine API over its backends.
type Server struct {
	Options
	handler http.Handler
}

// New builds a Server; its routes are fixed here.
func New(opts Options) *Server {
	if opts.DefaultRuntime == "" {
		opts.DefaultRuntime = "runc"
	}
	if len(opts.Runtimes) == 0 {
		opts.Runtimes = map[string]string{opts.DefaultRuntime: opts.DefaultRuntime}
	}
	if opts.ID == "" {
		host, _ := os.Hostname()
		sum := sha256.Sum256([]byte(host + "\x00" + opts.Root))
		opts.ID = hex.EncodeToString(sum[:16])
	}
	s := &Server{Options: opts}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = s.versioned(mux)
	return s
}

// Handler is the API as an http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on l until ctx ends, then stops accepting, lets
// running requests finish for a few seconds, and closes the rest
// (hijacked attach streams are the engine's to close).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	// Requests outlive ctx so that they can finish, but endless streams
	// (events) end when the shutdown begins: they learn it from
	// stopping, which the base context carries.
	stopping := make(chan struct{})
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, (<-chan struct{})(stopping))
		},
	}
	hs.RegisterOnShutdown(func() { close(stopping) })
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the API on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the API on %s: %w", l.Addr(), err)
	}
	return nil
}

type stoppingKey struct{}

// untilShutdown is ctx (a request's), ended too when the server begins to
// shut down, for handlers that stream until the client goes away.
func untilShutdown(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if stopping, ok := ctx.Value(stoppingKey{}).(<-chan struct{}); ok {
		go func() {
			select {
			case <-stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// handlerFunc is a handler that returns its error; route renders it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route adapts h: it parses the query and renders a returned error.
func route(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := parseForm(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			WriteError(w, err)
		}
	}
}

func (s *Server) routes(mux *http.ServeMux) {
	mux.Handle("/", route(func(w http.ResponseWriter, r *http.Request) error {
		return errdefs.NotFoundf("page not found")
	}))
	mux.HandleFunc("GET /_ping", s.ping)
	mux.HandleFunc("HEAD /_ping", s.ping)
	mux.Handle("GET /version", route(s.version))
	mux.Handle("GET /info", route(s.info))
	mux.Handle("GET /system/df", route(s.diskUsage))
	mux.Handle("POST /auth", route(s.auth))
	s.imageRoutes(mux)
	s.volumeRoutes(mux)
	s.networkRoutes(mux)
	s.berthRoutes(mux)
	s.containerRoutes(mux)
	s.eventRoutes(mux)
	s.statsRoutes(mux)
	s.buildRoutes(mux)
}

type versionKey struct{}

// APIVersion is the API version the request asked for (its /vX.Y prefix),
// MaxVersion when it named none.
func APIVersion(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey{}).(string); ok {
		return v
	}
	return MaxVersion
}

// VersionAtLeast reports whether the request's API version is v or newer,
// for handlers whose answer changed between versions.
func VersionAtLeast(ctx context.Context, v string) bool {
	return compareVersions(APIVersion(ctx), v) >= 0
}

// compareVersions compares "1.41"-style versions numerically.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+(?:\.[0-9]+)*)(/.*)$`)

// versioned strips the optional /vX.Y prefix, refuses versions outside
// [MinVersion, MaxVersion] with Docker's messages, and sets the headers
// dockerd sends on every response.
func (s *Server) versioned(next http.Handler) http.Handler {
	server := "berth/" + s.Version + " (linux)"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Api-Version", MaxVersion)
		h.Set("Ostype", "linux")
		h.Set("Docker-Experimental", "false")
		h.Set("Server", server)
		version := MaxVersion
		if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
			version = m[1]
			switch {
			case compareVersions(version, MinVersion) < 0:
				WriteError(w, errdefs.Invalidf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinVersion))
				return
			case compareVersions(version, MaxVersion) > 0:
				WriteError(w, errdefs.Invalidf("client version %s is too new. Maximum supported API version is %s", version, MaxVersion))
				return
			}
			r = r.Clone(context.WithValue(r.Context(), versionKey{}, version))
			r.URL.Path = m[2]
			if r.URL.RawPath != "" {
				if rm := versionPrefix.FindStringSubmatch(r.URL.RawPath); rm != nil {
					r.URL.RawPath = rm[2]
				} else {
					r.URL.RawPath = ""
				}
			}
		}
		defer func() {
			// A handler that panics must not take the daemon with it.
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				slog.Error("api handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
				WriteError(w, fmt.Errorf("internal error handling %s %s: %v", r.Method, r.URL.Path, p))
			}
		}()
		if slog.Default().Enabled(r.Context(), slog.LevelDebug) {
			start := time.Now()
			defer func() {
				slog.Debug("api", "method", r.Method, "path", r.URL.Path, "took", time.Since(start))
			}()
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Builder-Version", "1")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Write([]byte("OK"))
}
