package cli

import (
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/daemon"
)

func newDaemon(g *globals) *cobra.Command {
	var o daemon.Options
	var teardown bool
	c := &cobra.Command{
		Use:   "daemon [OPTIONS]",
		Short: "Run the berth daemon (the Docker Engine API on a unix socket)",
		Long: `Run the berth daemon: it serves the Docker Engine API on a unix socket and
supervises containers through one small shim each, so containers keep running
when the daemon stops or is upgraded. The CLI starts it on demand; run it
yourself (or from systemd) to choose its flags.`,
		Example: `  berth daemon
  berth daemon --root /tmp/b/root --exec-root /tmp/b/run -H unix:///tmp/b/berth.sock
  berth daemon --runtime runc`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Root, o.ConfigPath, o.Version, o.LogLevel = g.root, g.configPath, Version, g.logLevel
			if teardown {
				return daemon.TeardownNetworks(cmd.Context(), o)
			}
			o.Host = g.host
			if o.Host == "" {
				o.Host = DefaultHost
			}
			return daemon.Run(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.ExecRoot, "exec-root", "/run/berth", "Root directory of runtime state (sockets, shims, bundles)")
	f.StringVarP(&g.host, "host", "H", "", "Socket to listen on (default "+DefaultHost+")")
	f.StringVar(&g.logLevel, "log-level", "info", "Log level: debug, info, warn, error")
	f.StringVar(&o.DefaultRuntime, "runtime", "berth", `Default OCI runtime: "berth" (embedded), "runc", or the path of a runtime binary`)
	f.StringVar(&o.Group, "group", "", `Group that may use the socket besides root (default "berth" if that group exists)`)
	f.BoolVar(&teardown, "teardown-networks", false, "Remove every network of a stopped daemon (bridges, rules, namespaces) and exit")
	return c
}
