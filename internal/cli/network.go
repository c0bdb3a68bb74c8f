package cli

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newNetworkCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "network COMMAND",
		Short: "Manage networks",
		Example: `  berth network create app
  berth run -d --network app --name db postgres
  berth network ls`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	c.AddCommand(newNetworkCreate(g), newNetworkConnect(g), newNetworkDisconnect(g), newInspectTyped(g, "network"),
		newNetworkLs(g), newNetworkPrune(g), newNetworkRm(g))
	return c
}

// networkCreateOptions are the flags of network create, as docker names
// them.
type networkCreateOptions struct {
	driver, ipamDriver, scope, configFrom string
	opts, labels, ipamOpts, auxAddresses  []string
	subnets, ipRanges, gateways           []string
	internal, ipv4, ipv6, attachable      bool
	configOnly                            bool
	ipv4Set, ipv6Set                      bool // --ipv4/--ipv6 given: otherwise the daemon decides
}

func newNetworkCreate(g *globals) *cobra.Command {
	var o networkCreateOptions
	c := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Example: `  berth network create app
  berth network create --subnet 172.30.0.0/16 --gateway 172.30.0.1 app
  berth network create --internal --label team=db backend`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ipv4Set, o.ipv6Set = cmd.Flags().Changed("ipv4"), cmd.Flags().Changed("ipv6")
			req, err := o.request()
			if err != nil {
				return usageError{err}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.NetworkCreate(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			for _, w := range res.Warning {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+w)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.ID)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&o.driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringArrayVarP(&o.opts, "opt", "o", nil, "Set driver specific options")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set metadata on a network")
	f.BoolVar(&o.internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&o.ipv4, "ipv4", true, "Enable or disable IPv4 address assignment")
	f.BoolVar(&o.ipv6, "ipv6", false, "Enable or disable IPv6 address assignment")
	f.BoolVar(&o.attachable, "attachable", false, "Enable manual container attachment")
	f.StringVar(&o.scope, "scope", "", "Control the network's scope")
	f.BoolVar(&o.configOnly, "config-only", false, "Create a configuration only network")
	f.StringVar(&o.configFrom, "config-from", "", "The network from which to copy the configuration")
	f.StringVar(&o.ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	f.StringSliceVar(&o.subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	f.StringSliceVar(&o.ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	f.StringSliceVar(&o.gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	f.StringArrayVar(&o.auxAddresses, "aux-address", nil, "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	f.StringArrayVar(&o.ipamOpts, "ipam-opt", nil, "Set IPAM driver specific options")
	return c
}

// request turns the flags into the create request.
func (o *networkCreateOptions) request() (client.NetworkCreateOptions, error) {
	req := client.NetworkCreateOptions{
		Driver: o.driver, Internal: o.internal, Attachable: o.attachable,
		Scope: o.scope, ConfigOnly: o.configOnly, ConfigFrom: o.configFrom,
	}
	if o.ipv4Set {
		req.EnableIPv4 = &o.ipv4
	}
	if o.ipv6Set {
		req.EnableIPv6 = &o.ipv6
	}
	var err error
	if req.Options, err = kvMap("--opt", o.opts); err != nil {
		return req, err
	}
	if req.Labels, err = kvMap("--label", o.labels); err != nil {
		return req, err
	}
	if req.IPAM, err = o.ipam(); err != nil {
		return req, err
	}
	return req, nil
}

// ipam groups --subnet, --ip-range, --gateway and --aux-address by the
// subnet each belongs to, as docker does: each range, gateway and
// auxiliary address must lie in one of the (non-overlapping) subnets.
func (o *networkCreateOptions) ipam() (*network.IPAM, error) {
	if len(o.subnets) < len(o.ipRanges) || len(o.subnets) < len(o.gateways) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	configs := []network.IPAMConfig{}
	for _, s := range o.subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--subnet %q: invalid subnet: want CIDR notation (e.g., 172.30.0.0/16)", s)
		}
		for _, c := range configs {
			if c.Subnet.Masked().Overlaps(p.Masked()) {
				return nil, errors.New("multiple overlapping subnet configuration is not supported")
			}
		}
		configs = append(configs, network.IPAMConfig{Subnet: p})
	}
	// subnetOf is the index of the subnet holding a, or -1.
	subnetOf := func(a netip.Addr) int {
		for i, c := range configs {
			if c.Subnet.Masked().Contains(a.Unmap()) {
				return i
			}
		}
		return -1
	}
	for _, r := range o.ipRanges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("--ip-range %q: want CIDR notation (e.g., 172.30.5.0/24)", r)
		}
		i := subnetOf(p.Masked().Addr())
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for range %s", r)
		}
		if configs[i].IPRange.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, configs[i].IPRange, configs[i].Subnet)
		}
		configs[i].IPRange = p
	}
	for _, gw := range o.gateways {
		a, err := netip.ParseAddr(gw)
		if err != nil {
			return nil, fmt.Errorf("--gateway %q: not an IP address", gw)
		}
		i := subnetOf(a)
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for gateway %s", gw)
		}
		if configs[i].Gateway.IsValid() {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", gw, configs[i].Gateway, configs[i].Subnet)
		}
		configs[i].Gateway = a
	}
	for _, aux := range o.auxAddresses {
		name, addr, ok := strings.Cut(aux, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--aux-address %q: want NAME=IP", aux)
		}
		if addr == "" {
			continue
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("--aux-address %q: not an IP address", aux)
		}
		i := subnetOf(a)
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for aux-address %s", addr)
		}
		if configs[i].AuxAddress == nil {
			configs[i].AuxAddress = map[string]netip.Addr{}
		}
		configs[i].AuxAddress[name] = a
	}
	opts, err := kvMap("--ipam-opt", o.ipamOpts)
	if err != nil {
		return nil, err
	}
	return &network.IPAM{Driver: o.ipamDriver, Config: configs, Options: opts}, nil
}

