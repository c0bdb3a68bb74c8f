package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/storage"
)

// Proxy is the pull-through cache: repositories under an upstream's
// prefix are filled from that upstream on demand. Several upstreams are
// served at once, each under its own prefix. Content by digest, once
// cached, is served from the store for good; a tag is checked upstream
// again after its TTL, and while the upstream is down the cached tag is
// served.
type Proxy struct {
	Store     *storage.Store
	upstreams []*upstream
}

type upstream struct {
	prefix string
	host   string
	opts   []name.Option
	auth   authn.Authenticator
	ttl    time.Duration
}

// NewProxy makes the cache for the configured upstreams.
func NewProxy(st *storage.Store, cfgs []ProxyConfig) (*Proxy, error) {
	p := &Proxy{Store: st}
	for _, c := range cfgs {
		u, err := url.Parse(c.URL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("registry config: proxy %q: url %q: want http(s)://host[:port]", c.Prefix, c.URL)
		}
		if err := storage.ValidName(strings.TrimSuffix(c.Prefix, "/")); err != nil {
			return nil, fmt.Errorf("registry config: proxy prefix %q: %v", c.Prefix, err)
		}
		up := &upstream{prefix: strings.TrimSuffix(c.Prefix, "/") + "/", host: u.Host, auth: authn.Anonymous, ttl: time.Duration(c.TTL)}
		if u.Scheme == "http" {
			up.opts = append(up.opts, name.Insecure)
		}
		if c.Username != "" {
			up.auth = &authn.Basic{Username: c.Username, Password: c.Password}
		}
		if up.ttl == 0 {
			up.ttl = 5 * time.Minute
		}
		p.upstreams = append(p.upstreams, up)
	}
	return p, nil
}

// Proxied reports whether repo is served from an upstream (and so cannot
// be pushed to).
func (p *Proxy) Proxied(repo string) bool { _, _, ok := p.route(repo); return ok }

func (p *Proxy) route(repo string) (*upstream, string, bool) {
	for _, u := range p.upstreams {
		if rest, ok := strings.CutPrefix(repo, u.prefix); ok && rest != "" {
			return u, rest, true
		}
	}
	return nil, "", false
}

// Manifest implements Upstream.
func (p *Proxy) Manifest(ctx context.Context, repo, ref string) (bool, error) {
	up, rest, ok := p.route(repo)
	if !ok {
		return false, nil
	}
	isDigest := strings.Contains(ref, ":")
	if isDigest {
		if _, err := p.Store.GetManifest(ctx, repo, ref); err == nil {
			return true, nil
		}
	} else if age, err := p.Store.TagAge(ctx, repo, ref); err == nil && age < up.ttl {
		return true, nil
	}
	r, err := up.ref(rest, ref)
	if err != nil {
		return true, errdefs.InvalidArgument(err)
	}
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithAuth(up.auth))
	if err != nil {
		if _, cerr := p.Store.GetManifest(ctx, repo, ref); cerr == nil {
			slog.Warn("upstream unreachable: serving the cached manifest", "repo", repo, "ref", ref, "err", err)
			return true, nil
		}
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return true, errdefs.NotFoundf("%s:%s: not found upstream", repo, ref)
		}
		return true, errdefs.Unavailable(fmt.Errorf("fetching %s from %s: %w", ref, up.host, err))
	}
	if err := p.Store.PutCached(ctx, repo, ref, string(desc.MediaType), desc.Manifest); err != nil {
		return true, err
	}
	return true, nil
}

// Blob implements Upstream.
func (p *Proxy) Blob(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	up, rest, ok := p.route(repo)
	if !ok {
		return false, nil
	}
	r, err := up.ref(rest, d.String())
	if err != nil {
		return true, errdefs.InvalidArgument(err)
	}
	dg, ok := r.(name.Digest)
	if !ok {
		return true, errdefs.Invalidf("blob %s: not a digest", d)
	}
	layer, err := remote.Layer(dg, remote.WithContext(ctx), remote.WithAuth(up.auth))
	if err != nil {
		return true, errdefs.Unavailable(fmt.Errorf("fetching blob %s from %s: %w", d, up.host, err))
	}
	rc, err := layer.Compressed()
	if err != nil {
		return true, errdefs.Unavailable(fmt.Errorf("fetching blob %s from %s: %w", d, up.host, err))
	}
	defer rc.Close()
	// Verified on the way in, as every upload is.
	if err := p.Store.PutBlob(ctx, repo, d, rc); err != nil {
		return true, fmt.Errorf("caching blob %s from %s: %w", d, up.host, err)
	}
	return true, nil
}

func (u *upstream) ref(repo, ref string) (name.Reference, error) {
	sep := ":"
	if strings.Contains(ref, ":") {
		sep = "@"
	}
	return name.ParseReference(u.host+"/"+repo+sep+ref, u.opts...)
}
