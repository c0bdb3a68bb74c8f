package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/vishvananda/netlink"
)

// Reconcile removes the networking of every container for which live is
// false: sandbox, endpoints and leases, port rules. It then deletes the
// veths with berth's prefix left in this Manager's bridges that no
// endpoint owns. The daemon calls it at start, after restoring its
// containers, to clean what a crash left.
func (m *Manager) Reconcile(ctx context.Context, live func(containerID string) bool) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := m.checkOpen(); err != nil {
		return err
	}
	cids, err := m.knownContainers()
	if err != nil {
		return fmt.Errorf("reconciling networks: %w", err)
	}
	var errs []error
	for _, cid := range cids {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reconciling networks: %w", err)
		}
		if live(cid) {
			continue
		}
		if err := m.removeSandbox(cid, deleteLink); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.sweepVeths(); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("reconciling networks: %w", err)
	}
	return nil
}

// knownContainers lists every container ID the Manager has anything of:
// endpoint or port records, a sandbox mount point, or iptables rules.
// Callers hold opMu.
func (m *Manager) knownContainers() ([]string, error) {
	set := map[string]bool{}
	m.mu.RLock()
	for cid := range m.endpoints {
		set[cid] = true
	}
	for cid := range m.ports {
		set[cid] = true
	}
	m.mu.RUnlock()
	ents, err := os.ReadDir(m.cfg.ExecRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	for _, e := range ents {
		if checkContainerID(e.Name()) == nil && !e.IsDir() {
			set[e.Name()] = true
		}
	}
	listed, err := m.listedRules()
	if err != nil {
		return nil, err
	}
	for owner := range listed {
		if owner != "" && m.networks[owner] == nil && checkContainerID(owner) == nil {
			set[owner] = true
		}
	}
	out := make([]string, 0, len(set))
	for cid := range set {
		out = append(out, cid)
	}
	sort.Strings(out)
	return out, nil
}

// sweepVeths deletes the berth-named veths in this Manager's bridges that
// belong to no endpoint. Callers hold opMu.
func (m *Manager) sweepVeths() error {
	keep := map[string]bool{}
	m.mu.RLock()
	for _, byNet := range m.endpoints {
		for _, ep := range byNet {
			keep[ep.HostIf] = true
		}
	}
	var bridges []string
	for _, n := range m.networks {
		bridges = append(bridges, n.Bridge)
	}
	m.mu.RUnlock()
	var errs []error
	for _, name := range bridges {
		br, err := netlink.LinkByName(name)
		if isLinkNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("looking up bridge %s: %w", name, err))
			continue
		}
		if err := deletePorts(br.Attrs().Index, keep); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(errs)
}
