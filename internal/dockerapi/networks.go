package dockerapi

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	bnet "github.com/berth-dev/berth/internal/network"
)

func (s *Server) networkRoutes(mux *http.ServeMux) {
	if s.Containers == nil {
		return
	}
	mux.Handle("GET /networks", route(s.networkList))
	mux.Handle("POST /networks/create", route(s.networkCreate))
	mux.Handle("POST /networks/prune", route(s.networkPrune))
	mux.Handle("GET /networks/{id}", route(s.networkInspect))
	mux.Handle("DELETE /networks/{id}", route(s.networkRemove))
	mux.Handle("POST /networks/{id}/connect", route(s.networkConnect))
	mux.Handle("POST /networks/{id}/disconnect", route(s.networkDisconnect))
}

// apiNetwork is one network as the API shows it: a bridge network of the
// manager, or one of the pre-defined host and none networks (n == nil).
type apiNetwork struct {
	n    *bnet.Network
	name string // for host and none
}

func (a apiNetwork) ID() string {
	if a.n != nil {
		return a.n.ID
	}
	return engine.PseudoNetworkID(a.name)
}

func (a apiNetwork) Name() string {
	if a.n != nil {
		return a.n.Name
	}
	return a.name
}

// builtin reports whether Docker calls the network pre-defined.
func (a apiNetwork) builtin() bool { return a.n == nil || a.n.Default }

