package network

import (
	"context"
	"errors"
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

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Endpoint is a container's attachment to a network. Its record on disk
// is the lease of its IP.
type Endpoint struct {
	NetworkID   string     `json:"networkID"`
	NetworkName string     `json:"networkName"`
	ContainerID string     `json:"containerID"`
	IfName      string     `json:"ifName"` // inside the container: eth0, eth1, ...
	HostIf      string     `json:"hostIf"` // host side veth name
	IP          netip.Addr `json:"ip"`
	PrefixLen   int        `json:"prefixLen"`
	Gateway     netip.Addr `json:"gateway"`
	MAC         string     `json:"mac"` // "02:42:..." style, lower-case
	// Aliases are the endpoint's DNS names (container name, short ID,
	// --network-alias).
	Aliases []string `json:"aliases,omitempty"`
}

func (e *Endpoint) clone() *Endpoint {
	c := *e
	c.Aliases = slices.Clone(e.Aliases)
	return &c
}

// AttachOptions are an Attach's settings.
type AttachOptions struct {
	ContainerID string
	Aliases     []string
	// IP is the requested address ("" = allocate). It must be in the
	// subnet, not the gateway, network or broadcast address (Invalid),
	// and not leased (Conflict).
	IP string
}

// putEndpoint records ep in the maps; callers hold mu (or are load).
func (m *Manager) putEndpoint(ep *Endpoint) {
	byNet := m.endpoints[ep.ContainerID]
	if byNet == nil {
		byNet = map[string]*Endpoint{}
		m.endpoints[ep.ContainerID] = byNet
	}
	byNet[ep.NetworkID] = ep
}

// endpointsOf lists a network's endpoints sorted by address; callers hold
// mu or opMu.
func (m *Manager) endpointsOf(networkID string) []*Endpoint {
	var out []*Endpoint
	for _, byNet := range m.endpoints {
		if ep, ok := byNet[networkID]; ok {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// containerEndpoints lists a container's endpoints by interface (eth0
// first); callers hold mu or opMu.
func (m *Manager) containerEndpoints(containerID string) []*Endpoint {
	var out []*Endpoint
	for _, ep := range m.endpoints[containerID] {
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return ifIndex(out[i].IfName) < ifIndex(out[j].IfName) })
	return out
}

// ifIndex is N of ethN.
func ifIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "eth"))
	if err != nil {
		return 1 << 30
	}
	return n
}

// Endpoints lists the endpoints on a network, sorted by address.
func (m *Manager) Endpoints(networkID string) []*Endpoint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Endpoint
	for _, ep := range m.endpointsOf(networkID) {
		out = append(out, ep.clone())
	}
	return out
}

// ContainerEndpoints lists a container's endpoints, eth0 first.
func (m *Manager) ContainerEndpoints(containerID string) []*Endpoint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Endpoint
	for _, ep := range m.containerEndpoints(containerID) {
		out = append(out, ep.clone())
	}
	return out
}

// Resolve answers DNS on a user-defined network: the addresses of its
// endpoints with name among their aliases (case-insensitive). The default
// network has no DNS by name, as in Docker.
func (m *Manager) Resolve(networkID, name string) []netip.Addr {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, ok := m.networks[networkID]
	if !ok || n.Default {
		return nil
	}
	name = strings.TrimSuffix(name, ".")
	var out []netip.Addr
	for _, ep := range m.endpointsOf(networkID) {
		if slices.ContainsFunc(ep.Aliases, func(a string) bool { return strings.EqualFold(a, name) }) {
			out = append(out, ep.IP)
		}
	}
	return out
}

// SandboxPath is where a container's network namespace is (to be)
// mounted: <ExecRoot>/<containerID>. It is "" for an invalid ID.
func (m *Manager) SandboxPath(containerID string) string {
	if checkContainerID(containerID) != nil {
		return ""
	}
	return filepath.Join(m.cfg.ExecRoot, containerID)
}

