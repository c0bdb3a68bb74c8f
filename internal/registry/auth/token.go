package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berth-dev/berth/internal/atomicfile"
)

// token is token auth: the endpoint that issues tokens and the check of
// the bearer tokens requests carry.
type token struct {
	p      *policy
	cfg    TokenConfig
	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
}

type claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

func newToken(p *policy, cfg *TokenConfig, dir string) (Authorizer, http.Handler, string, error) {
	if cfg.Realm == "" || cfg.Service == "" {
		return nil, nil, "", fmt.Errorf("registry config: token auth needs realm and service")
	}
	u, err := url.Parse(cfg.Realm)
	if err != nil || u.Path == "" || u.Path == "/" || strings.HasPrefix(u.Path, "/v2") {
		return nil, nil, "", fmt.Errorf("registry config: token realm %q: want the token endpoint's URL, such as https://registry.example.com/token", cfg.Realm)
	}
	t := &token{p: p, cfg: *cfg}
	if t.cfg.Issuer == "" {
		t.cfg.Issuer = "berth-registry"
	}
	if t.cfg.Expiry <= 0 {
		t.cfg.Expiry = 5 * time.Minute
	}
	keyFile := cfg.Key
	if keyFile == "" {
		keyFile = filepath.Join(dir, "token-key.pem")
		if err := ensureKey(keyFile); err != nil {
			return nil, nil, "", err
		}
	}
	if t.key, err = loadKey(keyFile); err != nil {
		return nil, nil, "", err
	}
	switch t.key.(type) {
	case *ecdsa.PrivateKey:
		t.method = jwt.SigningMethodES256
	case *rsa.PrivateKey:
		t.method = jwt.SigningMethodRS256
	default:
		return nil, nil, "", fmt.Errorf("registry auth: %s: want an EC P-256 or RSA key", keyFile)
	}
	t.kid, err = keyID(t.key.Public())
	if err != nil {
		return nil, nil, "", err
	}
	return t, t, u.Path, nil
}

// ensureKey makes an EC P-256 key at file unless one is there.
func ensureKey(file string) error {
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func loadKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("registry auth: token key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("registry auth: %s: no PEM block", file)
	}
	var k any
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("registry auth: %s: %v", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("registry auth: %s: not a signing key", file)
	}
	return s, nil
}

// keyID is the key's ID in libtrust's form (the SHA-256 of the public
// key's DER, 240 bits in base32, in groups of four), which Distribution's
// token checks understand too.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:min(i+4, len(s))])
	}
	return strings.Join(groups, ":"), nil
}

// challenge is the 401 a request without a fitting token gets: where to
// get one, for what.
func (t *token) challenge(need []Access, insufficient bool, msg string) *Challenge {
	h := fmt.Sprintf("Bearer realm=%q,service=%q", t.cfg.Realm, t.cfg.Service)
	var scopes []string
	for _, a := range need {
		scopes = append(scopes, a.String())
	}
	if len(scopes) > 0 {
		h += fmt.Sprintf(",scope=%q", strings.Join(scopes, " "))
	}
	if insufficient {
		h += `,error="insufficient_scope"`
	}
	return &Challenge{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: msg, Header: h}
}

// Authorize implements Authorizer: the bearer token must be ours, current,
// for this service, and grant every action needed.
func (t *token) Authorize(r *http.Request, need []Access) (string, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", t.challenge(need, false, "authentication required")
	}
	var c claims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(raw), &c, func(tok *jwt.Token) (any, error) {
		return t.key.Public(), nil
	}, jwt.WithValidMethods([]string{t.method.Alg()}), jwt.WithIssuer(t.cfg.Issuer), jwt.WithAudience(t.cfg.Service),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return "", t.challenge(need, false, "invalid token: "+err.Error())
	}
	for _, n := range need {
		if !grants(c.Access, n) {
			return c.Subject, t.challenge(need, true, fmt.Sprintf("the token does not grant %s", n))
		}
	}
	return c.Subject, nil
}

// Permits implements Authorizer.
func (t *token) Permits(account string, need []Access) bool { return t.p.permits(account, need) }

func grants(have []Access, n Access) bool {
	for _, want := range n.Actions {
		ok := false
		for _, h := range have {
			if h.Type == n.Type && h.Name == n.Name && (slices.Contains(h.Actions, want) || slices.Contains(h.Actions, "*")) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ServeHTTP is the token endpoint: GET with basic auth (or none, for
// anonymous tokens) and ?service=&scope=, or POST with an OAuth2 password
// grant, as containerd sends.
func (t *token) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var user, pass, service string
	var scopes []string
	hasCreds := false
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		service, scopes = q.Get("service"), q["scope"]
		user, pass, hasCreds = r.BasicAuth()
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if g := r.PostForm.Get("grant_type"); g != "password" {
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported (use password)", g))
			return
		}
		service, scopes = r.PostForm.Get("service"), strings.Fields(r.PostForm.Get("scope"))
		user, pass, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	if service != t.cfg.Service {
		tokenError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown service %q", service))
		return
	}
	account := ""
	if hasCreds {
		if !t.p.check(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth registry token"`)
			tokenError(w, http.StatusUnauthorized, "invalid_grant", "invalid username or password")
			return
		}
		account = user
	}
	var want []Access
	for _, s := range scopes {
		as, err := ParseScope(s)
		if err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		want = append(want, as...)
	}
	// The token grants what was asked and is allowed: asking for more
	// gets less, not an error (the registry then refuses what is
	// missing).
	var grant []Access
	for _, a := range want {
		if acts := t.p.allowed(account, a); len(acts) > 0 {
			grant = append(grant, Access{Type: a.Type, Name: a.Name, Actions: acts})
		}
	}
	now := time.Now()
	var jti [16]byte
	rand.Read(jti[:])
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: t.cfg.Issuer, Subject: account, Audience: jwt.ClaimStrings{t.cfg.Service},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.cfg.Expiry)), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt: jwt.NewNumericDate(now), ID: hex.EncodeToString(jti[:]),
		},
		Access: grant,
	}
	if c.Access == nil {
		c.Access = []Access{}
	}
	tok := jwt.NewWithClaims(t.method, c)
	tok.Header["kid"] = t.kid
	signed, err := tok.SignedString(t.key)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"token": signed, "access_token": signed,
		"expires_in": int(t.cfg.Expiry.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

func tokenError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
}
