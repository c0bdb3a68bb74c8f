package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/internal/dns"
	"github.com/berth-dev/berth/internal/errdefs"
	bnet "github.com/berth-dev/berth/internal/network"
)

// A container's networking, by its network mode:
//
//   - none: the runtime makes an empty network namespace (loopback only).
//   - host: no network namespace of its own.
//   - container:X: X's namespace (X's sandbox, or its init's namespace) and
//     X's hostname, hosts and resolv.conf.
//   - bridge (the default) or a user-defined network's name: a sandbox
//     (a network namespace berth makes and bind-mounts before the runtime
//     creates the container) with one veth endpoint per network the
//     container is connected to, published ports as DNAT rules, and, on
//     user-defined networks, berth's DNS server on the gateway address.
//
// The sandbox lives as long as the container runs: it is made at start and
// removed at exit, so a stopped container holds no address (as in Docker).
// The network manager persists every lease and rule, so a daemon killed at
// any point leaves nothing that Reconcile (at Load) does not find.

// networkingEnabled reports whether this engine manages bridge networks.
func (e *Engine) networkingEnabled() bool { return e.o.Networks != nil }

// validateNetwork checks a container's network settings at create and
// fills the default mode; it records the networks the container joins.
func (e *Engine) validateNetwork(cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) (map[string]*network.EndpointSettings, []string, error) {
	var warnings []string
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	nm := hc.NetworkMode
	if nm == "" || nm.IsDefault() {
		if e.networkingEnabled() {
			nm = network.NetworkBridge
		} else {
			nm = network.NetworkNone
		}
		hc.NetworkMode = nm
	}
	ports := len(hc.PortBindings) > 0 || hc.PublishAllPorts
	switch {
	case nm.IsHost():
		if ports {
			warnings = append(warnings, "Published ports are discarded when using host network mode")
			hc.PortBindings, hc.PublishAllPorts = nil, false
		}
		return map[string]*network.EndpointSettings{network.NetworkHost: {}}, warnings, nil
	case nm.IsNone():
		if ports {
			return nil, nil, errdefs.Invalidf("conflicting options: port publishing and the container type network mode")
		}
		return map[string]*network.EndpointSettings{network.NetworkNone: {}}, nil, nil
	case nm.IsContainer():
		if ports {
			return nil, nil, errdefs.Invalidf("conflicting options: port publishing and the container type network mode")
		}
		if cfg.Hostname != "" {
			return nil, nil, errdefs.Invalidf("conflicting options: hostname and the network mode")
		}
		if len(hc.DNS) > 0 || len(hc.ExtraHosts) > 0 {
			return nil, nil, errdefs.Invalidf("conflicting options: dns and the network mode")
		}
		if _, err := e.Get(nm.ConnectedContainer()); err != nil {
			return nil, nil, err
		}
		return nil, nil, nil
	}
	if !e.networkingEnabled() {
		return nil, nil, errdefs.Invalidf("network mode %q: this daemon runs without bridge networking", string(nm))
	}
	primary := nm.NetworkName()
	// Clients name the default network "default" in EndpointsConfig (the
	// docker CLI does when no --network is given).
	if req, ok := eps[network.NetworkDefault]; ok {
		norm := map[string]*network.EndpointSettings{}
		for k, v := range eps {
			norm[k] = v
		}
		delete(norm, network.NetworkDefault)
		if _, has := norm[primary]; !has {
			norm[primary] = req
		}
		eps = norm
	}
	out := map[string]*network.EndpointSettings{}
	names := []string{primary}
	for name := range eps {
		if name != primary {
			names = append(names, name)
		}
	}
	for _, name := range names {
		n, err := e.o.Networks.Get(name)
		if err != nil {
			if errdefs.IsNotFound(err) {
				// Not 404: clients (the docker CLI too) pull the image
				// again on a 404 from create.
				return nil, nil, errdefs.Invalidf("network %s not found", name)
			}
			return nil, nil, err
		}
		if name == primary && !nm.IsBridge() {
			// Referred to by ID or prefix: record the name, which the
			// container's networks are keyed by.
			hc.NetworkMode = container.NetworkMode(n.Name)
		}
		es := requestedEndpoint(eps[name], n.ID)
		if err := checkEndpointSettings(n, es); err != nil {
			return nil, nil, err
		}
		out[n.Name] = es
	}
	return out, warnings, nil
}

