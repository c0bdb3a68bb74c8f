// Package network holds berth's bridge networks: the default "bridge"
// network and user-defined ones, each a Linux bridge with a subnet; IPAM
// (leases are endpoint records on disk); container sandboxes (network
// namespaces berth makes and bind-mounts for the runtime to join); veth
// endpoints; published ports as iptables DNAT rules; and the name
// lookups behind berth's DNS on user-defined networks.
//
// It talks to the kernel through netlink and to iptables through
// go-iptables; there is no CNI. Only the daemon's wiring and the engine
// import it; it imports atomicfile and errdefs.
//
// Several daemons may share a host (tests run many at once): every
// host-global name a Manager makes (default bridge, iptables chains, veth
// names) is derived from its Root, subnets are picked under a host-wide
// lock, and published host ports are checked against every berth daemon's
// rules.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-iptables/iptables"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Host-wide lock files, shared by every berth daemon on the host.
const (
	// poolLock is held around picking a subnet and creating its bridge,
	// so two daemons never pick the same one.
	poolLock = "/run/berth-netpool.lock"
	// portsLock is held around checking host ports and installing their
	// DNAT rules, so two daemons never publish the same one.
	portsLock = "/run/berth-ports.lock"
)

// DefaultPool is the address pool when Config.Pool is not set.
var DefaultPool = netip.MustParsePrefix("10.210.0.0/16")

// DefaultNetworkName is the name of the default network.
const DefaultNetworkName = "bridge"

// DriverBridge is the only driver.
const DriverBridge = "bridge"

// Config for a Manager. Several daemons (tests run many in parallel) may
// share one host: every host-global name (bridge, iptables chain) is
// unique per Root.
type Config struct {
	Root     string // persistent state dir, e.g. <daemon-root>/network (created)
	ExecRoot string // volatile dir for netns bind mounts, e.g. <exec-root>/netns (created)
	// Pool is the address pool from which subnets of the default network
	// and of networks created without --subnet are taken, as /24s.
	// Default DefaultPool (10.210.0.0/16).
	Pool netip.Prefix
	// DefaultBridge is the host interface name of the default "bridge"
	// network. "" means: "berth0" when Root is /var/lib/berth/network,
	// else "bt" + 8 hex chars of sha256(Root).
	DefaultBridge string
	// DefaultSubnet, if valid, is the default network's subnet; otherwise
	// the first /24 of Pool overlapping no route or address on the host
	// and no other network of this Manager.
	DefaultSubnet netip.Prefix
}

// An existing default network is re-created (when no container uses it)
// only if DefaultBridge or DefaultSubnet is set and differs from it: a
// Manager opened with an empty Config on a daemon's Root (to Destroy it,
// say) must not rebuild the daemon's network with other settings.

// Network is a bridge network.
type Network struct {
	ID       string            `json:"id"`   // 64 hex chars, random
	Name     string            `json:"name"` // "bridge" for the default network
	Driver   string            `json:"driver"`
	Subnet   netip.Prefix      `json:"subnet"`
	Gateway  netip.Addr        `json:"gateway"` // the bridge's address
	Bridge   string            `json:"bridge"`  // host interface name ("br-" + ID[:12] for user networks)
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Created  time.Time         `json:"created"`
	// Default marks the default "bridge" network: no DNS by name, like
	// Docker.
	Default bool `json:"default,omitempty"`
}

func (n *Network) clone() *Network {
	c := *n
	c.Labels = maps.Clone(n.Labels)
	c.Options = maps.Clone(n.Options)
	return &c
}

// CreateOptions are `network create`'s settings.
type CreateOptions struct {
	Name     string
	Subnet   string // "" = pick from the pool; else CIDR
	Gateway  string // "" = first host address of the subnet
	Internal bool
	Labels   map[string]string
	Options  map[string]string
}

