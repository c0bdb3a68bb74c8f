// Package registry is berth's OCI Distribution Spec 1.1 registry server:
// the /v2/ API over a storage.Store, with auth, read-only mode, limits,
// metrics and access logs. It needs no daemon; `berth registry serve`
// runs it.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/storage"
)

// AuthorizeFunc decides whether a request may have actions on a resource
// (typ "repository" or "registry"). It returns the subject, or an error
// (an *Error such as UNAUTHORIZED with its challenge header, or DENIED).
type AuthorizeFunc func(r *http.Request, need []Access) (string, error)

// Access is one resource and the actions a request needs on it.
type Access = auth.Access

// Server serves the registry API.
type Server struct {
	Store *storage.Store
	// Authorize, if set, checks every request; Permits then says what
	// the rules allow an account beyond its request's token.
	Authorize AuthorizeFunc
	Permits   func(account string, need []Access) bool
	// ReadOnly refuses pushes and deletes.
	ReadOnly bool
	// MaxManifest bounds a manifest's size (default 4 MiB).
	MaxManifest int64
	// Upstream, if set, fills a pull the store cannot answer (the
	// pull-through cache).
	Upstream Upstream
	// Log receives access logs; nil logs nothing.
	Log *slog.Logger
	// Metrics, if set, counts requests and bytes.
	Metrics *Metrics
	// Extra serves paths outside /v2/ (the token endpoint, /metrics).
	Extra *http.ServeMux
	// BodyTimeout cuts off a request body that stalls this long (0: no
	// limit).
	BodyTimeout time.Duration
	// inflight, if not nil, holds a slot per request being served.
	inflight chan struct{}
}

// LimitInflight bounds the requests served at once; the rest get 429.
func (s *Server) LimitInflight(n int) {
	if n > 0 {
		s.inflight = make(chan struct{}, n)
	}
}

// Upstream is a pull-through cache's source: it fetches into the store
// what a pull asks for and the store lacks.
type Upstream interface {
	// Proxied reports whether an upstream serves repo (a cache, not
	// pushed to).
	Proxied(repo string) bool
	// Manifest makes ref's manifest available (and, for a tag, fresh) in
	// repo, or reports it unknown (errdefs.NotFound); ok is false when
	// no upstream serves repo.
	Manifest(ctx context.Context, repo, ref string) (ok bool, err error)
	// Blob makes blob d available in repo.
	Blob(ctx context.Context, repo string, d digest.Digest) (ok bool, err error)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, status: 200}
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	route := "other"
	defer func() {
		if s.Metrics != nil {
			s.Metrics.observe(r.Method, route, rw.status, time.Since(start), rw.bytes, r.ContentLength)
		}
		if s.Log != nil {
			s.Log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rw.status, "bytes", rw.bytes,
				"took", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr, "user", rw.user)
		}
	}()
	if s.inflight != nil {
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
		default:
			rw.Header().Set("Retry-After", "1")
			writeError(rw, newError(http.StatusTooManyRequests, codeTooManyRequests, "the registry is serving %d requests: retry", cap(s.inflight)))
			return
		}
	}
	if !strings.HasPrefix(r.URL.Path, "/v2") && s.Extra != nil {
		s.Extra.ServeHTTP(rw, r)
		return
	}
	rt, perr := parseRoute(r.URL.Path)
	if perr != nil {
		writeError(rw, perr)
		return
	}
	route = rt.metricName()
	if rt.kind == 0 {
		writeError(rw, newError(http.StatusNotFound, codeNameUnknown, "no such route: %s", r.URL.Path))
		return
	}
	if err := s.serve(rw, r, rt); err != nil {
		writeError(rw, toError(err, rt.about()))
	}
}

func (rt route) metricName() string {
	return [...]string{"other", "base", "catalog", "tags", "manifest", "blob", "upload", "upload", "referrers"}[rt.kind]
}