// requestedEndpoint keeps what berth honours of a client's endpoint
// settings (aliases, an IPv4 address) for the network networkID.
func requestedEndpoint(req *network.EndpointSettings, networkID string) *network.EndpointSettings {
	es := &network.EndpointSettings{NetworkID: networkID}
	if req != nil {
		es.Aliases = slices.Clone(req.Aliases)
		if req.IPAMConfig != nil {
			es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: req.IPAMConfig.IPv4Address}
		}
	}
	return es
}

// checkEndpointSettings refuses what Docker refuses on its default bridge.
func checkEndpointSettings(n *bnet.Network, es *network.EndpointSettings) error {
	if !n.Default {
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() && !n.Subnet.Contains(es.IPAMConfig.IPv4Address) {
			return errdefs.Invalidf("invalid IP address %s: not in network %s's subnet %s", es.IPAMConfig.IPv4Address, n.Name, n.Subnet)
		}
		return nil
	}
	if len(es.Aliases) > 0 {
		return errdefs.Invalidf("network-scoped alias is supported only for containers in user defined networks")
	}
	if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
		return errdefs.Invalidf("user specified IP address is supported on user defined networks only")
	}
	return nil
}

// networkNamesLocked lists the container's networks, primary first.
func (c *Container) networkNamesLocked() []string {
	primary := c.HostConfig.NetworkMode.NetworkName()
	var names []string
	for name := range c.Networks {
		if name != primary {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if _, ok := c.Networks[primary]; ok {
		names = append([]string{primary}, names...)
	}
	return names
}

// usesSandbox reports whether the container gets a berth-made network
// namespace (bridge or user-defined network).
func usesSandbox(hc *container.HostConfig) bool {
	nm := hc.NetworkMode
	return !nm.IsNone() && !nm.IsHost() && !nm.IsContainer()
}

// netSetup is what setupNetworkLocked made: the spec's namespace path and,
// for container:X, X's files.
type netSetup struct {
	nsPath  string
	etcFrom *Container
	hostIP  netip.Addr // the address for /etc/hosts
}

// setupNetworkLocked prepares the container's network before the runtime
// creates it. On error nothing is left. peer is the container named by
// --network container:X (locked here under c.mu: a container never joins
// one that joins it back, so the order is safe).
func (e *Engine) setupNetworkLocked(ctx context.Context, c *Container, peer *Container) (ns netSetup, err error) {
	hc := c.HostConfig
	switch {
	case hc.NetworkMode.IsNone(), hc.NetworkMode.IsHost():
		return ns, nil
	case hc.NetworkMode.IsContainer():
		other := peer
		if other == nil {
			return ns, errdefs.NotFoundf("No such container: %s", hc.NetworkMode.ConnectedContainer())
		}
		if other.ID == c.ID {
			return ns, errdefs.Invalidf("cannot join own network")
		}
		other.mu.Lock()
		running, pid := other.State.Status == container.StateRunning, other.State.Pid
		other.mu.Unlock()
		if !running {
			return ns, errdefs.Conflictf("cannot join network of a non running container: %s", other.Name)
		}
		ns.etcFrom = other
		if e.networkingEnabled() {
			if p := e.o.Networks.SandboxPath(other.ID); p != "" {
				if _, err := os.Stat(p); err == nil {
					ns.nsPath = p
					return ns, nil
				}
			}
		}
		ns.nsPath = fmt.Sprintf("/proc/%d/ns/net", pid)
		return ns, nil
	}
	if !e.networkingEnabled() {
		return ns, errdefs.Invalidf("network mode %q: this daemon runs without bridge networking", string(hc.NetworkMode))
	}
	m := e.o.Networks
	path, err := m.CreateSandbox(ctx, c.ID)
	if err != nil {
		return ns, fmt.Errorf("creating network namespace: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := m.RemoveSandbox(context.WithoutCancel(ctx), c.ID); rerr != nil {
				slog.Warn("removing network namespace after a failed start", "id", shortID(c.ID), "err", rerr)
			}
		}
	}()
	var first *bnet.Endpoint
	for _, name := range c.networkNamesLocked() {
		ep, err := e.attachLocked(ctx, c, name)
		if err != nil {
			return ns, err
		}
		if first == nil {
			first = ep
		}
	}
	if first == nil {
		return ns, errdefs.Invalidf("container %s is connected to no network", c.Name)
	}
	ports, err := publishedPorts(c.Config, hc)
	if err != nil {
		return ns, err
	}
	if len(ports) > 0 {
		if _, err := m.Publish(ctx, c.ID, first.IP, ports); err != nil {
			return ns, err
		}
	}
	ns.nsPath, ns.hostIP = path, first.IP
	return ns, nil
}

// attachLocked connects the running (or starting) container to one of its
// networks.
func (e *Engine) attachLocked(ctx context.Context, c *Container, name string) (*bnet.Endpoint, error) {
	es := c.Networks[name]
	ref := name
	if es != nil && es.NetworkID != "" {
		ref = es.NetworkID
	}
	n, err := e.o.Networks.Get(ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFoundf("network %s not found (it was removed while container %s was stopped)", name, c.Name)
		}
		return nil, err
	}
	o := bnet.AttachOptions{ContainerID: c.ID}
	if !n.Default {
		// Docker's DNS names on a user-defined network: the container's
		// name, its short ID, the hostname and the --network-alias names.
		o.Aliases = []string{c.Name, shortID(c.ID)}
		if c.Config.Hostname != "" && c.Config.Hostname != shortID(c.ID) {
			o.Aliases = append(o.Aliases, c.Config.Hostname)
		}
	}
	if es != nil {
		o.Aliases = append(o.Aliases, es.Aliases...)
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
			o.IP = es.IPAMConfig.IPv4Address.String()
		}
	}
	ep, err := e.o.Networks.Attach(ctx, n.ID, o)
	if err != nil {
		return nil, fmt.Errorf("connecting to network %s: %w", n.Name, err)
	}
	if !n.Default {
		e.ensureDNS(n)
	}
	return ep, nil
}