// Manager owns the networks, sandboxes, endpoints and published ports of
// one daemon. It is safe for concurrent use.
type Manager struct {
	cfg       Config
	bridgeSet bool // Config.DefaultBridge was given, not derived
	tag       string
	chains    chainSet
	ipt       *iptables.IPTables

	// opMu serialises every operation that changes state or the host, so
	// each sees a consistent view across its slow netlink and iptables
	// calls, while readers (DNS lookups, inspect) only wait on mu.
	opMu sync.Mutex

	// mu guards networks, endpoints, ports and closed. Writers hold opMu
	// too.
	mu        sync.RWMutex
	networks  map[string]*Network             // by ID
	endpoints map[string]map[string]*Endpoint // container ID -> network ID -> endpoint
	ports     map[string]*portRecord          // by container ID
	closed    bool
}

// New loads the Manager's state, makes sure the default "bridge" network
// exists and (re)installs the bridges and iptables rules of every network
// and published port. It is idempotent: a restarted daemon calls it over
// running containers.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	bridgeSet := cfg.DefaultBridge != ""
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "networks"), filepath.Join(cfg.Root, "endpoints"), filepath.Join(cfg.Root, "ports"), cfg.ExecRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating network state directory: %w", err)
		}
	}
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4))
	if err != nil {
		return nil, fmt.Errorf("bridge networking needs iptables: %w", err)
	}
	tag := rootTag(cfg.Root)
	m := &Manager{
		cfg:       cfg,
		bridgeSet: bridgeSet,
		tag:       tag,
		chains:    chainsFor(tag),
		ipt:       ipt,
		networks:  map[string]*Network{},
		endpoints: map[string]map[string]*Endpoint{},
		ports:     map[string]*portRecord{},
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	if err := sysctl("net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	if err := m.ensureChains(); err != nil {
		return nil, err
	}
	if err := m.ensureDefault(ctx); err != nil {
		return nil, err
	}
	for _, n := range m.networks {
		if err := m.installNetwork(n); err != nil {
			return nil, err
		}
	}
	for cid, rec := range m.ports {
		if err := m.ensureRules(m.portRules(cid, rec.Bridge, rec.IP, rec.Ports)); err != nil {
			return nil, fmt.Errorf("restoring published ports of container %s: %w", cid, err)
		}
	}
	return m, nil
}

func (c Config) withDefaults() (Config, error) {
	if c.Root == "" || c.ExecRoot == "" {
		return c, errdefs.Invalidf("network config: Root and ExecRoot must be set")
	}
	c.Root = filepath.Clean(c.Root)
	c.ExecRoot = filepath.Clean(c.ExecRoot)
	if !c.Pool.IsValid() {
		c.Pool = DefaultPool
	}
	if !c.Pool.Addr().Is4() || c.Pool.Bits() > 24 {
		return c, errdefs.Invalidf("network config: address pool %s must be IPv4 and at least a /24", c.Pool)
	}
	c.Pool = c.Pool.Masked()
	if c.DefaultBridge == "" {
		c.DefaultBridge = defaultBridgeName(c.Root)
	} else if len(c.DefaultBridge) > maxIfName || strings.ContainsAny(c.DefaultBridge, "/ \t\n:") {
		return c, errdefs.Invalidf("network config: invalid bridge name %q (at most %d characters, no spaces, slashes or colons)", c.DefaultBridge, maxIfName)
	}
	if c.DefaultSubnet.IsValid() {
		if !c.DefaultSubnet.Addr().Is4() || c.DefaultSubnet.Bits() > 30 {
			return c, errdefs.Invalidf("network config: default subnet %s must be IPv4 and at most a /30", c.DefaultSubnet)
		}
		c.DefaultSubnet = c.DefaultSubnet.Masked()
	}
	return c, nil
}

// ensureDefault creates the default network, or re-creates it when the
// configuration asks for another subnet or bridge and no container uses
// it (see Config).
func (m *Manager) ensureDefault(ctx context.Context) error {
	var def *Network
	for _, n := range m.networks {
		if n.Default {
			def = n
		}
	}
	if def != nil {
		changed := (m.cfg.DefaultSubnet.IsValid() && def.Subnet != m.cfg.DefaultSubnet) || (m.bridgeSet && def.Bridge != m.cfg.DefaultBridge)
		if !changed {
			return nil
		}
		if len(m.endpointsOf(def.ID)) > 0 {
			slog.Warn("the default network keeps its subnet and bridge until no container uses it", "subnet", def.Subnet, "bridge", def.Bridge)
			return nil
		}
		if err := m.uninstallNetwork(def); err != nil {
			return err
		}
		if err := removeFile(m.networkFile(def.ID)); err != nil {
			return err
		}
		delete(m.networks, def.ID)
	}
	n := &Network{
		ID:      newID(),
		Name:    DefaultNetworkName,
		Driver:  DriverBridge,
		Bridge:  m.cfg.DefaultBridge,
		Created: time.Now().UTC(),
		Default: true,
	}
	if m.cfg.DefaultSubnet.IsValid() {
		n.Subnet, n.Gateway = m.cfg.DefaultSubnet, m.cfg.DefaultSubnet.Addr().Next()
	}
	return m.createNetwork(ctx, n, !n.Subnet.IsValid())
}