func (rt route) about() subject {
	switch rt.kind {
	case routeManifest:
		return aboutManifest
	case routeUpload, routeUploadStart:
		return aboutUpload
	case routeTags:
		return aboutRepo
	}
	return aboutBlob
}

// recorder notes the status and bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	user   string
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// mapper is a blob that can be mapped into memory (storage's FS driver).
type mapper interface {
	Map() ([]byte, func() error, error)
}

// mappedWrite is how much of a mapped blob one write hands the socket.
const mappedWrite = 4 << 20

// plainGet is a request for the whole blob, unconditionally: what the
// mapped path serves. Ranges and conditions go through ServeContent.
func plainGet(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return true
}

// ReadFrom keeps the server's own ReadFrom reachable: a blob file copied
// to the connection goes by sendfile, not through user space.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.bytes += n
	return n, err
}

// needs lists the accesses a request needs.
func needs(r *http.Request, rt route) []Access {
	repo := func(actions ...string) []Access {
		return []Access{{Type: "repository", Name: rt.name, Actions: actions}}
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch rt.kind {
	case routeBase:
		return nil
	case routeCatalog:
		return []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	case routeTags, routeReferrers:
		return repo("pull")
	case routeManifest, routeBlob:
		if read {
			return repo("pull")
		}
		if r.Method == http.MethodDelete {
			return repo("delete")
		}
		return repo("pull", "push")
	case routeUploadStart, routeUpload:
		a := repo("pull", "push")
		if from := r.URL.Query().Get("from"); from != "" && r.URL.Query().Get("mount") != "" {
			a = append(a, Access{Type: "repository", Name: from, Actions: []string{"pull"}})
		}
		return a
	}
	return nil
}

func (s *Server) serve(w *recorder, r *http.Request, rt route) error {
	if s.Authorize != nil {
		user, err := s.Authorize(r, needs(r, rt))
		if err != nil {
			return err
		}
		w.user = user
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && s.ReadOnly {
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "the registry is read-only")
	}
	if write && rt.name != "" && s.Upstream != nil && s.Upstream.Proxied(rt.name) {
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "%s is a pull-through cache of an upstream registry: push there", rt.name)
	}
	ctx := r.Context()
	switch rt.kind {
	case routeBase:
		if !methodIs(r, http.MethodGet, http.MethodHead) {
			return notAllowed(w, "GET, HEAD")
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return nil
	case routeCatalog:
		if !methodIs(r, http.MethodGet) {
			return notAllowed(w, "GET")
		}
		repos, err := s.Store.Repositories(ctx)
		if err != nil {
			return err
		}
		return s.paginated(w, r, "/v2/_catalog", "repositories", "", repos)
	case routeTags:
		if !methodIs(r, http.MethodGet) {
			return notAllowed(w, "GET")
		}
		tags, err := s.Store.Tags(ctx, rt.name)
		if err != nil {
			return err
		}
		return s.paginated(w, r, "/v2/"+rt.name+"/tags/list", "tags", rt.name, tags)
	case routeManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return s.getManifest(w, r, rt)
		case http.MethodPut:
			return s.putManifest(w, r, rt)
		case http.MethodDelete:
			return reply(w, http.StatusAccepted, s.Store.DeleteManifest(ctx, rt.name, rt.ref))
		}
		return notAllowed(w, "GET, HEAD, PUT, DELETE")
	case routeBlob:
		d, err := storage.ParseDigest(rt.ref)
		if err != nil {
			return newError(http.StatusBadRequest, codeDigestInvalid, "%v", err)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return s.getBlob(w, r, rt.name, d)
		case http.MethodDelete:
			return reply(w, http.StatusAccepted, s.Store.DeleteBlob(ctx, rt.name, d))
		}
		return notAllowed(w, "GET, HEAD, DELETE")
	case routeUploadStart:
		if !methodIs(r, http.MethodPost) {
			return notAllowed(w, "POST")
		}
		return s.startUpload(w, r, rt)
	case routeUpload:
		switch r.Method {
		case http.MethodGet:
			size, err := s.Store.UploadStatus(ctx, rt.name, rt.ref)
			if err != nil {
				return err
			}
			uploadHeaders(w, rt.name, rt.ref, size)
			w.WriteHeader(http.StatusNoContent)
			return nil
		case http.MethodPatch:
			return s.patchUpload(w, r, rt)
		case http.MethodPut:
			return s.finishUpload(w, r, rt)
		case http.MethodDelete:
			return reply(w, http.StatusNoContent, s.Store.CancelUpload(ctx, rt.name, rt.ref))
		}
		return notAllowed(w, "GET, PATCH, PUT, DELETE")
	case routeReferrers:
		if !methodIs(r, http.MethodGet) {
			return notAllowed(w, "GET")
		}
		return s.referrers(w, r, rt)
	}
	return newError(http.StatusNotFound, codeNameUnknown, "no such route")
}

