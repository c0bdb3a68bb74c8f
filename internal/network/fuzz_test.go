package network

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// FuzzNetworkInput feeds the parsers of what users type (a network's name,
// --subnet and --gateway, an --ip) arbitrary strings: no panic, errors are
// one-line InvalidArgument (or Conflict for a leased address), and what is
// accepted is consistent (gateway and address inside the subnet, neither
// the network nor the broadcast address).
func FuzzNetworkInput(f *testing.F) {
	f.Add("app", "10.1.2.0/24", "", "10.1.2.9")
	f.Add("a.b-c_d", "10.1.0.0/16", "10.1.255.254", "10.1.0.1")
	f.Add("-bad", "10.1.2.0/31", "10.1.2.1", "::1")
	f.Add("x", "fe80::/64", "fe80::1", "10.1.2.300")
	f.Add("y", "10.1.2.3/24", "10.1.2.255", "")
	f.Fuzz(func(t *testing.T, name, subnet, gw, ip string) {
		oneLine := func(err error) {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
		}
		if err := checkName(name); err != nil {
			oneLine(err)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("checkName(%q): %v is not InvalidArgument", name, err)
			}
		}
		p, g, err := parseSubnet(subnet, gw)
		if err != nil {
			oneLine(err)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("parseSubnet(%q, %q): %v is not InvalidArgument", subnet, gw, err)
			}
			return
		}
		if !p.Contains(g) || g == p.Addr() || g == broadcast(p) || p != p.Masked() {
			t.Fatalf("parseSubnet(%q, %q) = %s, %s: gateway not a host address of the subnet", subnet, gw, p, g)
		}
		n := &Network{Name: "n", Subnet: p, Gateway: g}
		leased := func(a netip.Addr) bool { return a.IsValid() && a.As4()[3]%2 == 0 }
		got, err := checkRequestedIP(n, ip, leased)
		if err != nil {
			oneLine(err)
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsConflict(err) {
				t.Fatalf("checkRequestedIP(%q): %v is neither InvalidArgument nor Conflict", ip, err)
			}
		} else if !p.Contains(got) || got == g || got == p.Addr() || got == broadcast(p) || leased(got) {
			t.Fatalf("checkRequestedIP(%q) = %s accepted in %s (gateway %s)", ip, got, p, g)
		}
		if a, err := allocateIP(n, leased); err == nil {
			if !p.Contains(a) || a == g || a == p.Addr() || a == broadcast(p) || leased(a) {
				t.Fatalf("allocateIP in %s gave %s", p, a)
			}
		}
	})
}