// teardownNetwork removes the container's sandbox, endpoints and ports.
func (e *Engine) teardownNetwork(c *Container) {
	if !e.networkingEnabled() || !usesSandbox(c.HostConfig) {
		return
	}
	t0 := time.Now()
	if err := e.o.Networks.RemoveSandbox(context.Background(), c.ID); err != nil {
		slog.Warn("removing the container's network failed", "id", shortID(c.ID), "err", err)
	}
	slog.Debug("container network removed", "id", shortID(c.ID), "took", time.Since(t0))
}

// publishedPorts turns -p and -P into port mappings. -P publishes every
// exposed port on an ephemeral host port, as Docker does.
func publishedPorts(cfg *container.Config, hc *container.HostConfig) ([]bnet.PortMapping, error) {
	var out []bnet.PortMapping
	seen := map[network.Port]bool{}
	keys := make([]network.Port, 0, len(hc.PortBindings))
	for p := range hc.PortBindings {
		keys = append(keys, p)
	}
	slices.SortFunc(keys, func(a, b network.Port) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range keys {
		seen[p] = true
		bindings := hc.PortBindings[p]
		if len(bindings) == 0 {
			bindings = []network.PortBinding{{}}
		}
		for _, b := range bindings {
			pm, err := portMapping(p, b)
			if err != nil {
				return nil, err
			}
			out = append(out, pm)
		}
	}
	if hc.PublishAllPorts {
		var exposed []network.Port
		for p := range cfg.ExposedPorts {
			if !seen[p] {
				exposed = append(exposed, p)
			}
		}
		slices.SortFunc(exposed, func(a, b network.Port) int { return strings.Compare(a.String(), b.String()) })
		for _, p := range exposed {
			pm, err := portMapping(p, network.PortBinding{})
			if err != nil {
				return nil, err
			}
			out = append(out, pm)
		}
	}
	return out, nil
}

func portMapping(p network.Port, b network.PortBinding) (bnet.PortMapping, error) {
	proto := string(p.Proto())
	if proto != "tcp" && proto != "udp" {
		return bnet.PortMapping{}, errdefs.Invalidf("publishing port %s: protocol %s is not supported (tcp or udp)", p, proto)
	}
	pm := bnet.PortMapping{Proto: proto, ContainerPort: p.Num()}
	if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
		if !b.HostIP.Is4() && !b.HostIP.Is4In6() {
			return bnet.PortMapping{}, errdefs.Invalidf("publishing port %s on %s: IPv6 host addresses are not supported yet", p, b.HostIP)
		}
		pm.HostIP = b.HostIP.Unmap()
	}
	if b.HostPort != "" {
		lo, hi, isRange := strings.Cut(b.HostPort, "-")
		n, err := strconv.ParseUint(lo, 10, 16)
		if err != nil || n == 0 {
			return bnet.PortMapping{}, errdefs.Invalidf("publishing port %s: invalid host port %q", p, b.HostPort)
		}
		if isRange {
			// A host range for one container port: Docker takes the first
			// free one; berth takes the range's first port.
			if _, err := strconv.ParseUint(hi, 10, 16); err != nil {
				return bnet.PortMapping{}, errdefs.Invalidf("publishing port %s: invalid host port range %q", p, b.HostPort)
			}
		}
		pm.HostPort = uint16(n)
	}
	return pm, nil
}

