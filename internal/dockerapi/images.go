package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/reference"
	"github.com/berth-dev/berth/internal/remote"
)

// Image names contain slashes ("/images/docker.io/library/busybox/json"),
// which ServeMux wildcards match only at the end of a pattern; so one
// route per method takes the rest of the path and imageAction splits off
// the action suffix, as Docker's {name:.*} routes do.
func (s *Server) imageRoutes(mux *http.ServeMux) {
	mux.Handle("GET /images/json", route(s.imageList))
	mux.Handle("POST /images/create", route(s.imageCreate))
	mux.Handle("GET /images/get", route(s.imageSaveMany))
	mux.Handle("POST /images/load", route(s.imageLoad))
	mux.Handle("POST /images/prune", route(s.imagePrune))
	mux.Handle("GET /images/{rest...}", route(s.imageGet))
	mux.Handle("POST /images/{rest...}", route(s.imagePost))
	mux.Handle("DELETE /images/{rest...}", route(s.imageDelete))
}

// imageAction splits "NAME/ACTION" for one of actions.
func imageAction(rest string, actions ...string) (name, action string) {
	for _, a := range actions {
		if n, ok := strings.CutSuffix(rest, "/"+a); ok && n != "" {
			return n, a
		}
	}
	return "", ""
}

func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) error {
	name, action := imageAction(r.PathValue("rest"), "json", "history", "get")
	switch action {
	case "json":
		return s.imageInspect(w, r, name)
	case "history":
		return s.imageHistory(w, r, name)
	case "get":
		return s.imageSave(w, r, []string{name})
	}
	return errdefs.NotFoundf("page not found")
}

func (s *Server) imagePost(w http.ResponseWriter, r *http.Request) error {
	name, action := imageAction(r.PathValue("rest"), "tag", "push")
	switch action {
	case "tag":
		return s.imageTag(w, r, name)
	case "push":
		return s.imagePush(w, r, name)
	}
	return errdefs.NotFoundf("page not found")
}

