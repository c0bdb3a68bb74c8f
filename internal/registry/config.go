package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/internal/registry/auth"
)

// Config is `berth registry serve`'s configuration: the YAML file, with
// flags over it.
type Config struct {
	// Version is the file format's version (1).
	Version int `yaml:"version"`
	// Addr is the listen address (default 127.0.0.1:5000).
	Addr string `yaml:"addr"`
	// Root is the storage directory.
	Root string `yaml:"root"`
	TLS  struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	ReadOnly bool     `yaml:"read_only"`
	Limits   Limits   `yaml:"limits"`
	Policies Policies `yaml:"policies"`
	// Proxy makes the registry a pull-through cache of upstreams, each
	// under its own path prefix.
	Proxy []ProxyConfig `yaml:"proxy"`
	GC    GCConfig      `yaml:"gc"`
	// AccessLog logs one line per request (default true).
	AccessLog *bool `yaml:"access_log"`
	// Auth is who may do what; none by default, which is allowed on a
	// loopback address only, unless AllowUnauthenticated.
	Auth                 *auth.Config `yaml:"auth"`
	AllowUnauthenticated bool         `yaml:"allow_unauthenticated"`
}

// Limits bound what clients may send and how slowly.
type Limits struct {
	// MaxManifestBytes bounds a manifest (default 4 MiB).
	MaxManifestBytes int64 `yaml:"max_manifest_bytes"`
	// MaxBlobBytes bounds one blob (default: none).
	MaxBlobBytes int64 `yaml:"max_blob_bytes"`
	// ReadTimeout bounds a request's headers and each stretch of its body
	// without progress (default 1m); IdleTimeout a kept-alive
	// connection's wait (default 2m).
	ReadTimeout Duration `yaml:"read_timeout"`
	IdleTimeout Duration `yaml:"idle_timeout"`
	// UploadTTL is how long an abandoned upload session is kept
	// (default 24h).
	UploadTTL Duration `yaml:"upload_ttl"`
	// MaxInflight bounds the requests served at once (0: no bound); more
	// get 429 TOOMANYREQUESTS with a Retry-After.
	MaxInflight int `yaml:"max_inflight"`
}

// Policies are per-repository rules; repositories are matched with
// path.Match patterns ("team/*").
type Policies struct {
	// ImmutableTags lists repositories whose tags, once pushed, never
	// move.
	ImmutableTags []string `yaml:"immutable_tags"`
	// Quotas bound storage: per matching repository, or shared by every
	// repository under a namespace ("team/").
	Quotas []Quota `yaml:"quotas"`
	// Retention is applied by garbage collection.
	Retention []Retention `yaml:"retention"`
}

// Quota is a storage limit.
type Quota struct {
	// Repository is a pattern (each match has its own limit) or a
	// namespace ending in "/" (one limit shared by all under it).
	Repository string `yaml:"repository"`
	Bytes      int64  `yaml:"bytes"`
}

// Retention keeps a repository's newest tags and drops old untagged
// manifests.
type Retention struct {
	Repository string `yaml:"repository"`
	// KeepTags is how many of the newest tags to keep (0: all).
	KeepTags int `yaml:"keep_tags"`
	// UntaggedOlderThan deletes untagged manifests older than this (0:
	// never), unless an index or referrer relation keeps them.
	UntaggedOlderThan Duration `yaml:"untagged_older_than"`
}

// ProxyConfig is one upstream of the pull-through cache.
type ProxyConfig struct {
	// Prefix is the path prefix it is served under ("docker.io" serves
	// docker.io/library/busybox as <registry>/docker.io/library/busybox).
	Prefix string `yaml:"prefix"`
	// URL is the upstream registry's base URL.
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TTL is how long a cached tag is trusted before it is checked
	// again (default 5m); content by digest never expires.
	TTL Duration `yaml:"ttl"`
}

// GCConfig runs garbage collection inside the server.
type GCConfig struct {
	// Interval between collections (0: never; run `berth registry gc`).
	Interval Duration `yaml:"interval"`
	// Grace spares blobs written or referenced this recently (default
	// 1h): uploads of an image whose manifest is not pushed yet.
	Grace Duration `yaml:"grace"`
	// DeleteUntagged removes manifests no tag, index or referrer
	// relation keeps.
	DeleteUntagged bool `yaml:"delete_untagged"`
}

// Duration is a time.Duration written as "90s" or "24h" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: %v", n.Line, n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads a config file ("" gives the defaults).
func LoadConfig(file string) (Config, error) {
	var c Config
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("registry config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("registry config %s: %v", file, err)
		}
	}
	return c, nil
}

// Defaults fills what is unset.
func (c *Config) Defaults() {
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:5000"
	}
	if c.Limits.MaxManifestBytes == 0 {
		c.Limits.MaxManifestBytes = 4 << 20
	}
	if c.Limits.ReadTimeout == 0 {
		c.Limits.ReadTimeout = Duration(time.Minute)
	}
	if c.Limits.IdleTimeout == 0 {
		c.Limits.IdleTimeout = Duration(2 * time.Minute)
	}
	if c.Limits.UploadTTL == 0 {
		c.Limits.UploadTTL = Duration(24 * time.Hour)
	}
	if c.GC.Grace == 0 {
		c.GC.Grace = Duration(time.Hour)
	}
	if c.AccessLog == nil {
		t := true
		c.AccessLog = &t
	}
}

// Validate checks the config; errors name the field.
func (c *Config) Validate() error {
	if c.Version != 1 {
		return fmt.Errorf("registry config: version %d is not supported (want 1)", c.Version)
	}
	if c.Root == "" {
		return fmt.Errorf("registry config: root (the storage directory) is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("registry config: addr %q: %v", c.Addr, err)
	}
	if host, _, _ := net.SplitHostPort(c.Addr); (c.Auth == nil || (c.Auth.Htpasswd == nil && c.Auth.Token == nil)) && !c.AllowUnauthenticated && !loopback(host) {
		return fmt.Errorf("registry config: addr %s is not a loopback address and there is no auth: configure auth (htpasswd or token), or set allow_unauthenticated: true", c.Addr)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return fmt.Errorf("registry config: tls needs both cert and key")
	}
	for _, pats := range [][]string{c.Policies.ImmutableTags, quotaPatterns(c.Policies.Quotas), retentionPatterns(c.Policies.Retention)} {
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("registry config: repository pattern %q: %v", p, err)
			}
		}
	}
	for _, q := range c.Policies.Quotas {
		if q.Bytes <= 0 {
			return fmt.Errorf("registry config: quota for %q: bytes must be positive", q.Repository)
		}
	}
	seen := map[string]bool{}
	for _, p := range c.Proxy {
		if p.Prefix == "" || p.URL == "" {
			return fmt.Errorf("registry config: each proxy needs a prefix and a url")
		}
		if seen[p.Prefix] {
			return fmt.Errorf("registry config: proxy prefix %q given twice", p.Prefix)
		}
		seen[p.Prefix] = true
	}
	return nil
}

// loopback reports a host only this machine reaches.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func quotaPatterns(qs []Quota) []string {
	var out []string
	for _, q := range qs {
		out = append(out, q.Repository)
	}
	return out
}

func retentionPatterns(rs []Retention) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Repository)
	}
	return out
}