// networkSettingsLocked renders the container's networks for inspect and
// ps.
func (e *Engine) networkSettingsLocked(c *Container) (map[string]*network.EndpointSettings, network.PortMap) {
	nets := map[string]*network.EndpointSettings{}
	var eps []*bnet.Endpoint
	running := c.State.running()
	if e.networkingEnabled() && running && usesSandbox(c.HostConfig) {
		eps = e.o.Networks.ContainerEndpoints(c.ID)
	}
	for name, es := range c.Networks {
		out := &network.EndpointSettings{NetworkID: es.NetworkID, Aliases: slices.Clone(es.Aliases)}
		if es.IPAMConfig != nil {
			cp := *es.IPAMConfig
			out.IPAMConfig = &cp
		}
		if out.NetworkID == "" {
			out.NetworkID = PseudoNetworkID(name)
		}
		for _, ep := range eps {
			if ep.NetworkID != es.NetworkID {
				continue
			}
			out.EndpointID = EndpointID(c.ID, ep.NetworkID)
			out.Gateway = ep.Gateway
			out.IPAddress = ep.IP
			out.IPPrefixLen = ep.PrefixLen
			if hw, err := net.ParseMAC(ep.MAC); err == nil {
				out.MacAddress = network.HardwareAddr(hw)
			}
			out.DNSNames = slices.Clone(ep.Aliases)
		}
		nets[name] = out
	}
	var ports network.PortMap
	if usesSandbox(c.HostConfig) {
		ports = network.PortMap{}
		for p := range c.Config.ExposedPorts {
			ports[p] = nil
		}
		if e.networkingEnabled() && running {
			for _, pm := range e.o.Networks.Ports(c.ID) {
				p, err := network.ParsePort(fmt.Sprintf("%d/%s", pm.ContainerPort, pm.Proto))
				if err != nil {
					continue
				}
				ip := pm.HostIP
				if !ip.IsValid() {
					ip = netip.IPv4Unspecified()
				}
				ports[p] = append(ports[p], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(pm.HostPort))})
			}
		}
	}
	return nets, ports
}

// endpointID is a stable 64-hex endpoint ID, as Docker shows.
func EndpointID(containerID, networkID string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + networkID))
	return hex.EncodeToString(sum[:])
}

// PseudoNetworkID names the host and none networks, which have no
// manager record: stable per name.
func PseudoNetworkID(name string) string {
	sum := sha256.Sum256([]byte("berth-network/" + name))
	return hex.EncodeToString(sum[:])
}

// etcHostsEntry is the container's own line in /etc/hosts: its address
// and its hostname, as Docker writes.
func etcHostsEntry(ip netip.Addr, hostname string) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String() + "\t" + hostname + "\n"
}

// dnsServerFor is the nameserver of a container on a user-defined
// network: berth's DNS server on its gateway, when it runs. Otherwise the
// host's resolvers are used (as Docker's default bridge does).
func (e *Engine) dnsServerFor(c *Container) (netip.Addr, bool) {
	if !e.networkingEnabled() || !usesSandbox(c.HostConfig) {
		return netip.Addr{}, false
	}
	name := c.HostConfig.NetworkMode.NetworkName()
	es := c.Networks[name]
	if es == nil {
		return netip.Addr{}, false
	}
	n, err := e.o.Networks.Get(es.NetworkID)
	if err != nil || n.Default {
		return netip.Addr{}, false
	}
	e.dnsMu.Lock()
	_, ok := e.dns[n.ID]
	e.dnsMu.Unlock()
	return n.Gateway, ok
}