// summary converts berth's list entry to Docker's ImageSummary.
func summary(sum images.Summary) image.Summary {
	out := image.Summary{
		ID:          sum.ID.String(),
		RepoTags:    sum.RepoTags,
		RepoDigests: sum.RepoDigests,
		Labels:      sum.Labels,
		Size:        sum.Size,
		SharedSize:  -1,
		Containers:  -1,
	}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	if out.RepoDigests == nil {
		out.RepoDigests = []string{}
	}
	if !sum.Created.IsZero() {
		out.Created = sum.Created.Unix()
	}
	d := sum.Record.Manifest
	if sum.Record.Index != nil {
		d = *sum.Record.Index
	}
	out.Descriptor = &d
	return out
}

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	// API < 1.41 also took a bare "filter" (a reference pattern).
	if ref := r.Form.Get("filter"); ref != "" {
		f["reference"] = append(f["reference"], ref)
	}
	sums, err := s.Images.List(r.Context(), images.Filters(f))
	if err != nil {
		return err
	}
	out := make([]image.Summary, 0, len(sums))
	// RepoDigests are always sent; "digests" only matters to old clients'
	// output, which they format themselves.
	all := BoolValue(r, "all")
	for _, sum := range sums {
		if !all && sum.Record.BuildCache && sum.Record.Dangling() {
			continue // a build step's image, as Docker's intermediate ones
		}
		out = append(out, summary(sum))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) imageInspect(w http.ResponseWriter, r *http.Request, name string) error {
	res, err := s.Images.Inspect(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) error {
	hist, err := s.Images.History(r.Context(), name)
	if err != nil {
		return err
	}
	out := make([]image.HistoryResponseItem, 0, len(hist))
	for _, h := range hist {
		out = append(out, image.HistoryResponseItem{ID: h.ID, Created: h.CreatedUnix, CreatedBy: h.CreatedBy, Tags: h.Tags, Size: h.Size, Comment: h.Comment})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) imageTag(w http.ResponseWriter, r *http.Request, name string) error {
	repo, tag := r.Form.Get("repo"), r.Form.Get("tag")
	if repo == "" {
		return errdefs.Invalidf("tag %s: repository name (repo) is required", name)
	}
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	ref, err := reference.Parse(target)
	if err != nil {
		return err
	}
	img, err := s.Images.Records.Tag(r.Context(), name, ref)
	if err != nil {
		return err
	}
	if s.Events != nil {
		if ref.Tag() == "" {
			ref = ref.WithTag(reference.DefaultTag)
		}
		_, labels := s.imageInfo(r.Context(), img.ID.String())
		s.publishImage(events.ActionTag, img.ID.String(), ref.Familiar(), labels)
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) imageDelete(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("rest")
	var id digest.Digest
	var labels map[string]string
	if s.Events != nil {
		id, labels = s.imageInfo(r.Context(), name)
	}
	res, err := s.Images.Delete(r.Context(), name, images.DeleteOptions{Force: BoolValue(r, "force"), InUse: s.inUseFunc()})
	if err != nil {
		return err
	}
	s.publishDeleted(id, labels, res)
	writeJSON(w, http.StatusOK, deleteResponses(res))
	return nil
}

func deleteResponses(res images.DeleteResult) []image.DeleteResponse {
	out := []image.DeleteResponse{}
	for _, u := range res.Untagged {
		out = append(out, image.DeleteResponse{Untagged: u})
	}
	for _, d := range res.Deleted {
		out = append(out, image.DeleteResponse{Deleted: d.String()})
	}
	return out
}

func (s *Server) inUseFunc() func(digest.Digest) bool {
	if s.Usage == nil {
		return nil
	}
	return s.Usage.ImageInUse
}

func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	if err := f.Only("dangling"); err != nil {
		if k := firstKey(f); k == "until" || k == "label" || k == "label!" {
			return errdefs.NotImplemented(fmt.Errorf("image prune: filter %q is not supported yet", k))
		}
		return err
	}
	all := false
	if ds := f["dangling"]; len(ds) > 0 {
		switch strings.ToLower(ds[len(ds)-1]) {
		case "false", "0":
			all = true
		case "true", "1":
		default:
			return errdefs.Invalidf("invalid filter 'dangling=%s'", ds[len(ds)-1])
		}
	}
	removed, gc, err := s.Images.Prune(r.Context(), all, s.inUseFunc())
	if err != nil {
		return err
	}
	rep := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}, SpaceReclaimed: uint64(max(gc.Reclaimed, 0))}
	for _, d := range removed {
		rep.ImagesDeleted = append(rep.ImagesDeleted, deleteResponses(d)...)
		if len(d.Deleted) > 0 {
			s.publishDeleted(d.Deleted[0], nil, d)
		}
	}
	s.prunedEvent(events.ImageEventType, int64(rep.SpaceReclaimed))
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func firstKey(f Filters) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		if k != "dangling" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// withRegistryAuth carries the X-Registry-Auth credentials, if the client
// sent any, into ctx for the registry client.
func withRegistryAuth(ctx context.Context, r *http.Request) (context.Context, error) {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return ctx, nil
	}
	cfg, err := authconfig.Decode(h)
	if err != nil {
		return ctx, errdefs.Invalidf("invalid X-Registry-Auth header: %v", err)
	}
	if cfg.Username == "" && cfg.Password == "" && cfg.Auth == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "" {
		return ctx, nil
	}
	return remote.WithCredentials(ctx, authn.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}), nil
}

func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) error {
	var plat reference.Platform
	if p := r.Form.Get("platform"); p != "" {
		var err error
		if plat, err = reference.ParsePlatform(p); err != nil {
			return err
		}
	}
	switch {
	case r.Form.Get("fromImage") != "":
		return s.imagePull(w, r, plat)
	case r.Form.Get("fromSrc") != "":
		return s.imageImport(w, r, plat)
	}
	return errdefs.Invalidf("image create: fromImage or fromSrc is required")
}

