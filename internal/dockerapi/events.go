package dockerapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
	berthevents "github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/images"
	"github.com/berth-dev/berth/internal/reference"
)

// eventRoutes serves GET /events when the daemon keeps an event log.
func (s *Server) eventRoutes(mux *http.ServeMux) {
	if s.Events == nil {
		return
	}
	mux.Handle("GET /events", route(s.eventStream))
}

// eventJSON is an event on the wire. Before API 1.52 dockerd also sent
// status, id and from (the pre-1.22 shape) for container and image
// events, and old clients (docker-py's users) still read them.
type eventJSON struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func wireEvent(m events.Message, legacy bool) eventJSON {
	out := eventJSON{Message: m}
	if legacy && (m.Type == events.ContainerEventType || m.Type == events.ImageEventType) {
		out.Status, out.ID = string(m.Action), m.Actor.ID
		if m.Type == events.ContainerEventType {
			out.From = m.Actor.Attributes["image"]
		}
	}
	return out
}

// eventTime parses since and until: what parseTime takes, and "0" as the
// epoch (`docker events --since 0` shows every recorded event).
func eventTime(v string) (time.Time, error) {
	if v == "0" {
		return time.Unix(0, 0), nil
	}
	return parseTime(v)
}

// eventStream answers GET /events: the recorded events in [since, until]
// that match the filters, then live ones, one JSON object per line, until
// until passes, the client goes away or the daemon stops.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) error {
	since, err := eventTime(r.Form.Get("since"))
	if err != nil {
		return err
	}
	until, err := eventTime(r.Form.Get("until"))
	if err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return errdefs.Invalidf("`since` time (%s) cannot be after `until` time (%s)", r.Form.Get("since"), r.Form.Get("until"))
	}
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	match, err := berthevents.Filter(f)
	if err != nil {
		return err
	}
	ctx, cancel := untilShutdown(r.Context())
	defer cancel()
	past, live := s.Events.Subscribe(ctx, since, until, match)

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// The client waits for the header before it reports the stream open.
	rc := http.NewResponseController(w)
	rc.Flush()
	legacy := !VersionAtLeast(r.Context(), "1.52")
	enc := json.NewEncoder(w)
	for _, m := range past {
		if err := enc.Encode(wireEvent(m, legacy)); err != nil {
			return nil // the client went away
		}
	}
	rc.Flush()
	for m := range live {
		if err := enc.Encode(wireEvent(m, legacy)); err != nil {
			return nil
		}
		rc.Flush()
	}
	return nil
}

// The handlers below publish what dockerd publishes for the same request,
// with its actors and attribute names. Container events, and the volume
// and network events of container create, start and remove, are the
// engine's.

// imageInfo is the ID and labels of the image nameOrID names, for the
// attributes of its events; zero when it cannot be read.
func (s *Server) imageInfo(ctx context.Context, nameOrID string) (digest.Digest, map[string]string) {
	res, err := s.Images.Resolve(ctx, nameOrID)
	if err != nil {
		img, err := s.Images.Records.Get(ctx, nameOrID)
		if err != nil {
			slog.Debug("events: image not found for an event", "image", nameOrID, "err", err)
			return "", nil
		}
		return img.ID, nil
	}
	var labels map[string]string
	if res.Config != nil {
		labels = res.Config.Config.Labels
	}
	return res.ID, labels
}

// publishImage publishes an image event: the actor is id, its attributes
// the image's labels and name, as dockerd's LogImageEvent makes them.
func (s *Server) publishImage(action events.Action, id, name string, labels map[string]string) {
	attrs := maps.Clone(labels)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if name != "" {
		attrs["name"] = name
	}
	s.Events.Publish(events.ImageEventType, action, id, attrs)
}

// publishByReference publishes pull and push: the actor is the reference
// ("busybox:latest"), name its repository ("busybox").
func (s *Server) publishByReference(ctx context.Context, action events.Action, ref reference.Reference) {
	if s.Events == nil {
		return
	}
	_, labels := s.imageInfo(ctx, ref.String())
	s.publishImage(action, ref.Familiar(), reference.FamiliarName(ref.Name()), labels)
}

// publishByID publishes an event whose actor and name are the image ID
// (delete, untag, import, load, save).
func (s *Server) publishByID(action events.Action, id digest.Digest, labels map[string]string) {
	s.publishImage(action, id.String(), id.String(), labels)
}

// publishDeleted publishes what rmi and prune did, in dockerd's order:
// an untag per name removed, then a delete per image removed. id and
// labels are the image's, read before it went.
func (s *Server) publishDeleted(id digest.Digest, labels map[string]string, res images.DeleteResult) {
	if id != "" {
		for range res.Untagged {
			s.publishByID(events.ActionUnTag, id, labels)
		}
	}
	for _, d := range res.Deleted {
		s.publishByID(events.ActionDelete, d, nil)
	}
}

// imageIDs are the images names name for save's events: every tag of a
// bare repository name, else the one image it names.
func (s *Server) imageIDs(ctx context.Context, names []string) []digest.Digest {
	var out []digest.Digest
	add := func(id digest.Digest) {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, name := range names {
		found := false
		if repo, err := reference.ParseRepository(name); err == nil && !hasTagOrDigest(name) {
			recs, err := s.Images.Records.List(ctx)
			if err == nil {
				for _, rec := range recs {
					if slices.ContainsFunc(rec.RepoTags, func(t string) bool {
						tr, err := reference.ParseRepository(t)
						return err == nil && tr.Name() == repo.Name()
					}) {
						add(rec.ID)
						found = true
					}
				}
			}
		}
		if !found {
			if img, err := s.Images.Records.Get(ctx, name); err == nil {
				add(img.ID)
			}
		}
	}
	return out
}

// prunedEvent publishes the prune summary dockerd sends after the events
// of what a prune removed.
func (s *Server) prunedEvent(typ events.Type, reclaimed int64) {
	s.Events.Publish(typ, events.ActionPrune, "", map[string]string{"reclaimed": strconv.FormatInt(reclaimed, 10)})
}
