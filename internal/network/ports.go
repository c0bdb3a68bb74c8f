package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"syscall"

	"github.com/berth-dev/berth/internal/atomicfile"
	"github.com/berth-dev/berth/internal/errdefs"
)

// PortMapping is a published port.
type PortMapping struct {
	Proto         string     `json:"proto"`            // "tcp" or "udp"
	HostIP        netip.Addr `json:"hostIP,omitempty"` // invalid (zero) = all host addresses (0.0.0.0)
	HostPort      uint16     `json:"hostPort"`         // 0 = pick an ephemeral free port
	ContainerPort uint16     `json:"containerPort"`
}

// hostString is how errors name the host side: "8080/tcp" or
// "127.0.0.1:8080/tcp".
func (p PortMapping) hostString() string {
	s := strconv.Itoa(int(p.HostPort)) + "/" + p.Proto
	if p.HostIP.IsValid() {
		s = p.HostIP.String() + ":" + s
	}
	return s
}

// clashes reports whether two host bindings take the same port.
func clashes(proto string, ipA netip.Addr, portA uint16, protoB string, ipB netip.Addr, portB uint16) bool {
	if proto != protoB || portA != portB {
		return false
	}
	return !ipA.IsValid() || !ipB.IsValid() || ipA == ipB
}

// Ports lists the container's published ports with their actual host
// ports.
func (m *Manager) Ports(containerID string) []PortMapping {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if rec := m.ports[containerID]; rec != nil {
		return slices.Clone(rec.Ports)
	}
	return nil
}

// Publish installs DNAT rules for the container's ports towards ip, its
// address on the network it publishes through. Every host port is checked
// free first: not published by any berth daemon on this host (their
// iptables chains are read) and bindable by a host process. HostPort 0
// picks a free ephemeral port. On error nothing is installed. The
// mappings replace any the container had; they are persisted, so that
// RemoveSandbox and Reconcile remove them and New restores them.
// Ports are not published from internal networks, as in Docker.
func (m *Manager) Publish(ctx context.Context, containerID string, ip netip.Addr, ports []PortMapping) ([]PortMapping, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	want := make([]PortMapping, 0, len(ports))
	for _, p := range ports {
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		if p.Proto != "tcp" && p.Proto != "udp" {
			return nil, errdefs.Invalidf("publishing port %d/%s: protocol %s is not supported (tcp or udp)", p.ContainerPort, p.Proto, p.Proto)
		}
		if p.ContainerPort == 0 {
			return nil, errdefs.Invalidf("publishing port 0/%s: invalid container port", p.Proto)
		}
		if p.HostIP.IsValid() {
			p.HostIP = p.HostIP.Unmap()
			if !p.HostIP.Is4() {
				return nil, errdefs.Invalidf("publishing port %d/%s on %s: IPv6 host addresses are not supported yet", p.ContainerPort, p.Proto, p.HostIP)
			}
			if p.HostIP.IsUnspecified() {
				p.HostIP = netip.Addr{}
			}
		}
		want = append(want, p)
	}

	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return nil, err
	}
	var ep *Endpoint
	for _, e := range m.endpoints[containerID] {
		if e.IP == ip {
			ep = e
		}
	}
	if ep == nil {
		return nil, errdefs.Invalidf("publishing ports of container %s: it has no endpoint with address %s", containerID, ip)
	}
	n := m.networks[ep.NetworkID]
	if n == nil {
		return nil, errdefs.NotFoundf("publishing ports of container %s: network %s not found", containerID, ep.NetworkID)
	}
	if n.Internal {
		return nil, m.unpublish(containerID)
	}

	lock, err := atomicfile.Acquire(ctx, portsLock)
	if err != nil {
		return nil, fmt.Errorf("publishing ports of container %s: %w", containerID, err)
	}
	defer lock.Unlock()

	taken, err := publishedPorts(m.ipt)
	if err != nil {
		return nil, fmt.Errorf("publishing ports of container %s: %w", containerID, err)
	}
	self := "berth " + m.tag + " " + containerID
	taken = slices.DeleteFunc(taken, func(u usedPort) bool { return u.owner == self })
	for i := range want {
		p := &want[i]
		inUse := func(port uint16) bool {
			for _, u := range taken {
				if clashes(p.Proto, p.HostIP, port, u.proto, u.hostIP, u.port) {
					return true
				}
			}
			for _, q := range want[:i] {
				if clashes(p.Proto, p.HostIP, port, q.Proto, q.HostIP, q.HostPort) {
					return true
				}
			}
			return false
		}
		if p.HostPort == 0 {
			port, err := ephemeralPort(p.Proto, p.HostIP, inUse)
			if err != nil {
				return nil, fmt.Errorf("publishing port %d/%s: %w", p.ContainerPort, p.Proto, err)
			}
			p.HostPort = port
			continue
		}
		if inUse(p.HostPort) {
			return nil, errdefs.Conflict(fmt.Errorf("publishing port %d/%s: host port %s is already in use by a berth container", p.ContainerPort, p.Proto, p.hostString()))
		}
		if _, err := tryBind(p.Proto, p.HostIP, p.HostPort); err != nil {
			return nil, fmt.Errorf("publishing port %d/%s: %w", p.ContainerPort, p.Proto, bindError(*p, err))
		}
	}

	old := m.ports[containerID]
	rec := &portRecord{NetworkID: n.ID, Bridge: n.Bridge, IP: ip, Ports: want}
	if err := writeJSON(m.portsFile(containerID), rec); err != nil {
		return nil, fmt.Errorf("publishing ports of container %s: %w", containerID, err)
	}
	newRules := m.portRules(containerID, n.Bridge, ip, want)
	if err := m.ensureRules(newRules); err != nil {
		_ = m.deleteRules(newRules)
		if old != nil {
			_ = m.ensureRules(m.portRules(containerID, old.Bridge, old.IP, old.Ports))
			_ = writeJSON(m.portsFile(containerID), old)
		} else {
			_ = removeFile(m.portsFile(containerID))
		}
		return nil, fmt.Errorf("publishing ports of container %s: %w", containerID, err)
	}
	if old != nil {
		keep := map[string]bool{}
		for _, r := range newRules {
			keep[r.key()] = true
		}
		var stale []rule
		for _, r := range m.portRules(containerID, old.Bridge, old.IP, old.Ports) {
			if !keep[r.key()] {
				stale = append(stale, r)
			}
		}
		if err := m.deleteRules(stale); err != nil {
			slog.Warn("removing replaced port rules", "container", containerID, "err", err)
		}
	}
	m.mu.Lock()
	m.ports[containerID] = rec
	m.mu.Unlock()
	return slices.Clone(want), nil
}