// CreateSandbox makes the container's network namespace, with lo up, and
// bind-mounts it at SandboxPath for the runtime to join. It returns the
// existing one if there is one.
func (m *Manager) CreateSandbox(ctx context.Context, containerID string) (string, error) {
	if err := checkContainerID(containerID); err != nil {
		return "", err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return "", err
	}
	path := m.SandboxPath(containerID)
	if isNetnsMount(path) {
		return path, nil
	}
	if err := createNetns(path); err != nil {
		return "", fmt.Errorf("container %s: %w", containerID, err)
	}
	return path, nil
}

// RemoveSandbox detaches every endpoint of the container (veth deleted,
// lease released, record removed), removes its published ports, and
// unmounts and removes its network namespace. Nothing existing is fine.
func (m *Manager) RemoveSandbox(ctx context.Context, containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	return m.removeSandbox(containerID, detachLinkLater)
}

// removeSandbox is RemoveSandbox; callers hold opMu. unlink removes the
// host's veths: at a container's exit lazily (detachLinkLater, the fast
// path), in Reconcile and Destroy at once (deleteLink), so that the host
// is clean when they return.
func (m *Manager) removeSandbox(containerID string, unlink func(string) error) error {
	var errs []error
	m.mu.RLock()
	eps := m.containerEndpoints(containerID)
	m.mu.RUnlock()
	for _, ep := range eps {
		if err := m.detachWith(ep, unlink); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.unpublish(containerID); err != nil {
		errs = append(errs, err)
	}
	if err := unmountNetns(filepath.Join(m.cfg.ExecRoot, containerID)); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(m.endpointDir(containerID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("removing the network of container %s: %w", containerID, err)
	}
	return nil
}

// Attach connects the container's sandbox to a network: a veth pair, one
// end in the bridge, the other in the sandbox as the next free ethN with
// the leased address and a MAC derived from it, and a default route via
// the gateway if the sandbox has none (its first endpoint; internal
// networks give none, as in Docker). The lease and endpoint record are
// persisted before the kernel is touched, so a crash never hands an
// address out twice.
func (m *Manager) Attach(ctx context.Context, netRef string, o AttachOptions) (*Endpoint, error) {
	if err := checkContainerID(o.ContainerID); err != nil {
		return nil, err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	n, err := m.getLocked(netRef)
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	cid := o.ContainerID
	nsPath := m.SandboxPath(cid)
	if !isNetnsMount(nsPath) {
		return nil, errdefs.FailedPrecondition(fmt.Errorf("container %s has no network sandbox: create it before attaching", cid))
	}
	mine := m.endpoints[cid]
	if _, ok := mine[n.ID]; ok {
		return nil, errdefs.Conflict(fmt.Errorf("container %s is already attached to network %s", cid, n.Name))
	}
	leased := func(ip netip.Addr) bool {
		for _, ep := range m.endpointsOf(n.ID) {
			if ep.IP == ip {
				return true
			}
		}
		return false
	}
	var ip netip.Addr
	if o.IP != "" {
		ip, err = checkRequestedIP(n, o.IP, leased)
	} else {
		ip, err = allocateIP(n, leased)
	}
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, ep := range mine {
		used[ifIndex(ep.IfName)] = true
	}
	idx := 0
	for used[idx] {
		idx++
	}
	ep := &Endpoint{
		NetworkID:   n.ID,
		NetworkName: n.Name,
		ContainerID: cid,
		IfName:      "eth" + strconv.Itoa(idx),
		HostIf:      vethName(m.cfg.Root, cid, n.ID),
		IP:          ip,
		PrefixLen:   n.Subnet.Bits(),
		Gateway:     n.Gateway,
		MAC:         macFor(ip),
		Aliases:     dedupeAliases(o.Aliases),
	}

	if err := writeJSON(m.endpointFile(cid, n.ID), ep); err != nil {
		return nil, fmt.Errorf("recording the lease of %s on network %s: %w", ip, n.Name, err)
	}
	m.mu.Lock()
	m.putEndpoint(ep)
	m.mu.Unlock()
	if err := m.plug(n, ep, nsPath); err != nil {
		if derr := m.detach(ep); derr != nil {
			slog.Warn("cleaning up after a failed attach", "container", cid, "network", n.Name, "err", derr)
		}
		return nil, fmt.Errorf("attaching container %s to network %s: %w", cid, n.Name, err)
	}
	return ep.clone(), nil
}

// plug creates the endpoint's veth, re-creating the bridge if it went
// missing (someone deleted it by hand).
func (m *Manager) plug(n *Network, ep *Endpoint, nsPath string) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil || br.Type() != "bridge" {
		if err := m.installNetwork(n); err != nil {
			return err
		}
		if br, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("looking up bridge %s: %w", n.Bridge, err)
		}
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	mtu := br.Attrs().MTU
	if mtu == 0 {
		mtu = bridgeMTU
	}
	spec := vethSpec{
		hostIf:    ep.HostIf,
		ifName:    ep.IfName,
		master:    br.Attrs().Index,
		mtu:       mtu,
		ip:        ep.IP,
		prefixLen: ep.PrefixLen,
		mac:       mac,
	}
	if !n.Internal {
		spec.gateway = n.Gateway
	}
	return plugVeth(nsPath, spec)
}

func dedupeAliases(in []string) []string {
	var out []string
	for _, a := range in {
		if a != "" && !slices.ContainsFunc(out, func(b string) bool { return strings.EqualFold(a, b) }) {
			out = append(out, a)
		}
	}
	return out
}

// Detach disconnects the container from a network: its veth is deleted
// and its lease released. Ports published through that endpoint are
// removed. NotFound if the container is not attached.
func (m *Manager) Detach(ctx context.Context, netRef, containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return err
	}
	m.mu.RLock()
	n, err := m.getLocked(netRef)
	var ep *Endpoint
	if err == nil {
		ep = m.endpoints[containerID][n.ID]
	}
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	if ep == nil {
		return errdefs.NotFoundf("container %s is not attached to network %s", containerID, n.Name)
	}
	if err := m.detach(ep); err != nil {
		return err
	}
	if rec := m.ports[containerID]; rec != nil && rec.NetworkID == n.ID {
		if err := m.unpublish(containerID); err != nil {
			return err
		}
	}
	// The sandbox may have lost its default route with the endpoint.
	nsPath := m.SandboxPath(containerID)
	if !isNetnsMount(nsPath) {
		return nil
	}
	m.mu.RLock()
	rest := m.containerEndpoints(containerID)
	m.mu.RUnlock()
	for _, o := range rest {
		if on := m.networks[o.NetworkID]; on != nil && !on.Internal {
			if err := defaultRouteVia(nsPath, o.IfName, o.Gateway); err != nil {
				slog.Warn("restoring the default route after a detach", "container", containerID, "err", err)
			}
			break
		}
	}
	return nil
}

// detach deletes the endpoint's veth, then its record (the lease).
// Callers hold opMu.
func (m *Manager) detach(ep *Endpoint) error { return m.detachWith(ep, deleteLink) }

// detachWith is detach with a choice of how the host's veth goes.
func (m *Manager) detachWith(ep *Endpoint, unlink func(string) error) error {
	if err := unlink(ep.HostIf); err != nil {
		return err
	}
	if err := removeFile(m.endpointFile(ep.ContainerID, ep.NetworkID)); err != nil {
		return err
	}
	m.mu.Lock()
	if byNet := m.endpoints[ep.ContainerID]; byNet != nil {
		delete(byNet, ep.NetworkID)
		if len(byNet) == 0 {
			delete(m.endpoints, ep.ContainerID)
		}
	}
	m.mu.Unlock()
	return nil
}