func (s *Server) imagePull(w http.ResponseWriter, r *http.Request, plat reference.Platform) error {
	from, tag := r.Form.Get("fromImage"), r.Form.Get("tag")
	name := from
	if tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			name += "@" + tag
		} else {
			name += ":" + tag
		}
	}
	if !hasTagOrDigest(name) {
		// dockerd pulls every tag then (`docker pull --all-tags`).
		return errdefs.NotImplemented(fmt.Errorf("pull %s: pulling every tag of a repository is not supported; name a tag", from))
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return err
	}
	ctx, err := withRegistryAuth(r.Context(), r)
	if err != nil {
		return err
	}
	var before digest.Digest
	if old, err := s.Images.Records.Get(ctx, ref.String()); err == nil {
		before = old.ID
	}
	p := NewProgress(w)
	img, err := s.Images.Pull(ctx, ref.String(), images.PullOptions{Platform: plat, Progress: p.Func()})
	if err != nil {
		if errors.Is(err, errdefs.ErrUnauthenticated) || errors.Is(err, errdefs.ErrPermissionDenied) {
			// As dockerd: a 401 here would make the docker CLI prompt
			// for a login and retry, which is not what a refused pull
			// means (the repository may not exist).
			err = errdefs.NotFound(fmt.Errorf("pull access denied for %s, repository does not exist or may require 'docker login': %w", reference.FamiliarName(ref.Name()), err))
		}
		p.Finish(err)
		return nil
	}
	top := img.Manifest.Digest
	if img.Index != nil {
		top = img.Index.Digest
	}
	s.publishByReference(ctx, events.ActionPull, ref)
	p.Status("Digest: %s", top)
	if before == img.ID {
		p.Status("Status: Image is up to date for %s", ref.Familiar())
	} else {
		p.Status("Status: Downloaded newer image for %s", ref.Familiar())
	}
	return nil
}

// hasTagOrDigest reports whether an image name carries a tag or digest
// (a colon after the last slash, or an @).
func hasTagOrDigest(name string) bool {
	if strings.Contains(name, "@") {
		return true
	}
	return strings.Contains(name[strings.LastIndex(name, "/")+1:], ":")
}

func (s *Server) imageImport(w http.ResponseWriter, r *http.Request, plat reference.Platform) error {
	if src := r.Form.Get("fromSrc"); src != "-" {
		return errdefs.NotImplemented(fmt.Errorf("import from %s: importing from a URL is not supported; send the tarball as the request body (fromSrc=-)", src))
	}
	name := r.Form.Get("repo")
	if name != "" {
		if tag := r.Form.Get("tag"); tag != "" {
			name += ":" + tag
		}
	}
	// created is berth's own parameter: the berth CLI sends its
	// SOURCE_DATE_EPOCH so that an import is reproducible.
	var created time.Time
	if v := r.Form.Get("created"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errdefs.Invalidf("import: created=%q: want an RFC 3339 time", v)
		}
		created = t
	}
	p := NewProgress(w)
	img, err := s.Images.Import(r.Context(), r.Body, images.ImportOptions{
		Ref:      name,
		Changes:  r.Form["changes"],
		Message:  r.Form.Get("message"),
		Platform: plat,
		Created:  created,
	})
	if err != nil {
		p.Finish(err)
		return nil
	}
	if s.Events != nil {
		_, labels := s.imageInfo(r.Context(), img.ID.String())
		if name != "" {
			// dockerd tags the import first, with the tag's event.
			if ref, err := reference.Parse(name); err == nil {
				s.publishImage(events.ActionTag, img.ID.String(), ref.Familiar(), labels)
			}
		}
		s.publishByID(events.ActionImport, img.ID, labels)
	}
	p.Status("%s", img.ID)
	return nil
}