// ensureDNS starts berth's DNS server for a user-defined network if it is
// not running. A failure (port 53 of the gateway taken) is logged: the
// network's containers then use the host's resolvers.
func (e *Engine) ensureDNS(n *bnet.Network) {
	e.dnsMu.Lock()
	defer e.dnsMu.Unlock()
	if _, ok := e.dns[n.ID]; ok {
		return
	}
	id := n.ID
	cfg := dns.Config{
		Addr:   netip.AddrPortFrom(n.Gateway, 53),
		Lookup: func(name string) []netip.Addr { return e.lookupName(id, name) },
	}
	if n.Internal {
		// No egress means no DNS egress either (Docker's CVE-2024-29018):
		// only the network's own names are answered.
		cfg.Upstreams = []netip.AddrPort{}
	}
	srv, err := dns.Start(context.Background(), cfg)
	if err != nil {
		slog.Warn("no DNS by container name on this network", "network", n.Name, "err", err)
		return
	}
	e.dns[id] = srv
}

// stopDNS stops the DNS server of a removed network.
func (e *Engine) stopDNS(networkID string) {
	e.dnsMu.Lock()
	srv := e.dns[networkID]
	delete(e.dns, networkID)
	e.dnsMu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// StopDNS stops every DNS server (daemon shutdown).
func (e *Engine) StopDNS() {
	e.dnsMu.Lock()
	ids := make([]string, 0, len(e.dns))
	for id := range e.dns {
		ids = append(ids, id)
	}
	e.dnsMu.Unlock()
	for _, id := range ids {
		e.stopDNS(id)
	}
}

// lookupName answers DNS for a network: the container names and aliases
// of its endpoints (the manager's aliases are recorded at attach; a
// renamed container is found by its current name too).
func (e *Engine) lookupName(networkID, name string) []netip.Addr {
	if c, err := e.Get(name); err == nil && c.nameIs(name) {
		for _, ep := range e.o.Networks.ContainerEndpoints(c.ID) {
			if ep.NetworkID == networkID {
				return []netip.Addr{ep.IP}
			}
		}
	}
	return e.o.Networks.Resolve(networkID, name)
}

// startNetworkServices starts DNS for every user-defined network that has
// endpoints (at Load, for containers that kept running).
func (e *Engine) startNetworkServices() {
	if !e.networkingEnabled() {
		return
	}
	for _, n := range e.o.Networks.List() {
		if !n.Default && len(e.o.Networks.Endpoints(n.ID)) > 0 {
			e.ensureDNS(n)
		}
	}
}

// reconcileNetworks removes the networking of every container that is not
// running: what a crash left behind.
func (e *Engine) reconcileNetworks(ctx context.Context) {
	if !e.networkingEnabled() {
		return
	}
	// The set is taken before Reconcile, which holds the manager's lock:
	// asking a container under it would wait for c.mu, which an exit or a
	// restart holds while it waits for the manager (a deadlock).
	running := map[string]bool{}
	for _, c := range e.all() {
		c.mu.Lock()
		// A restarting container keeps nothing between its attempts.
		running[c.ID] = c.State.running() && c.State.Status != container.StateRestarting
		c.mu.Unlock()
	}
	live := func(id string) bool { return running[id] }
	if err := e.o.Networks.Reconcile(ctx, live); err != nil {
		slog.Warn("reconciling networks", "err", err)
	}
}

// NetworkCreate makes a user-defined network.
func (e *Engine) NetworkCreate(ctx context.Context, o bnet.CreateOptions) (*bnet.Network, error) {
	if !e.networkingEnabled() {
		return nil, errdefs.Invalidf("this daemon runs without bridge networking")
	}
	switch o.Name {
	case network.NetworkHost, network.NetworkNone, network.NetworkBridge, network.NetworkDefault:
		return nil, errdefs.Forbiddenf("%s is a pre-defined network and cannot be created", o.Name)
	}
	// Docker's bridge driver options change behaviour; accepting and
	// ignoring one (enable_icc=false above all) would be a silent lie.
	for k, v := range o.Options {
		if strings.HasPrefix(k, "com.docker.network.") {
			return nil, errdefs.Invalidf("network %s: option %s=%s is not supported yet", o.Name, k, v)
		}
	}
	return e.o.Networks.Create(ctx, o)
}

// NetworkRemove removes a user-defined network that no running container
// uses.
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	n, err := e.network(ref)
	if err != nil {
		return err
	}
	if n.Default {
		return errdefs.Forbiddenf("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if eps := e.o.Networks.Endpoints(n.ID); len(eps) > 0 {
		return errdefs.Conflictf("error while removing network: network %s has active endpoints", n.Name)
	}
	if err := e.o.Networks.Remove(ctx, n.ID); err != nil {
		return err
	}
	e.stopDNS(n.ID)
	return nil
}

// NetworkContainers lists the containers connected to a network (running
// or not) for inspect and prune.
func (e *Engine) NetworkContainers(networkID string) []*Container {
	var out []*Container
	for _, c := range e.all() {
		c.mu.Lock()
		for _, es := range c.Networks {
			if es.NetworkID == networkID {
				out = append(out, c)
				break
			}
		}
		c.mu.Unlock()
	}
	return out
}

// network finds a bridge network by name, ID or ID prefix.
func (e *Engine) network(ref string) (*bnet.Network, error) {
	if !e.networkingEnabled() {
		return nil, errdefs.NotFoundf("network %s not found", ref)
	}
	return e.o.Networks.Get(ref)
}

// NetworkConnect connects a container to a network; a running one gets
// its endpoint at once.
func (e *Engine) NetworkConnect(ctx context.Context, netRef, ref string, req *network.EndpointSettings) error {
	n, err := e.network(netRef)
	if err != nil {
		return err
	}
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !usesSandbox(c.HostConfig) {
		return errdefs.Forbiddenf("container %s is in network mode %s and cannot be connected to other networks", c.Name, c.HostConfig.NetworkMode)
	}
	if _, ok := c.Networks[n.Name]; ok {
		return errdefs.Forbiddenf("endpoint with name %s already exists in network %s", c.Name, n.Name)
	}
	es := requestedEndpoint(req, n.ID)
	if err := checkEndpointSettings(n, es); err != nil {
		return err
	}
	if c.Networks == nil {
		c.Networks = map[string]*network.EndpointSettings{}
	}
	c.Networks[n.Name] = es
	if c.State.running() {
		if _, err := e.attachLocked(ctx, c, n.Name); err != nil {
			delete(c.Networks, n.Name)
			return err
		}
	}
	return c.saveLocked()
}

// NetworkDisconnect disconnects a container from a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, netRef, ref string, force bool) error {
	n, err := e.network(netRef)
	if err != nil {
		return err
	}
	c, err := e.Get(ref)
	if err != nil {
		if force && errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.Networks[n.Name]; !ok {
		return errdefs.Forbiddenf("container %s is not connected to network %s", c.Name, n.Name)
	}
	if c.State.running() {
		if err := e.o.Networks.Detach(ctx, n.ID, c.ID); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	delete(c.Networks, n.Name)
	return c.saveLocked()
}

// etcFilesFrom returns the paths of another container's hostname, hosts
// and resolv.conf (network mode container:X).
func etcFilesFrom(other *Container) (hostname, hosts, resolv string) {
	return filepath.Join(other.dir, "hostname"), filepath.Join(other.dir, "hosts"), filepath.Join(other.dir, "resolv.conf")
}

// hostGateway is the address --add-host NAME:host-gateway maps to: the
// default bridge's gateway, the host as containers see it (as in Docker).
func (e *Engine) hostGateway() (netip.Addr, error) {
	if !e.networkingEnabled() {
		return netip.Addr{}, errdefs.Invalidf("host-gateway needs bridge networking")
	}
	n, err := e.o.Networks.Get(network.NetworkBridge)
	if err != nil {
		return netip.Addr{}, err
	}
	return n.Gateway, nil
}

// portSummaries flattens a port map for ps, sorted as Docker's CLI expects
// to group them.
func portSummaries(pm network.PortMap) []container.PortSummary {
	out := []container.PortSummary{}
	for p, bindings := range pm {
		if len(bindings) == 0 {
			out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
			continue
		}
		for _, b := range bindings {
			n, _ := strconv.ParseUint(b.HostPort, 10, 16)
			out = append(out, container.PortSummary{IP: b.HostIP, PrivatePort: p.Num(), PublicPort: uint16(n), Type: string(p.Proto())})
		}
	}
	slices.SortFunc(out, func(a, b container.PortSummary) int {
		if a.PrivatePort != b.PrivatePort {
			return int(a.PrivatePort) - int(b.PrivatePort)
		}
		if a.Type != b.Type {
			return strings.Compare(a.Type, b.Type)
		}
		return int(a.PublicPort) - int(b.PublicPort)
	})
	return out
}

// NetworkManager is the bridge network manager, or nil.
func (e *Engine) NetworkManager() *bnet.Manager { return e.o.Networks }

// nameIs reports whether the container is called name (any case), read
// under its lock: Rename changes it.
func (c *Container) nameIs(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.EqualFold(c.Name, name)
}
