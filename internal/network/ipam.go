package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/berth-dev/berth/internal/errdefs"
)

// hostPrefix is a prefix in use on the host: a route's destination or an
// interface address's network, with the interface it is on.
type hostPrefix struct {
	Prefix netip.Prefix
	Dev    string
}

// pickSubnet returns the first /24 of pool that overlaps none of used.
func pickSubnet(pool netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	pool = pool.Masked()
	if !pool.Addr().Is4() || pool.Bits() > 24 {
		return netip.Prefix{}, false
	}
	start := u32(pool.Addr())
	count := uint64(1) << (24 - pool.Bits())
	for i := uint64(0); i < count; i++ {
		cand := netip.PrefixFrom(addr4(start+uint32(i)<<8), 24)
		free := true
		for _, u := range used {
			if u.IsValid() && u.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, true
		}
	}
	return netip.Prefix{}, false
}

// parseSubnet checks a --subnet and --gateway pair and returns the subnet
// (masked) and the gateway (the first host address when gw is empty).
func parseSubnet(subnet, gw string) (netip.Prefix, netip.Addr, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --subnet %q: not an IPv4 CIDR such as 172.30.0.0/16", subnet)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --subnet %q: IPv6 networks are not supported yet", subnet)
	}
	p = p.Masked()
	if p.Bits() > 30 {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --subnet %q: too small, it needs room for a gateway and containers (at most /30)", subnet)
	}
	if gw == "" {
		return p, p.Addr().Next(), nil
	}
	g, err := netip.ParseAddr(gw)
	if err != nil || !g.Is4() {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --gateway %q: not an IPv4 address", gw)
	}
	if !p.Contains(g) {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --gateway %s: not in subnet %s", g, p)
	}
	if g == p.Addr() || g == broadcast(p) {
		return netip.Prefix{}, netip.Addr{}, errdefs.Invalidf("invalid --gateway %s: it is the network or broadcast address of %s", g, p)
	}
	return p, g, nil
}

// checkRequestedIP validates an address asked for at attach; leased
// reports whether an address is held by an endpoint.
func checkRequestedIP(n *Network, req string, leased func(netip.Addr) bool) (netip.Addr, error) {
	ip, err := netip.ParseAddr(req)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, errdefs.Invalidf("invalid IP address %q: not an IPv4 address", req)
	}
	switch {
	case !n.Subnet.Contains(ip):
		return netip.Addr{}, errdefs.Invalidf("invalid IP address %s: not in network %s's subnet %s", ip, n.Name, n.Subnet)
	case ip == n.Gateway:
		return netip.Addr{}, errdefs.Invalidf("invalid IP address %s: it is network %s's gateway", ip, n.Name)
	case ip == n.Subnet.Addr() || ip == broadcast(n.Subnet):
		return netip.Addr{}, errdefs.Invalidf("invalid IP address %s: it is the network or broadcast address of %s", ip, n.Subnet)
	case leased(ip):
		return netip.Addr{}, errdefs.Conflict(fmt.Errorf("IP address %s is already in use on network %s", ip, n.Name))
	}
	return ip, nil
}

// allocateIP returns the lowest free host address of the network.
func allocateIP(n *Network, leased func(netip.Addr) bool) (netip.Addr, error) {
	last := broadcast(n.Subnet)
	for ip := n.Subnet.Addr().Next(); ip.IsValid() && ip.Less(last); ip = ip.Next() {
		if ip != n.Gateway && !leased(ip) {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in network %s (%s): %w", n.Name, n.Subnet, errdefs.ErrResourceExhausted)
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	host := uint32(1)<<(32-p.Bits()) - 1
	return addr4(u32(p.Masked().Addr()) | host)
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