// body is the request's body as handlers read it: with the read timeout
// renewed on every read. r.Body itself stays the server's own, which it
// drains after a reply that did not read it (an out-of-order chunk's 416),
// so the kept-alive connection stays usable.
func (s *Server) body(w http.ResponseWriter, r *http.Request) io.Reader {
	if s.BodyTimeout <= 0 {
		return r.Body
	}
	return timedBody{r.Body, http.NewResponseController(w), s.BodyTimeout}
}

// reply answers an operation with no body: its error, or status.
func reply(w http.ResponseWriter, status int, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(status)
	return nil
}

func methodIs(r *http.Request, ms ...string) bool { return slices.Contains(ms, r.Method) }

func notAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed here (allowed: %s)", allow)
}

// paginated answers a list with the spec's n and last: the entries after
// last, at most n, and a Link to the next page when there is one.
func (s *Server) paginated(w http.ResponseWriter, r *http.Request, path, field, name string, all []string) error {
	q := r.URL.Query()
	entries := all
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(entries, last)
		for i < len(entries) && entries[i] <= last {
			i++
		}
		entries = entries[i:]
	}
	if nq := q.Get("n"); nq != "" {
		n, err := strconv.Atoi(nq)
		if err != nil || n < 0 {
			return newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n %q: want a number of entries", nq)
		}
		if n < len(entries) {
			entries = entries[:n]
			if n > 0 {
				next := url.Values{"n": {strconv.Itoa(n)}, "last": {entries[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, next.Encode()))
			}
		}
	}
	body := map[string]any{field: entries}
	if name != "" {
		body["name"] = name
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(body)
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if s.Upstream != nil {
		if ok, err := s.Upstream.Manifest(ctx, rt.name, rt.ref); ok && err != nil {
			return err
		}
	}
	m, err := s.Store.GetManifest(ctx, rt.name, rt.ref)
	if err != nil {
		if errdefs.IsInvalidArgument(err) {
			// No manifest can be named so: it is not there.
			return newError(http.StatusNotFound, codeManifestUnknown, "%v", err)
		}
		return err
	}
	w.Header().Set("Content-Type", m.MediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(m.Body)))
	w.Header().Set("Docker-Content-Digest", m.Digest.String())
	w.Header().Set("ETag", `"`+m.Digest.String()+`"`)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(m.Body)
	return err
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	limit := s.MaxManifest
	if limit <= 0 {
		limit = storage.MaxManifestSize
	}
	if r.ContentLength > limit {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest of %d bytes is over the %d-byte limit", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(s.body(w, r), limit+1))
	if err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid, "reading the manifest: %v", err)
	}
	if int64(len(body)) > limit {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest is over the %d-byte limit", limit)
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	d, m, err := s.Store.PutManifest(r.Context(), rt.name, rt.ref, strings.TrimSpace(ct), body)
	if err != nil {
		if errdefs.IsInvalidArgument(err) && !strings.Contains(rt.ref, ":") && storage.ValidTag(rt.ref) != nil {
			return newError(http.StatusBadRequest, codeManifestInvalid, "%v", err)
		}
		return err
	}
	// Tags given with a push by digest (?tag=a&tag=b), each confirmed
	// with an OCI-Tag header.
	if tags := r.URL.Query()["tag"]; len(tags) > 0 && strings.Contains(rt.ref, ":") {
		for _, t := range tags {
			if err := s.Store.Tag(r.Context(), rt.name, t, d); err != nil {
				if errdefs.IsInvalidArgument(err) {
					return newError(http.StatusBadRequest, codeManifestInvalid, "tag %q: %v", t, err)
				}
				return err
			}
			w.Header().Add("OCI-Tag", t)
		}
	}
	w.Header().Set("Location", "/v2/"+rt.name+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	ctx := r.Context()
	if r.Method == http.MethodHead {
		info, err := s.Store.BlobInfo(ctx, repo, d)
		if err == nil {
			h := w.Header()
			h.Set("Docker-Content-Digest", d.String())
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
			h.Set("ETag", `"`+d.String()+`"`)
			return nil
		}
		if !errdefs.IsNotFound(err) || s.Upstream == nil {
			return err
		}
	}
	obj, err := s.Store.OpenBlob(ctx, repo, d)
	if errdefs.IsNotFound(err) && s.Upstream != nil {
		if ok, uerr := s.Upstream.Blob(ctx, repo, d); ok && uerr == nil {
			obj, err = s.Store.OpenBlob(ctx, repo, d)
		}
	}
	if err != nil {
		return err
	}
	defer obj.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// A plain GET of the whole blob is written from a mapping of the file
	// (see storage's Map for why not sendfile).
	if m, ok := obj.(mapper); ok && r.Method == http.MethodGet && plainGet(r) {
		if b, unmap, err := m.Map(); err == nil {
			defer unmap()
			h.Set("Content-Length", strconv.Itoa(len(b)))
			h.Set("Accept-Ranges", "bytes")
			h.Set("Last-Modified", obj.Info().ModTime.UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusOK)
			for off := 0; off < len(b); off += mappedWrite {
				if _, err := w.Write(b[off:min(len(b), off+mappedWrite)]); err != nil {
					return nil // the client is gone; the status is sent
				}
			}
			return nil
		}
	}
	// ServeContent answers HEAD, Range and If-None-Match; given the file
	// itself, it sends it with sendfile.
	var content io.ReadSeeker = obj
	if f, ok := obj.(interface{ OSFile() *os.File }); ok {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", obj.Info().ModTime, content)
	return nil
}

func uploadHeaders(w http.ResponseWriter, repo, id string, size int64) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0
	}
	w.Header().Set("Range", fmt.Sprintf("0-%d", end))
	w.Header().Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) startUpload(w *recorder, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := storage.ParseDigest(m)
		if err != nil {
			return newError(http.StatusBadRequest, codeDigestInvalid, "mount: %v", err)
		}
		// mount answers 201 when from holds the blob; done is whether
		// the request is answered (or failed).
		mount := func(from string) (done bool, err error) {
			ok, err := s.Store.Mount(ctx, rt.name, from, d)
			if ok && err == nil {
				blobCreated(w, rt.name, d)
			}
			return ok || err != nil, err
		}
		if from := q.Get("from"); from != "" {
			if err := storage.ValidName(from); err != nil {
				return newError(http.StatusBadRequest, codeNameInvalid, "from: %v", err)
			}
			if done, err := mount(from); done {
				return err
			}
		} else {
			// Without "from", the spec lets a registry mount the blob
			// from wherever it has it: from a repository holding it that
			// the account may read.
			for _, from := range s.Store.Holders(ctx, d) {
				if s.Permits != nil && !s.Permits(w.user, []Access{{Type: "repository", Name: from, Actions: []string{"pull"}}}) {
					continue
				}
				if done, err := mount(from); done {
					return err
				}
			}
		}
		// Not mountable: an upload session, as the spec says.
	}
	if dq := q.Get("digest"); dq != "" {
		d, err := storage.ParseDigest(dq)
		if err != nil {
			return newError(http.StatusBadRequest, codeDigestInvalid, "%v", err)
		}
		if err := s.checkLength(r); err != nil {
			return err
		}
		if err := s.Store.PutBlob(ctx, rt.name, d, s.body(w, r)); err != nil {
			return uploadErr(err)
		}
		blobCreated(w, rt.name, d)
		return nil
	}
	id, err := s.Store.StartUpload(ctx, rt.name)
	if err != nil {
		return err
	}
	uploadHeaders(w, rt.name, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// uploadErr maps an upload's failure: a client that went away mid-chunk
// is a bad upload, not a server fault.
func uploadErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "%v", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) {
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "the upload's body ended early: %v", err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "the client stopped sending (read timeout): the chunk is discarded")
	}
	return err
}