// networks lists every network the API shows, sorted by name.
func (s *Server) networks() []apiNetwork {
	out := []apiNetwork{{name: network.NetworkHost}, {name: network.NetworkNone}}
	if m := s.Containers.NetworkManager(); m != nil {
		for _, n := range m.List() {
			out = append(out, apiNetwork{n: n})
		}
	}
	slices.SortFunc(out, func(a, b apiNetwork) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// findNetwork finds a network by full ID, name, or unique ID prefix.
func (s *Server) findNetwork(ref string) (apiNetwork, error) {
	if ref == "" {
		return apiNetwork{}, errdefs.Invalidf("no network name or ID given")
	}
	var byPrefix []apiNetwork
	for _, a := range s.networks() {
		if a.ID() == ref || a.Name() == ref {
			return a, nil
		}
		if strings.HasPrefix(a.ID(), ref) {
			byPrefix = append(byPrefix, a)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return apiNetwork{}, errdefs.NotFoundf("network %s not found", ref)
	}
	return apiNetwork{}, errdefs.Invalidf("network %s is ambiguous (%d matches found based on ID prefix)", ref, len(byPrefix))
}

func (s *Server) networkBody(a apiNetwork) network.Network {
	out := network.Network{
		Name:       a.Name(),
		ID:         a.ID(),
		Scope:      "local",
		EnableIPv4: a.n != nil,
		IPAM:       network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		ConfigFrom: network.ConfigReference{},
		Options:    map[string]string{},
		Labels:     map[string]string{},
	}
	switch {
	case a.n != nil:
		out.Driver = a.n.Driver
		out.Created = a.n.Created
		out.Internal = a.n.Internal
		out.IPAM.Config = []network.IPAMConfig{{Subnet: a.n.Subnet, Gateway: a.n.Gateway}}
		for k, v := range a.n.Options {
			out.Options[k] = v
		}
		for k, v := range a.n.Labels {
			out.Labels[k] = v
		}
		if a.n.Default {
			out.Options["com.docker.network.bridge.name"] = a.n.Bridge
			out.Options["com.docker.network.bridge.default_bridge"] = "true"
		}
	case a.name == network.NetworkHost:
		out.Driver = "host"
	default:
		out.Driver = "null"
	}
	return out
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	if err := f.Only("name", "id", "label", "driver", "type", "scope", "dangling"); err != nil {
		return err
	}
	out := []network.Summary{}
	for _, a := range s.networks() {
		ok, err := s.networkMatches(a, f)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, network.Summary{Network: s.networkBody(a)})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// networkMatches applies Docker's network filters: name and id match by
// substring and prefix, label by key or key=value, type custom|builtin.
func (s *Server) networkMatches(a apiNetwork, f Filters) (bool, error) {
	anyOf := func(key string, match func(string) bool) bool {
		vals, ok := f[key]
		if !ok {
			return true
		}
		return slices.ContainsFunc(vals, match)
	}
	for _, t := range f["type"] {
		if t != "custom" && t != "builtin" {
			return false, errdefs.Invalidf("invalid filter: 'type'='%s'", t)
		}
	}
	body := s.networkBody(a)
	ok := anyOf("name", func(v string) bool { return strings.Contains(a.Name(), v) }) &&
		anyOf("id", func(v string) bool { return strings.HasPrefix(a.ID(), v) }) &&
		anyOf("driver", func(v string) bool { return body.Driver == v }) &&
		anyOf("scope", func(v string) bool { return v == "local" }) &&
		anyOf("type", func(v string) bool { return (v == "builtin") == a.builtin() }) &&
		anyOf("dangling", func(v string) bool {
			dangling := !a.builtin() && len(s.Containers.NetworkContainers(a.ID())) == 0
			return (v == "true" || v == "1") == dangling
		})
	if !ok {
		return false, nil
	}
	for _, l := range f["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, present := body.Labels[k]
		if !present || (hasValue && got != v) {
			return false, nil
		}
	}
	return true, nil
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	a, err := s.findNetwork(r.PathValue("id"))
	if err != nil {
		return err
	}
	out := network.Inspect{Network: s.networkBody(a), Containers: map[string]network.EndpointResource{}}
	if a.n != nil {
		names := map[string]string{}
		for _, c := range s.Containers.NetworkContainers(a.n.ID) {
			names[c.ID] = c.Name
		}
		for _, ep := range s.Containers.NetworkManager().Endpoints(a.n.ID) {
			res := network.EndpointResource{
				Name:        names[ep.ContainerID],
				EndpointID:  engine.EndpointID(ep.ContainerID, ep.NetworkID),
				IPv4Address: netip.PrefixFrom(ep.IP, ep.PrefixLen),
			}
			if hw, err := net.ParseMAC(ep.MAC); err == nil {
				res.MacAddress = network.HardwareAddr(hw)
			}
			out.Containers[ep.ContainerID] = res
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var req network.CreateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errdefs.Invalidf("network name must not be empty")
	}
	if req.Driver != "" && req.Driver != "bridge" {
		return errdefs.NotFoundf("plugin %q not found: berth has the bridge driver only", req.Driver)
	}
	if req.EnableIPv6 != nil && *req.EnableIPv6 {
		return errdefs.Invalidf("network %s: IPv6 is not supported yet", req.Name)
	}
	if req.ConfigOnly || req.ConfigFrom != nil || req.Ingress || req.Scope == "swarm" || req.Scope == "global" {
		return errdefs.Invalidf("network %s: swarm and config-only networks are not supported", req.Name)
	}
	o := bnet.CreateOptions{Name: req.Name, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return errdefs.Invalidf("network %s: IPAM driver %q is not supported", req.Name, req.IPAM.Driver)
		}
		switch len(req.IPAM.Config) {
		case 0:
		case 1:
			c := req.IPAM.Config[0]
			if c.Subnet.IsValid() {
				o.Subnet = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				if !c.Subnet.IsValid() {
					return errdefs.Invalidf("network %s: a gateway needs a subnet", req.Name)
				}
				o.Gateway = c.Gateway.String()
			}
			if c.IPRange.IsValid() && c.IPRange != c.Subnet {
				return errdefs.Invalidf("network %s: --ip-range is not supported", req.Name)
			}
		default:
			return errdefs.Invalidf("network %s: one subnet per network is supported", req.Name)
		}
	}
	n, err := s.Containers.NetworkCreate(r.Context(), o)
	if err != nil {
		return err
	}
	s.publishNetwork(events.ActionCreate, n, "")
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
	return nil
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) error {
	a, err := s.findNetwork(r.PathValue("id"))
	if err != nil {
		return err
	}
	if a.n == nil {
		return errdefs.Forbiddenf("%s is a pre-defined network and cannot be removed", a.name)
	}
	if err := s.Containers.NetworkRemove(r.Context(), a.n.ID); err != nil {
		return err
	}
	s.publishNetwork(events.ActionDestroy, a.n, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// publishNetwork publishes a network event with dockerd's attributes: the
// network's name and type (its driver), and for connect and disconnect
// the container's full ID.
func (s *Server) publishNetwork(action events.Action, n *bnet.Network, containerID string) {
	attrs := map[string]string{"name": n.Name, "type": n.Driver}
	if containerID != "" {
		attrs["container"] = containerID
	}
	s.Events.Publish(events.NetworkEventType, action, n.ID, attrs)
}

// userNetwork finds a bridge network for connect and disconnect, which
// Docker refuses for the host and none networks.
func (s *Server) userNetwork(ref string) (*bnet.Network, error) {
	a, err := s.findNetwork(ref)
	if err != nil {
		return nil, err
	}
	if a.n == nil {
		return nil, errdefs.Forbiddenf("container cannot be disconnected from host network or connected to %s network", a.name)
	}
	return a.n, nil
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request) error {
	var req network.ConnectRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	n, err := s.userNetwork(r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Containers.NetworkConnect(r.Context(), n.ID, req.Container, req.EndpointConfig); err != nil {
		return err
	}
	if c, err := s.Containers.Get(req.Container); err == nil {
		s.publishNetwork(events.ActionConnect, n, c.ID)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) networkDisconnect(w http.ResponseWriter, r *http.Request) error {
	var req network.DisconnectRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	n, err := s.userNetwork(r.PathValue("id"))
	if err != nil {
		return err
	}
	// The container's ID for the event; a forced disconnect of a container
	// that is gone does nothing, and publishes nothing.
	c, cerr := s.Containers.Get(req.Container)
	if err := s.Containers.NetworkDisconnect(r.Context(), n.ID, req.Container, req.Force); err != nil {
		return err
	}
	if cerr == nil {
		s.publishNetwork(events.ActionDisconnect, n, c.ID)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// networkPrune removes every user-defined network no container uses.
func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilters(r)
	if err != nil {
		return err
	}
	if err := f.Only("label", "label!", "until"); err != nil {
		return err
	}
	var until time.Time
	if v := f["until"]; len(v) > 0 {
		if until, err = engine.ParseUntil(v[0]); err != nil {
			return err
		}
	}
	out := network.PruneReport{NetworksDeleted: []string{}}
	for _, a := range s.networks() {
		if a.builtin() || len(s.Containers.NetworkContainers(a.n.ID)) > 0 {
			continue
		}
		if !until.IsZero() && !a.n.Created.Before(until) {
			continue
		}
		if !engine.LabelsMatch(a.n.Labels, f["label"], f["label!"]) {
			continue
		}
		if err := s.Containers.NetworkRemove(r.Context(), a.n.ID); err != nil {
			if errdefs.IsConflict(err) {
				continue
			}
			return err
		}
		out.NetworksDeleted = append(out.NetworksDeleted, a.n.Name)
		s.publishNetwork(events.ActionDestroy, a.n, "")
	}
	s.prunedEvent(events.NetworkEventType, 0)
	writeJSON(w, http.StatusOK, out)
	return nil
}
