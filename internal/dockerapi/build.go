package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/jsonstream"

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/build"
	"github.com/berth-dev/berth/internal/errdefs"
)

func (s *Server) buildRoutes(mux *http.ServeMux) {
	mux.Handle("POST /build", route(s.build))
	mux.Handle("POST /build/prune", route(s.buildPrune))
}

// build is Docker's classic builder endpoint: a tar of the context in the
// body, the options in the query, a JSON stream of the steps' text back.
func (s *Server) build(w http.ResponseWriter, r *http.Request) error {
	if s.Builder == nil {
		return errdefs.NotImplemented(errors.New("this daemon has no builder"))
	}
	if err := r.ParseForm(); err != nil {
		return errdefs.Invalidf("invalid query: %v", err)
	}
	if v := r.Form.Get("version"); v == "2" {
		return errdefs.NotImplemented(errors.New("BuildKit (builder version 2) is not supported by berth: use the classic builder (DOCKER_BUILDKIT=0)"))
	}
	if r.Form.Get("remote") != "" {
		return errdefs.NotImplemented(errors.New("remote build contexts are not supported: send the context as a tar"))
	}
	o := build.Options{
		Dockerfile: r.Form.Get("dockerfile"),
		Tags:       r.Form["t"],
		Target:     r.Form.Get("target"),
		NoCache:    BoolValue(r, "nocache"),
		Pull:       r.Form.Get("pull") != "" && r.Form.Get("pull") != "0" && r.Form.Get("pull") != "false",
		Network:    r.Form.Get("networkmode"),
	}
	if o.Network == "default" {
		o.Network = ""
	}
	for _, p := range []struct {
		key string
		dst any
	}{{"buildargs", &o.BuildArgs}, {"labels", &o.Labels}} {
		if v := r.Form.Get(p.key); v != "" {
			if err := json.Unmarshal([]byte(v), p.dst); err != nil {
				return errdefs.Invalidf("invalid %s %q: want a JSON object: %v", p.key, v, err)
			}
		}
	}
	tmp := filepath.Join(s.Root, "build", "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(tmp, "context-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	body, _, err := archive.Decompress(r.Body)
	if err != nil {
		return errdefs.Invalidf("invalid build context: %v", err)
	}
	defer body.Close()
	if _, err := archive.Apply(r.Context(), dir, body, archive.WithoutWhiteouts()); err != nil {
		return errdefs.Invalidf("invalid build context: %v", err)
	}
	o.ContextDir = dir
	p := NewProgress(w)
	// Quiet (q) as dockerd's: the steps' text is held back, and shown only
	// when the build fails; a success streams just the image ID. What is
	// held is bounded: its last quietTail bytes, where a failure shows.
	quiet := BoolValue(r, "q")
	var held *tailBuffer
	if quiet {
		held = &tailBuffer{max: quietTail}
		o.Out = held
	} else {
		o.Out = streamWriter{p: p}
	}
	res, err := s.Builder.Build(r.Context(), o)
	if err != nil {
		if quiet && len(held.buf) > 0 {
			if held.dropped > 0 {
				p.Send(Message{Stream: fmt.Sprintf("[... %d bytes of earlier output dropped ...]\n", held.dropped)})
			}
			p.Send(Message{Stream: string(held.buf)})
		}
		if !p.Started() {
			p.Send(Message{Stream: ""}) // a build error goes into the stream, as dockerd's
		}
		detail := &jsonstream.Error{Message: err.Error()}
		var se *build.StepError
		if errors.As(err, &se) {
			detail.Code = se.ExitCode
		}
		p.Send(Message{Error: err.Error(), ErrorDetail: detail})
		return nil
	}
	p.Send(Message{Aux: map[string]string{"ID": res.ID.String()}})
	if quiet {
		p.Send(Message{Stream: res.ID.String() + "\n"})
	}
	return nil
}

// quietTail is how much of a quiet build's output is kept for a failure.
const quietTail = 256 << 10

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped += int64(over)
	}
	return len(p), nil
}

// streamWriter turns the builder's text into stream messages.
type streamWriter struct {
	p *Progress
}

func (s streamWriter) Write(b []byte) (int, error) {
	if err := s.p.Send(Message{Stream: string(b)}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// buildPrune is POST /build/prune: the build cache's step images and keys.
func (s *Server) buildPrune(w http.ResponseWriter, r *http.Request) error {
	if s.Builder == nil {
		return errdefs.NotImplemented(errors.New("this daemon has no builder"))
	}
	removed, gc, err := s.Images.PruneBuildCache(r.Context(), s.inUseFunc())
	if err != nil {
		return err
	}
	if err := s.Builder.ClearCache(); err != nil {
		return err
	}
	ids := []string{}
	for _, img := range removed {
		ids = append(ids, strings.TrimPrefix(img.ID.String(), "sha256:"))
	}
	writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": ids, "SpaceReclaimed": gc.Reclaimed})
	return nil
}
