package cli

import (
	"fmt"
	"log/slog"
	"time"

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
	var grace time.Duration
	c := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Remove unreferenced blobs (safe while the registry serves)",
		Long: `Remove blobs no manifest references, and with --delete-untagged (or the
config's retention policies) manifests no tag keeps. It runs while the
registry serves: what a push writes or references during the collection,
or within the grace before it, is kept; so are an index's manifests and the
referrers (signatures, SBOMs) of kept manifests.`,
		Example: "  berth registry gc --root /srv/registry --dry-run\n  berth registry gc --config /etc/berth/registry.yaml --delete-untagged",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("grace") {
				cfg.GC.Grace = registry.Duration(grace)
			}
			if untagged {
				cfg.GC.DeleteUntagged = true
			}
			res, err := registry.Collect(cmd.Context(), cfg, dryRun)
			if err != nil {
				return err
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			out := cmd.OutOrStdout()
			for _, t := range res.Tags {
				fmt.Fprintf(out, "tag %s\n", t)
			}
			for _, m := range res.Manifests {
				fmt.Fprintf(out, "manifest %s\n", m)
			}
			for _, b := range res.Blobs {
				fmt.Fprintf(out, "blob %s\n", b)
			}
			fmt.Fprintf(out, "%s %d tags, %d manifests, %d blobs (%s)\n", verb, len(res.Tags), len(res.Manifests), len(res.Blobs), humanSize(res.Bytes))
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.file, "config", "", "Registry config file (YAML)")
	fl.StringVar(&f.root, "root", "", "Storage directory")
	fl.BoolVar(&dryRun, "dry-run", false, "List what would be removed, remove nothing")
	fl.BoolVar(&untagged, "delete-untagged", false, "Also remove manifests no tag, index or referrer keeps")
	fl.DurationVar(&grace, "grace", time.Hour, "Keep what was written or referenced this recently")
	return c
}