func (s *Server) imagePush(w http.ResponseWriter, r *http.Request, name string) error {
	ctx, err := withRegistryAuth(r.Context(), r)
	if err != nil {
		return err
	}
	repo, err := reference.ParseRepository(name)
	if err != nil {
		return err
	}
	var refs []string
	switch tag := r.Form.Get("tag"); {
	case tag != "":
		refs = []string{repo.Name() + ":" + tag}
	case hasTagOrDigest(name):
		ref, err := reference.Parse(name)
		if err != nil {
			return err
		}
		refs = []string{ref.String()}
	default:
		// Every tag of the repository, as `docker push --all-tags`.
		recs, err := s.Images.Records.List(ctx)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			for _, t := range rec.RepoTags {
				if tr, err := reference.ParseRepository(t); err == nil && tr.Name() == repo.Name() {
					refs = append(refs, t)
				}
			}
		}
		slices.Sort(refs)
		if len(refs) == 0 {
			return errdefs.NotFoundf("An image does not exist locally with the tag: %s", repo.Familiar())
		}
	}
	for _, ref := range refs {
		if _, err := s.Images.Records.Get(ctx, ref); err != nil {
			if errdefs.IsNotFound(err) {
				rr, _ := reference.Parse(ref)
				return errdefs.NotFoundf("An image does not exist locally with the tag: %s", rr.Familiar())
			}
			return err
		}
	}
	p := NewProgress(w)
	p.Status("The push refers to repository [%s]", repo.Familiar())
	for _, ref := range refs {
		res, err := s.Images.Push(ctx, ref, images.PushOptions{Progress: p.Func()})
		if err != nil {
			p.Finish(err)
			return nil
		}
		if pr, err := reference.Parse(ref); err == nil {
			s.publishByReference(ctx, events.ActionPush, pr)
		}
		p.Status("%s: digest: %s size: %d", res.Tag, res.Digest, res.Size)
		aux, _ := json.Marshal(map[string]any{"Tag": res.Tag, "Digest": res.Digest.String(), "Size": res.Size})
		p.Send(Message{Aux: json.RawMessage(aux)})
	}
	return nil
}

// lazyWriter sends the response header with the first byte, so a save
// that fails before writing anything still answers with an error status.
type lazyWriter struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", l.contentType)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

func (s *Server) imageSaveMany(w http.ResponseWriter, r *http.Request) error {
	names := r.Form["names"]
	if len(names) == 0 {
		return errdefs.Invalidf("image save: no image names given")
	}
	return s.imageSave(w, r, names)
}

func (s *Server) imageSave(w http.ResponseWriter, r *http.Request, names []string) error {
	lw := &lazyWriter{w: w, contentType: "application/x-tar"}
	if err := s.Images.Save(r.Context(), lw, names); err != nil {
		if !lw.started {
			return err
		}
		// Half an archive was sent: break the connection so the client
		// sees a failed transfer, not a short tarball.
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.Write(nil)
	}
	if s.Events != nil {
		for _, id := range s.imageIDs(r.Context(), names) {
			_, labels := s.imageInfo(r.Context(), id.String())
			s.publishByID(events.ActionSave, id, labels)
		}
	}
	return nil
}

func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) error {
	p := NewProgress(w)
	var fn images.ProgressFunc
	if !BoolValue(r, "quiet") {
		fn = p.Func()
	}
	res, err := s.Images.Load(r.Context(), r.Body, fn)
	if err != nil {
		p.Finish(err)
		return nil
	}
	if s.Events != nil {
		for _, id := range s.imageIDs(r.Context(), res.Tags) {
			_, labels := s.imageInfo(r.Context(), id.String())
			s.publishByID(events.ActionLoad, id, labels)
		}
		for _, id := range res.IDs {
			_, labels := s.imageInfo(r.Context(), id.String())
			s.publishByID(events.ActionLoad, id, labels)
		}
	}
	for _, t := range res.Tags {
		p.Send(Message{Stream: "Loaded image: " + t + "\n"})
	}
	for _, id := range res.IDs {
		p.Send(Message{Stream: "Loaded image ID: " + id.String() + "\n"})
	}
	if !p.Started() {
		p.Send(Message{Stream: "No images were loaded\n"})
	}
	return nil
}