// Close releases the Manager's in-memory resources. It never touches host
// state: containers outlive the daemon.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// checkOpen fails operations after Close. Callers hold opMu.
func (m *Manager) checkOpen() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errdefs.Unavailable(errors.New("the network manager is closed"))
	}
	return nil
}

// Create makes a user-defined network.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (*Network, error) {
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	n := &Network{
		ID:       newID(),
		Name:     o.Name,
		Driver:   DriverBridge,
		Internal: o.Internal,
		Labels:   maps.Clone(o.Labels),
		Options:  maps.Clone(o.Options),
		Created:  time.Now().UTC(),
	}
	n.Bridge = userBridgeName(n.ID)
	if o.Subnet != "" {
		sub, gw, err := parseSubnet(o.Subnet, o.Gateway)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", o.Name, err)
		}
		n.Subnet, n.Gateway = sub, gw
	} else if o.Gateway != "" {
		return nil, errdefs.Invalidf("network %q: --gateway %s needs a --subnet", o.Name, o.Gateway)
	}

	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	if other := m.byName(o.Name); other != nil {
		return nil, errdefs.Conflict(fmt.Errorf("network with name %s already exists", o.Name))
	}
	if err := m.createNetwork(ctx, n, o.Subnet == ""); err != nil {
		return nil, err
	}
	return n.clone(), nil
}

// createNetwork picks n's subnet (pick) or checks the one it has, then
// records the network and installs its bridge and rules, under the
// host-wide pool lock. On error nothing is left. Callers hold opMu (or
// are New).
func (m *Manager) createNetwork(ctx context.Context, n *Network, pick bool) error {
	lock, err := atomicfile.Acquire(ctx, poolLock)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	defer lock.Unlock()

	host, err := hostPrefixes(pick)
	if err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if pick {
		used := make([]netip.Prefix, 0, len(host)+len(m.networks))
		for _, h := range host {
			used = append(used, h.Prefix)
		}
		for _, o := range m.networks {
			used = append(used, o.Subnet)
		}
		sub, ok := pickSubnet(m.cfg.Pool, used)
		if !ok {
			return fmt.Errorf("network %q: no /24 of address pool %s is free on this host; give a --subnet or free one: %w", n.Name, m.cfg.Pool, errdefs.ErrResourceExhausted)
		}
		n.Subnet, n.Gateway = sub, sub.Addr().Next()
	} else if err := m.checkSubnet(n, host); err != nil {
		return err
	}

	if err := writeJSON(m.networkFile(n.ID), n); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := m.installNetwork(n); err != nil {
		if uerr := m.uninstallNetwork(n); uerr != nil {
			slog.Warn("cleaning up after a failed network create", "network", n.Name, "err", uerr)
		}
		_ = removeFile(m.networkFile(n.ID))
		return err
	}
	m.mu.Lock()
	m.networks[n.ID] = n
	m.mu.Unlock()
	return nil
}

// checkSubnet refuses an explicit subnet that overlaps another network of
// this Manager or a route on the host (except the default network's
// configured subnet, which the administrator chose).
func (m *Manager) checkSubnet(n *Network, host []hostPrefix) error {
	for _, o := range m.sortedNetworks() {
		if o.ID != n.ID && o.Subnet.Overlaps(n.Subnet) {
			return errdefs.Conflict(fmt.Errorf("network %q: subnet %s overlaps network %q (%s)", n.Name, n.Subnet, o.Name, o.Subnet))
		}
	}
	if n.Default {
		return nil
	}
	for _, h := range host {
		if h.Prefix.Overlaps(n.Subnet) && h.Dev != n.Bridge {
			return errdefs.Conflict(fmt.Errorf("network %q: subnet %s overlaps host route %s on %s", n.Name, n.Subnet, h.Prefix, h.Dev))
		}
	}
	return nil
}