func (s *Server) checkLength(r *http.Request) error {
	if cl := r.Header.Get("Content-Length"); cl != "" && r.ContentLength < 0 {
		return newError(http.StatusBadRequest, codeSizeInvalid, "invalid Content-Length %q", cl)
	}
	if s.Store.MaxUpload > 0 && r.ContentLength > s.Store.MaxUpload {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "blob of %d bytes is over the %d-byte limit", r.ContentLength, s.Store.MaxUpload)
	}
	return nil
}

// contentRange reads a chunk's Content-Range, "START-END" (as the spec
// writes it) or "bytes START-END/TOTAL"; -1 when absent.
func contentRange(r *http.Request) (int64, error) {
	v := r.Header.Get("Content-Range")
	if v == "" {
		return -1, nil
	}
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes ")
	v, _, _ = strings.Cut(v, "/")
	a, b, ok := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "invalid Content-Range %q: want START-END", r.Header.Get("Content-Range"))
	}
	if r.ContentLength >= 0 && end-start+1 != r.ContentLength {
		return 0, newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "Content-Range %q does not match Content-Length %d", r.Header.Get("Content-Range"), r.ContentLength)
	}
	return start, nil
}

func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	start, err := contentRange(r)
	if err != nil {
		return err
	}
	if err := s.checkLength(r); err != nil {
		return err
	}
	size, err := s.Store.AppendUpload(r.Context(), rt.name, rt.ref, start, s.body(w, r))
	if err != nil {
		if errors.Is(err, storage.ErrRangeInvalid) {
			uploadHeaders(w, rt.name, rt.ref, size)
		}
		return uploadErr(err)
	}
	uploadHeaders(w, rt.name, rt.ref, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	dq := r.URL.Query().Get("digest")
	if dq == "" {
		return newError(http.StatusBadRequest, codeDigestInvalid, "closing an upload needs ?digest=")
	}
	d, err := storage.ParseDigest(dq)
	if err != nil {
		return newError(http.StatusBadRequest, codeDigestInvalid, "%v", err)
	}
	start, err := contentRange(r)
	if err != nil {
		return err
	}
	if err := s.checkLength(r); err != nil {
		return err
	}
	if err := s.Store.FinishUpload(r.Context(), rt.name, rt.ref, start, s.body(w, r), d); err != nil {
		return uploadErr(err)
	}
	blobCreated(w, rt.name, d)
	return nil
}

func (s *Server) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := storage.ParseDigest(rt.ref)
	if err != nil {
		return newError(http.StatusBadRequest, codeDigestInvalid, "%v", err)
	}
	at := r.URL.Query().Get("artifactType")
	descs, err := s.Store.Referrers(r.Context(), rt.name, d, at)
	if err != nil {
		return err
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	return json.NewEncoder(w).Encode(ocispec.Index{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	})
}

var specsVersioned = specs.Versioned{SchemaVersion: 2}
