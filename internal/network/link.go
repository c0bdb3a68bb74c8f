package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Host-side links. berth never leaves a thread in another network
// namespace (see inNetns), so netlink's package-level functions, which
// open their socket in the calling thread's namespace, act on the host's.

// bridgeMTU is the MTU of berth's bridges and of the veths in them.
const bridgeMTU = 1500

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// ensureBridge makes the network's bridge with its gateway address, up,
// and the sysctls published ports need. It is idempotent.
func ensureBridge(n *Network) (netlink.Link, error) {
	link, err := netlink.LinkByName(n.Bridge)
	if isLinkNotFound(err) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = n.Bridge
		attrs.MTU = bridgeMTU
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("creating bridge %s: %w", n.Bridge, err)
		}
		link, err = netlink.LinkByName(n.Bridge)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up bridge %s: %w", n.Bridge, err)
	}
	if link.Type() != "bridge" {
		return nil, errdefs.Conflict(fmt.Errorf("network %s: host interface %s exists and is not a bridge", n.Name, n.Bridge))
	}
	want := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses of bridge %s: %w", n.Bridge, err)
	}
	has := false
	for _, a := range addrs {
		if a.IPNet.String() == want.IPNet.String() {
			has = true
		}
	}
	if !has {
		if err := netlink.AddrAdd(link, want); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("adding %s to bridge %s: %w", want.IPNet, n.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing bridge %s up: %w", n.Bridge, err)
	}
	// Without route_localnet the kernel drops packets from 127.0.0.1 that
	// a DNAT of a published port sends out of the bridge: this is what
	// makes 127.0.0.1:port work with no userland proxy.
	if err := sysctl(filepath.Join("net/ipv4/conf", n.Bridge, "route_localnet"), "1"); err != nil {
		return nil, err
	}
	return link, nil
}

// deleteBridge removes the network's bridge and every veth of berth's
// still in it; a missing bridge is not an error.
func deleteBridge(name string) error {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up bridge %s: %w", name, err)
	}
	if err := deletePorts(link.Attrs().Index, nil); err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting bridge %s: %w", name, err)
	}
	return nil
}

// deletePorts deletes the veths named with berth's prefix enslaved to the
// bridge with index master, except those keep holds.
func deletePorts(master int, keep map[string]bool) error {
	links, err := dump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("listing host interfaces: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != master || l.Type() != "veth" || !strings.HasPrefix(a.Name, vethPrefix) || keep[a.Name] {
			continue
		}
		if err := deleteLink(a.Name); err != nil {
			return err
		}
	}
	return nil
}

// deleteLink deletes a host interface by name; a missing one is not an
// error. Deleting one end of a veth deletes the other, wherever it is.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting interface %s: %w", name, err)
	}
	return nil
}

// detachLinkLater unplugs a veth from its bridge at once and deletes it in
// the background. Deleting a veth waits for the kernel's RCU grace
// periods (about 13 ms here), on every container exit; but the container's
// namespace, unmounted right after, takes the veth pair with it when the
// kernel frees it. The late delete, by interface index so that a new veth
// of the same name is never hit, covers a namespace something else still
// holds open.
func detachLinkLater(name string) error {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up interface %s: %w", name, err)
	}
	if err := netlink.LinkSetNoMaster(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("unplugging interface %s: %w", name, err)
	}
	index := link.Attrs().Index
	go func() {
		time.Sleep(time.Second)
		if l, err := netlink.LinkByIndex(index); err == nil && l.Attrs().Name == name {
			_ = netlink.LinkDel(l)
		}
	}()
	return nil
}

// hostPrefixes lists what is in use on the host: the destinations of the
// main table's routes (the default route aside) and the networks of
// interface addresses.
func hostPrefixes(withAddrs bool) ([]hostPrefix, error) {
	names := map[int]string{}
	links, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing host interfaces: %w", err)
	}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := dump(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("listing host routes: %w", err)
	}
	var out []hostPrefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		out = append(out, hostPrefix{Prefix: p, Dev: names[r.LinkIndex]})
	}
	if !withAddrs {
		return out, nil
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("listing host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, hostPrefix{Prefix: p.Masked(), Dev: names[a.LinkIndex]})
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	ones, bits := n.Mask.Size()
	if !ip.Is4() || (bits != 32 && bits != 128) {
		return netip.Prefix{}, false
	}
	if bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(ip, ones).Masked(), true
}

// dump runs a netlink dump again while the kernel reports it was
// interrupted by a concurrent change (other daemons and containers change
// links all the time), so callers never act on a partial list.
func dump[T any](list func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		out, err := list()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 20 {
			continue
		}
		return out, err
	}
}

// sysctl sets /proc/sys/<key> if it does not hold val already.
func sysctl(key, val string) error {
	path := filepath.Join("/proc/sys", key)
	if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == val {
		return nil
	}
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", strings.ReplaceAll(key, "/", "."), val, err)
	}
	return nil
}
