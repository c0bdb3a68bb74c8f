// Package config holds berth's configuration file: one typed, versioned
// struct with defaults and Validate. The daemon (next) and the CLI read the
// same file.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Version is the config format this berth writes and reads.
const Version = 1

// DefaultPath is where berth looks for its config unless told otherwise.
const DefaultPath = "/etc/berth/config.json"

// Config is berth's configuration.
type Config struct {
	Version int `json:"version"`
	// RegistryMirrors maps a registry host ("docker.io", "ghcr.io",
	// "localhost:5000") to mirrors tried in order before it; pulls fall
	// back to the origin when every mirror fails. Values are "host[:port]",
	// "http://host:port" (plain HTTP) or "https://host[:port][/prefix]".
	RegistryMirrors map[string][]string `json:"registry-mirrors,omitempty"`
	// InsecureRegistries are hosts reached over plain HTTP. Loopback hosts
	// always are.
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	// DefaultRuntime names the OCI runtime containers use unless they ask
	// for another: "berth" (embedded, the default), "runc", or a name from
	// Runtimes. The daemon's --runtime flag overrides it.
	DefaultRuntime string `json:"default-runtime,omitempty"`
	// Runtimes adds OCI runtime CLIs by name, as Docker's daemon.json
	// does: {"crun": {"path": "/usr/bin/crun"}}.
	Runtimes map[string]Runtime `json:"runtimes,omitempty"`
	// InitPath is the static init binary bind-mounted for --init
	// (default: Debian's /usr/bin/tini-static).
	InitPath string `json:"init-path,omitempty"`
	// Bridge is the default bridge's interface name (Docker's "bridge"
	// option): default "berth0" for the default root, a name derived from
	// the root otherwise; "none" turns bridge networking off (containers
	// then default to --network none).
	Bridge string `json:"bridge,omitempty"`
	// BridgeSubnet is the default bridge's subnet (Docker's "bip", as a
	// CIDR); default: the first free /24 of DefaultAddressPool.
	BridgeSubnet string `json:"bridge-subnet,omitempty"`
	// DefaultAddressPool is where the default bridge's and new networks'
	// subnets come from, as /24s: default 10.210.0.0/16 (Docker takes
	// 172.17.0.0/16 and up, Podman 10.88.0.0/16: berth runs beside both).
	DefaultAddressPool string `json:"default-address-pool,omitempty"`
}

// Runtime is an OCI runtime CLI with runc's interface.
type Runtime struct {
	Path string   `json:"path"`
	Args []string `json:"runtimeArgs,omitempty"`
}

// Default is the configuration used when no file exists.
func Default() Config { return Config{Version: Version} }

// Load reads the config at path; a missing file gives Default().
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	c := Default()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, errdefs.Invalidf("config %s: %v", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks the config for values berth cannot use.
func (c Config) Validate() error {
	if c.Version != Version {
		return errdefs.Invalidf("version %d is not supported (want %d)", c.Version, Version)
	}
	for host, ms := range c.RegistryMirrors {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return errdefs.Invalidf("registry-mirrors: %q is not a registry host", host)
		}
		for _, m := range ms {
			if strings.Contains(m, "://") {
				u, err := url.Parse(m)
				if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
					return errdefs.Invalidf("registry-mirrors[%s]: %q is not an http(s) URL", host, m)
				}
			} else if m == "" || strings.ContainsAny(m, " ") {
				return errdefs.Invalidf("registry-mirrors[%s]: %q is not a host", host, m)
			}
		}
	}
	for _, h := range c.InsecureRegistries {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return errdefs.Invalidf("insecure-registries: %q is not a host[:port]", h)
		}
	}
	for name, rt := range c.Runtimes {
		if name == "" || name == "berth" || strings.ContainsAny(name, "/ ") {
			return errdefs.Invalidf("runtimes: %q cannot name a runtime", name)
		}
		if !strings.HasPrefix(rt.Path, "/") {
			return errdefs.Invalidf("runtimes[%s]: path %q must be absolute", name, rt.Path)
		}
	}
	return nil
}