// unpublish removes the container's port rules (those in state and any
// its comment names) and record. Callers hold opMu.
func (m *Manager) unpublish(containerID string) error {
	var errs []error
	m.mu.RLock()
	rec := m.ports[containerID]
	m.mu.RUnlock()
	if rec == nil {
		// Publish writes the record before it installs a rule, so with no
		// record there is no rule: skip listing the chains, which costs
		// several iptables runs on every container exit. (Reconcile still
		// sweeps by comment.)
		if _, err := os.Stat(m.portsFile(containerID)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	if rec != nil {
		if err := m.deleteRules(m.portRules(containerID, rec.Bridge, rec.IP, rec.Ports)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.deleteOwned(containerID); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := removeFile(m.portsFile(containerID)); err != nil {
			errs = append(errs, err)
		}
		m.mu.Lock()
		delete(m.ports, containerID)
		m.mu.Unlock()
	}
	return joinErrors(errs)
}

// ephemeralPort asks the kernel for a free port (bind to port 0) until it
// gets one no berth rule takes.
func ephemeralPort(proto string, ip netip.Addr, inUse func(uint16) bool) (uint16, error) {
	for range 64 {
		port, err := tryBind(proto, ip, 0)
		if err != nil {
			return 0, bindError(PortMapping{Proto: proto, HostIP: ip}, err)
		}
		if !inUse(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free ephemeral host port for %s: %w", proto, errdefs.ErrResourceExhausted)
}

// tryBind binds proto on ip:port (all addresses if ip is invalid) and
// closes it at once, returning the port bound.
func tryBind(proto string, ip netip.Addr, port uint16) (uint16, error) {
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// bindError classes a failed test bind.
func bindError(p PortMapping, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return errdefs.Conflict(fmt.Errorf("host port %s is already in use by a process on the host", p.hostString()))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return errdefs.Invalidf("host address %s is not an address of this host", p.HostIP)
	case errors.Is(err, syscall.EACCES):
		return errdefs.PermissionDenied(fmt.Errorf("binding host port %s: %w", p.hostString(), err))
	}
	return fmt.Errorf("checking host port %s: %w", p.hostString(), err)
}