// networkRow is one line of network ls, with docker's --format field
// names (in the order docker's JSON lists them).
type networkRow struct {
	CreatedAt, Driver, ID, IPv4, IPv6, Internal, Labels, Name, Scope string

	labels map[string]string
}

// Label is one label's value, as in docker network ls --format '{{.Label "k"}}'.
func (r networkRow) Label(key string) string { return r.labels[key] }

// networkFilters are the filters network ls accepts; others are usage errors.
var networkFilters = map[string]bool{"dangling": true, "driver": true, "id": true, "label": true, "name": true, "scope": true, "type": true}

func newNetworkLs(g *globals) *cobra.Command {
	var o struct {
		quiet, noTrunc bool
		filters        []string
		format         string
	}
	c := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Example: `  berth network ls
  berth network ls --filter driver=bridge --filter type=custom
  berth network ls --format '{{.Name}}: {{.Driver}}'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := parseFilters(o.filters, networkFilters)
			if err != nil {
				return usageError{err}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.NetworkList(cmd.Context(), client.NetworkListOptions{Filters: flt})
			if err != nil {
				return err
			}
			return printNetworks(cmd, res.Items, o.quiet, o.noTrunc, o.format)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate the output")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, `Provide filter values (e.g. "driver=bridge")`)
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table', 'table TEMPLATE' or 'json'")
	return c
}

// printNetworks prints network ls: sorted by name, IDs cut to 12 digits
// unless noTrunc.
func printNetworks(cmd *cobra.Command, nets []network.Summary, quiet, noTrunc bool, format string) error {
	nets = slices.Clone(nets)
	slices.SortFunc(nets, func(a, b network.Summary) int { return naturalCompare(a.Name, b.Name) })
	out := cmd.OutOrStdout()
	var items []any
	for _, n := range nets {
		id := n.ID
		if !noTrunc {
			id = shortID(id)
		}
		if quiet {
			fmt.Fprintln(out, id)
			continue
		}
		var labels []string
		for k, v := range n.Labels {
			labels = append(labels, k+"="+v)
		}
		items = append(items, networkRow{
			CreatedAt: n.Created.String(), Driver: n.Driver, ID: id,
			IPv4: strconv.FormatBool(n.EnableIPv4), IPv6: strconv.FormatBool(n.EnableIPv6), Internal: strconv.FormatBool(n.Internal),
			Labels: strings.Join(sortedStrings(labels), ","), Name: n.Name, Scope: n.Scope, labels: n.Labels,
		})
	}
	if quiet {
		return nil
	}
	headers := map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
		"IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
	return render(out, format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", headers, items)
}

func newNetworkRm(g *globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm [OPTIONS] NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Example: "  berth network rm app\n  berth network rm -f app backend",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			failed := false
			for _, n := range args {
				if _, err := c.NetworkRemove(cmd.Context(), n, client.NetworkRemoveOptions{}); err != nil {
					if force && cerrdefs.IsNotFound(err) {
						continue
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "berth: "+strings.TrimPrefix(err.Error(), "Error response from daemon: "))
					failed = true
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			if failed {
				return statusError{code: 1}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return c
}

func newNetworkConnect(g *globals) *cobra.Command {
	var o struct {
		ipv4, ipv6                 string
		aliases, links, driverOpts []string
		gwPriority                 int
	}
	c := &cobra.Command{
		Use:     "connect [OPTIONS] NETWORK CONTAINER",
		Short:   "Connect a container to a network",
		Example: "  berth network connect app web\n  berth network connect --alias db --ip 172.30.0.10 app postgres",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep := &network.EndpointSettings{Aliases: o.aliases, Links: o.links, GwPriority: o.gwPriority}
			var ipam network.EndpointIPAMConfig
			var err error
			if o.ipv4 != "" {
				if ipam.IPv4Address, err = netip.ParseAddr(o.ipv4); err != nil || !ipam.IPv4Address.Is4() {
					return usageError{fmt.Errorf("--ip %q: want an IPv4 address (e.g., 172.30.100.104)", o.ipv4)}
				}
			}
			if o.ipv6 != "" {
				if ipam.IPv6Address, err = netip.ParseAddr(o.ipv6); err != nil || !ipam.IPv6Address.Is6() || ipam.IPv6Address.Is4In6() {
					return usageError{fmt.Errorf("--ip6 %q: want an IPv6 address (e.g., 2001:db8::33)", o.ipv6)}
				}
			}
			if ipam.IPv4Address.IsValid() || ipam.IPv6Address.IsValid() {
				ep.IPAMConfig = &ipam
			}
			if ep.DriverOpts, err = kvMap("--driver-opt", o.driverOpts); err != nil {
				return usageError{err}
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			_, err = c.NetworkConnect(cmd.Context(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: ep})
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.ipv4, "ip", "", `IPv4 address (e.g., "172.30.100.104")`)
	f.StringVar(&o.ipv6, "ip6", "", `IPv6 address (e.g., "2001:db8::33")`)
	f.StringSliceVar(&o.aliases, "alias", nil, "Add network-scoped alias for the container")
	f.StringArrayVar(&o.links, "link", nil, "Add link to another container")
	f.StringSliceVar(&o.driverOpts, "driver-opt", nil, "driver options for the network")
	f.IntVar(&o.gwPriority, "gw-priority", 0, "Highest gw-priority provides the default gateway. Accepts positive and negative values.")
	return c
}

func newNetworkDisconnect(g *globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "disconnect [OPTIONS] NETWORK CONTAINER",
		Short:   "Disconnect a container from a network",
		Example: "  berth network disconnect app web",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			_, err = c.NetworkDisconnect(cmd.Context(), args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return c
}

func newNetworkPrune(g *globals) *cobra.Command {
	var force bool
	var filters []string
	c := &cobra.Command{
		Use:     "prune [OPTIONS]",
		Short:   "Remove all unused networks",
		Example: "  berth network prune\n  berth network prune -f --filter until=24h",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			flt, err := parseFilters(filters, map[string]bool{"until": true, "label": true, "label!": true})
			if err != nil {
				return usageError{err}
			}
			if !force && !confirm(cmd, "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?") {
				return nil // declined: docker exits 0 too
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.NetworkPrune(cmd.Context(), client.NetworkPruneOptions{Filters: flt})
			if err != nil {
				return err
			}
			printDeleted(cmd.OutOrStdout(), "Deleted Networks:", res.Report.NetworksDeleted)
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().StringArrayVar(&filters, "filter", nil, `Provide filter values (e.g. "until=<timestamp>")`)
	return c
}

// confirm asks a question on stdout and reads the answer from stdin, as
// docker's prompts do: only "y" (any case) is yes, and no answer is no.
func confirm(cmd *cobra.Command, question string) bool {
	fmt.Fprint(cmd.OutOrStdout(), question+" [y/N] ")
	sc := bufio.NewScanner(cmd.InOrStdin())
	return sc.Scan() && strings.EqualFold(strings.TrimSpace(sc.Text()), "y")
}
