// Package auth decides who may do what on berth's registry: no auth (the
// default, meant for loopback), htpasswd basic auth (bcrypt), or token
// auth as the Docker registry token spec has it — a token endpoint that
// signs JWTs granting scopes such as repository:NAME:pull,push, and
// bearer tokens checked on every request. Access rules in the config say
// which account gets which actions on which repositories; anonymous pull
// may be allowed.
package auth

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Access is one resource and the actions a request needs on it, as a
// token scope names it: repository:NAME:pull,push or registry:catalog:*.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String is the scope form.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// ParseScope reads space-separated scopes. A name may hold a colon (a
// registry host with a port): the actions follow the last colon.
func ParseScope(s string) ([]Access, error) {
	var out []Access
	for _, f := range strings.Fields(s) {
		typ, rest, ok := strings.Cut(f, ":")
		i := strings.LastIndex(rest, ":")
		if !ok || i <= 0 || typ == "" {
			return nil, fmt.Errorf("invalid scope %q: want TYPE:NAME:ACTIONS", f)
		}
		name, actions := rest[:i], rest[i+1:]
		a := Access{Type: typ, Name: name}
		for _, act := range strings.Split(actions, ",") {
			if act == "" {
				return nil, fmt.Errorf("invalid scope %q: an empty action", f)
			}
			if !slices.Contains(a.Actions, act) {
				a.Actions = append(a.Actions, act)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// Challenge is a refusal: 401 (UNAUTHORIZED, with the WWW-Authenticate
// Header to send) or 403 (DENIED: known, but not allowed).
type Challenge struct {
	Status  int
	Code    string
	Message string
	Header  string
}

func (c *Challenge) Error() string { return c.Message }

// Authorizer decides whether a request may have the accesses it needs,
// returning the subject ("" when anonymous) or a *Challenge. Permits says
// whether the rules give an account the accesses, whatever its current
// token holds (a mount without "from" looks for a repository the account
// could read).
type Authorizer interface {
	Authorize(r *http.Request, need []Access) (string, error)
	Permits(account string, need []Access) bool
}

// Config is the `auth:` section of the registry's config file.
type Config struct {
	Htpasswd *HtpasswdConfig `yaml:"htpasswd"`
	Token    *TokenConfig    `yaml:"token"`
	// AnonymousPull lets requests without credentials pull.
	AnonymousPull bool `yaml:"anonymous_pull"`
	// Rules grant actions; with none, every authenticated account may do
	// everything.
	Rules []Rule `yaml:"rules"`
}

// HtpasswdConfig is basic auth's user file.
type HtpasswdConfig struct {
	// Path of the htpasswd file (bcrypt entries: htpasswd -B).
	Path  string `yaml:"path"`
	Realm string `yaml:"realm"`
}

// TokenConfig is token auth.
type TokenConfig struct {
	// Realm is the token endpoint's URL, as clients reach it
	// (https://registry.example.com/token); the registry serves it at
	// that URL's path.
	Realm   string `yaml:"realm"`
	Service string `yaml:"service"`
	Issuer  string `yaml:"issuer"`
	// Key is a PEM private key (EC P-256 or RSA) signing tokens; empty:
	// one is made and kept in the registry's root.
	Key string `yaml:"key"`
	// Expiry is a token's lifetime (default 5m).
	Expiry time.Duration `yaml:"expiry"`
}

// Rule grants an account actions on repositories.
type Rule struct {
	// Account is a user name, "*" (any authenticated user) or
	// "anonymous".
	Account string `yaml:"account"`
	// Repository is a pattern: path.Match's within a path component,
	// and "**" for any number of components ("team/**", "**").
	Repository string `yaml:"repository"`
	// Actions are pull, push, delete, or "*" for all.
	Actions []string `yaml:"actions"`
}

// New builds the Authorizer for cfg (nil: everything is allowed) and,
// for token auth, the token endpoint's handler and path. dir keeps a
// generated signing key.
func New(cfg *Config, dir string) (Authorizer, http.Handler, string, error) {
	if cfg == nil || (cfg.Htpasswd == nil && cfg.Token == nil) {
		if cfg != nil && (len(cfg.Rules) > 0 || cfg.AnonymousPull) {
			return nil, nil, "", fmt.Errorf("registry config: auth rules and anonymous_pull need htpasswd or token auth")
		}
		return nil, nil, "", nil
	}
	for i, r := range cfg.Rules {
		if r.Account == "" || r.Repository == "" || len(r.Actions) == 0 {
			return nil, nil, "", fmt.Errorf("registry config: auth rule %d needs account, repository and actions", i+1)
		}
		if _, err := path.Match(r.Repository, ""); err != nil {
			return nil, nil, "", fmt.Errorf("registry config: auth rule %d: repository %q: %v", i+1, r.Repository, err)
		}
	}
	if cfg.Htpasswd == nil {
		return nil, nil, "", fmt.Errorf("registry config: token auth needs htpasswd for its accounts")
	}
	users, err := loadHtpasswd(cfg.Htpasswd.Path)
	if err != nil {
		return nil, nil, "", err
	}
	p := &policy{cfg: cfg, users: users, ok: map[[32]byte]time.Time{}}
	if cfg.Token == nil {
		realm := cfg.Htpasswd.Realm
		if realm == "" {
			realm = "berth registry"
		}
		return &basic{p: p, realm: realm}, nil, "", nil
	}
	return newToken(p, cfg.Token, dir)
}

// policy is who is who and who may do what.
type policy struct {
	cfg   *Config
	users map[string][]byte // name -> bcrypt hash
	// mu guards ok: credentials bcrypt accepted lately (bcrypt is slow
	// by design, and a pull is dozens of requests).
	mu sync.Mutex
	ok map[[32]byte]time.Time
}

const credCacheTTL = time.Minute

// check reports whether the user's password is right.
func (p *policy) check(user, pass string) bool {
	hash, ok := p.users[user]
	if !ok {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	p.mu.Lock()
	at, hit := p.ok[key]
	p.mu.Unlock()
	if hit && time.Since(at) < credCacheTTL {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	p.mu.Lock()
	p.ok[key] = time.Now()
	p.mu.Unlock()
	return true
}

// allowed is what account (""=anonymous) may do of want on a resource.
func (p *policy) allowed(account string, a Access) []string {
	var grant []string
	add := func(acts ...string) {
		for _, x := range acts {
			if x == "*" {
				acts = []string{"pull", "push", "delete", "*"}
				break
			}
		}
		for _, x := range acts {
			if !slices.Contains(grant, x) {
				grant = append(grant, x)
			}
		}
	}
	switch {
	case a.Type == "registry" && a.Name == "catalog":
		// The catalog names every repository: authenticated accounts
		// only, and with rules only those granted everything on "**".
		if account == "" {
			return nil
		}
		if len(p.cfg.Rules) == 0 {
			return []string{"*"}
		}
		for _, r := range p.cfg.Rules {
			if (r.Account == account || r.Account == "*") && r.Repository == "**" && slices.Contains(r.Actions, "*") {
				return []string{"*"}
			}
		}
		return nil
	case a.Type != "repository":
		return nil
	}
	if account == "" && p.cfg.AnonymousPull {
		add("pull")
	}
	if account != "" && len(p.cfg.Rules) == 0 {
		add("*")
	}
	for _, r := range p.cfg.Rules {
		who := r.Account == account || (r.Account == "*" && account != "") || (r.Account == "anonymous" && account == "")
		if who && match(r.Repository, a.Name) {
			add(r.Actions...)
		}
	}
	var out []string
	for _, w := range a.Actions {
		if slices.Contains(grant, w) {
			out = append(out, w)
		}
	}
	return out
}

// match is path.Match, with "**" matching any number of components.
func match(pattern, name string) bool {
	if pattern == "**" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "/**"); ok {
		if ok, _ := path.Match(prefix, name); ok {
			return true
		}
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			if ok, _ := path.Match(prefix, strings.Join(parts[:i], "/")); ok {
				return true
			}
		}
		return false
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// permits reports whether account may have every access in need.
func (p *policy) permits(account string, need []Access) bool {
	for _, a := range need {
		if len(p.allowed(account, a)) != len(a.Actions) {
			return false
		}
	}
	return true
}

// basic is htpasswd basic auth.
type basic struct {
	p     *policy
	realm string
}

func (b *basic) Authorize(r *http.Request, need []Access) (string, error) {
	user, pass, ok := r.BasicAuth()
	if ok && user == "" && pass == "" {
		ok = false // "Basic Og==": a client saying it has no credentials
	}
	challenge := &Challenge{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "authentication required", Header: fmt.Sprintf("Basic realm=%q", b.realm)}
	if !ok {
		// Anonymous pulls, when allowed; the base endpoint always
		// challenges, so a login learns it must send credentials.
		if len(need) > 0 && b.p.permits("", need) {
			return "", nil
		}
		return "", challenge
	}
	if !b.p.check(user, pass) {
		challenge.Message = "invalid username or password"
		return "", challenge
	}
	if !b.p.permits(user, need) {
		return user, &Challenge{Status: http.StatusForbidden, Code: "DENIED", Message: fmt.Sprintf("%s may not %s", user, describe(need))}
	}
	return user, nil
}

// Permits implements Authorizer.
func (b *basic) Permits(account string, need []Access) bool { return b.p.permits(account, need) }

func describe(need []Access) string {
	var parts []string
	for _, a := range need {
		parts = append(parts, strings.Join(a.Actions, ",")+" "+a.Name)
	}
	return strings.Join(parts, "; ")
}
