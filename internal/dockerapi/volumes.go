package dockerapi

import (
	"context"
	"net/http"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/volume"

	"github.com/berth-dev/berth/internal/volumes"
)

func (s *Server) volumeRoutes(mux *http.ServeMux) {
	mux.Handle("GET /volumes", route(s.volumeListHandler))
	mux.Handle("POST /volumes/create", route(s.volumeCreate))
	mux.Handle("POST /volumes/prune", route(s.volumePrune))
	mux.Handle("GET /volumes/{name}", route(s.volumeInspect))
	mux.Handle("DELETE /volumes/{name}", route(s.volumeRemove))
}

// apiVolume renders a volume in Docker's shape; with usage, its size and
// reference count too (system df).
func (s *Server) apiVolume(v *volumes.Volume, usage bool) volume.Volume {
	out := volume.Volume{
		Name:       v.Name,
		Driver:     v.Driver,
		Mountpoint: v.Mountpoint,
		Labels:     v.Labels,
		Options:    v.Options,
		Scope:      "local",
		CreatedAt:  v.CreatedAt.Format(time.RFC3339),
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	if usage {
		u := &volume.UsageData{Size: -1}
		if n, err := s.Volumes.Usage(context.Background(), v.Name); err == nil {
			u.Size = n
		}
		if s.Volumes.InUse != nil && s.Volumes.InUse(v.Name) {
			u.RefCount = 1
		}
		out.UsageData = u
	}
	return out
}

func (s *Server) volumeList(ctx context.Context, f Filters, usage bool) ([]volume.Volume, error) {
	vs, err := s.Volumes.List(ctx, volumes.Filters(f))
	if err != nil {
		return nil, err
	}
	out := make([]volume.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, s.apiVolume(v, usage))
	}
	return out, nil
}

func (s *Server) volumeListHandler(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	vs, err := s.volumeList(r.Context(), f, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: vs, Warnings: []string{}})
	return nil
}

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := volumes.CheckDriver(req.Name, req.Driver); err != nil {
		return err
	}
	v, err := s.Volumes.Create(r.Context(), req.Name, req.Labels, req.DriverOpts)
	if err != nil {
		return err
	}
	s.Events.Publish(events.VolumeEventType, events.ActionCreate, v.Name, map[string]string{"driver": v.Driver})
	writeJSON(w, http.StatusCreated, s.apiVolume(v, false))
	return nil
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) error {
	v, err := s.Volumes.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.apiVolume(v, false))
	return nil
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	driver := volumes.DriverLocal
	if v, err := s.Volumes.Get(r.Context(), name); err == nil {
		driver = v.Driver
	}
	if err := s.Volumes.Remove(r.Context(), name, BoolValue(r, "force")); err != nil {
		return err
	}
	s.Events.Publish(events.VolumeEventType, events.ActionDestroy, name, map[string]string{"driver": driver})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	// API 1.42 made prune remove only anonymous volumes unless all=true.
	rep, err := s.Volumes.Prune(r.Context(), volumes.Filters(f), VersionAtLeast(r.Context(), "1.42"))
	if err != nil {
		return err
	}
	out := volume.PruneReport{VolumesDeleted: rep.Removed, SpaceReclaimed: uint64(max(rep.Reclaimed, 0))}
	for _, name := range rep.Removed {
		// Prune removes local volumes only: berth has no other driver.
		s.Events.Publish(events.VolumeEventType, events.ActionDestroy, name, map[string]string{"driver": volumes.DriverLocal})
	}
	s.prunedEvent(events.VolumeEventType, int64(out.SpaceReclaimed))
	if out.VolumesDeleted == nil {
		out.VolumesDeleted = []string{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