// installNetwork makes the network's bridge and rules; idempotent.
func (m *Manager) installNetwork(n *Network) error {
	if _, err := ensureBridge(n); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := m.ensureRules(m.networkRules(n)); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	return nil
}

// uninstallNetwork removes the network's rules and bridge.
func (m *Manager) uninstallNetwork(n *Network) error {
	var errs []error
	if err := m.deleteRules(m.networkRules(n)); err != nil {
		errs = append(errs, err)
	}
	if err := m.deleteOwned(n.ID); err != nil {
		errs = append(errs, err)
	}
	if err := deleteBridge(n.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("removing network %q: %w", n.Name, err)
	}
	return nil
}

// Get finds a network by full ID, name, or unique ID prefix.
func (m *Manager) Get(ref string) (*Network, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.getLocked(ref)
	if err != nil {
		return nil, err
	}
	return n.clone(), nil
}

func (m *Manager) getLocked(ref string) (*Network, error) {
	if ref == "" {
		return nil, errdefs.NotFoundf("network %q not found", ref)
	}
	if n, ok := m.networks[ref]; ok {
		return n, nil
	}
	if n := m.byName(ref); n != nil {
		return n, nil
	}
	var found []*Network
	for id, n := range m.networks {
		if strings.HasPrefix(id, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, errdefs.NotFoundf("network %s not found", ref)
	}
	return nil, errdefs.Invalidf("network %s is ambiguous (%d matches found on ID prefix)", ref, len(found))
}

// byName is the network called name; callers hold mu or opMu.
func (m *Manager) byName(name string) *Network {
	for _, n := range m.networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// List returns the networks sorted by name.
func (m *Manager) List() []*Network {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Network, 0, len(m.networks))
	for _, n := range m.sortedNetworks() {
		out = append(out, n.clone())
	}
	return out
}

func (m *Manager) sortedNetworks() []*Network {
	out := slices.Collect(maps.Values(m.networks))
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Remove deletes a user-defined network: its bridge, rules and record.
// The default network cannot be removed, nor a network with endpoints.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return err
	}
	m.mu.RLock()
	n, err := m.getLocked(ref)
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	if n.Default {
		return errdefs.PermissionDenied(fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name))
	}
	if eps := m.endpointsOf(n.ID); len(eps) > 0 {
		return errdefs.Conflict(fmt.Errorf("error while removing network: network %s has active endpoints (container %s)", n.Name, eps[0].ContainerID))
	}
	if err := m.uninstallNetwork(n); err != nil {
		return err
	}
	if err := removeFile(m.networkFile(n.ID)); err != nil {
		return fmt.Errorf("removing network %q: %w", n.Name, err)
	}
	m.mu.Lock()
	delete(m.networks, n.ID)
	m.mu.Unlock()
	return nil
}

// Destroy removes all host state of this Manager: every sandbox and
// endpoint, every network including the default bridge, the iptables
// chains and jumps, and the records under Root. It is for tests and
// `berth system` cleanup; the Manager is closed afterwards. It may be
// called after Close.
func (m *Manager) Destroy(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	var errs []error
	cids, err := m.knownContainers()
	if err != nil {
		errs = append(errs, err)
	}
	for _, cid := range cids {
		if err := m.removeSandbox(cid, deleteLink); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range m.sortedNetworks() {
		if err := m.uninstallNetwork(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.deleteChains(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		for _, d := range []string{"networks", "endpoints", "ports"} {
			if err := os.RemoveAll(filepath.Join(m.cfg.Root, d)); err != nil {
				errs = append(errs, err)
			}
		}
		_ = os.Remove(m.cfg.ExecRoot) // only if empty: it may be shared
	}
	m.mu.Lock()
	if len(errs) == 0 {
		m.networks = map[string]*Network{}
	}
	m.closed = true
	m.mu.Unlock()
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("destroying networks under %s: %w", m.cfg.Root, err)
	}
	return nil
}
