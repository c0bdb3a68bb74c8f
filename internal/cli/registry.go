package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/registry"
)

func newRegistryCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "registry",
		Short: "Run an OCI registry (distribution spec 1.1)",
		Long: `Run an OCI Distribution Spec 1.1 registry that docker, podman, skopeo,
crane, oras and berth can push to and pull from. It needs no daemon.`,
		Example: "  berth registry serve --root /var/lib/berth-registry\n  berth registry gc --root /var/lib/berth-registry --dry-run",
	}
	c.AddCommand(newRegistryServe(g), newRegistryGC(g))
	return c
}

// registryFlags are the flags serve and gc share: they override the file.
type registryFlags struct {
	file, root, addr, cert, key string
	readOnly                    bool
}

func (f *registryFlags) load(cmd *cobra.Command) (registry.Config, error) {
	cfg, err := registry.LoadConfig(f.file)
	if err != nil {
		return cfg, err
	}
	if f.root != "" {
		cfg.Root = f.root
	}
	if f.addr != "" {
		cfg.Addr = f.addr
	}
	if f.cert != "" || f.key != "" {
		cfg.TLS.Cert, cfg.TLS.Key = f.cert, f.key
	}
	if cmd.Flags().Changed("read-only") {
		cfg.ReadOnly = f.readOnly
	}
	cfg.Defaults()
	return cfg, cfg.Validate()
}

func newRegistryServe(g *globals) *cobra.Command {
	var f registryFlags
	c := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the registry API",
		Long: `Serve the registry API over HTTP (HTTPS with --tls-cert and --tls-key). The
config file (YAML) holds auth, limits, policies and pull-through upstreams;
flags override it. Without auth, listen on loopback only.`,
		Example: `  berth registry serve --root /srv/registry
  berth registry serve --config /etc/berth/registry.yaml
  berth registry serve --addr 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem --config auth.yaml`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			return registry.Run(cmd.Context(), cfg, log, func(addr string) {
				fmt.Fprintf(cmd.OutOrStdout(), "berth registry listening on %s\n", addr)
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.file, "config", "", "Registry config file (YAML)")
	fl.StringVar(&f.root, "root", "", "Storage directory")
	fl.StringVar(&f.addr, "addr", "", "Listen address (default 127.0.0.1:5000)")
	fl.StringVar(&f.cert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.key, "tls-key", "", "TLS private key (PEM)")
	fl.BoolVar(&f.readOnly, "read-only", false, "Refuse pushes and deletes")
	return c
}

func newRegistryGC(g *globals) *cobra.Command {
	var f registryFlags
	var dryRun, untagged bool
	c := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Remove unreferenced blobs (safe while the registry serves)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("registry gc: not built yet")
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.file, "config", "", "Registry config file (YAML)")
	fl.StringVar(&f.root, "root", "", "Storage directory")
	fl.BoolVar(&dryRun, "dry-run", false, "List what would be removed, remove nothing")
	fl.BoolVar(&untagged, "delete-untagged", false, "Also remove manifests no tag, index or referrer keeps")
	return c
}
