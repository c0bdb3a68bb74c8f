package cli

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newPort(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Example: `  berth port web
  berth port web 80
  berth port web 53/udp`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var private string
			if len(args) == 2 {
				private = args[1]
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			info, err := c.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			var ports network.PortMap
			if ns := info.Container.NetworkSettings; ns != nil {
				ports = ns.Ports
			}
			return printPorts(cmd.OutOrStdout(), args[0], ports, private)
		},
	}
}

// printPorts prints a container's published ports as docker port does:
// "80/tcp -> 0.0.0.0:8080" lines in natural order, or, for one private
// port ("80" is 80/tcp), only the host addresses it is published on.
func printPorts(w io.Writer, ctr string, ports network.PortMap, private string) error {
	var out []string
	if private != "" {
		p, err := network.ParsePort(private)
		if err != nil {
			return err // docker's exit status 1, not a usage error
		}
		bindings := ports[p]
		if len(bindings) == 0 {
			return fmt.Errorf("no public port '%s' published for %s", p, ctr)
		}
		for _, b := range bindings {
			out = append(out, hostAddr(b))
		}
	} else {
		for p, bindings := range ports {
			for _, b := range bindings {
				out = append(out, p.String()+" -> "+hostAddr(b))
			}
		}
	}
	slices.SortFunc(out, naturalCompare)
	for _, l := range out {
		fmt.Fprintln(w, l)
	}
	return nil
}

// hostAddr is where a binding listens on the host; a binding without an
// address listens on every IPv4 address.
func hostAddr(b network.PortBinding) string {
	ip := b.HostIP
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	return net.JoinHostPort(ip.String(), b.HostPort)
}

// displayPorts is the PORTS column of ps, as docker shows it: published
// ports as 0.0.0.0:8080->80/tcp, exposed ones as 80/tcp, and runs of
// consecutive ports published at the same numbers merged into ranges
// (0.0.0.0:8000-8001->8000-8001/tcp, 7000-7002/udp).
func displayPorts(ports []container.PortSummary) string {
	ports = slices.Clone(ports)
	slices.SortFunc(ports, func(a, b container.PortSummary) int {
		return cmp.Or(cmp.Compare(a.PrivatePort, b.PrivatePort), a.IP.Compare(b.IP),
			cmp.Compare(a.PublicPort, b.PublicPort), cmp.Compare(a.Type, b.Type))
	})
	// A run of ports with the same address and protocol, each published at
	// its own number (or not published: no address).
	type run struct {
		ip          netip.Addr
		proto       string
		first, last uint16
	}
	format := func(r *run) string {
		ports := strconv.Itoa(int(r.first))
		if r.last != r.first {
			ports += "-" + strconv.Itoa(int(r.last))
		}
		if r.ip.IsValid() {
			return net.JoinHostPort(r.ip.String(), ports) + "->" + ports + "/" + r.proto
		}
		return ports + "/" + r.proto
	}
	var (
		out    []string
		open   = map[string]*run{} // the run each address and protocol is in
		keys   []string            // open's keys in the order they came
		mapped []string            // ports published at another number
	)
	// Docker's order: runs as they end, then the last run of each address
	// and protocol, then the ports published at another number.
	for _, p := range ports {
		if p.IP.IsValid() && p.PublicPort != p.PrivatePort {
			mapped = append(mapped, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.IP.String(), strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
			continue
		}
		key := p.IP.String() + "/" + p.Type
		r := open[key]
		switch {
		case r == nil:
			keys = append(keys, key)
		case p.PrivatePort == r.last:
			continue // listed twice
		case p.PrivatePort == r.last+1:
			r.last = p.PrivatePort
			continue
		default:
			out = append(out, format(r))
		}
		open[key] = &run{ip: p.IP, proto: p.Type, first: p.PrivatePort, last: p.PrivatePort}
	}
	for _, k := range keys {
		out = append(out, format(open[k]))
	}
	return strings.Join(append(out, mapped...), ", ")
}

// naturalCompare orders strings with their digit runs compared as numbers,
// so that 80/tcp sorts before 443/tcp and 8080/tcp.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
