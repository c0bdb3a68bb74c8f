package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func TestParseScope(t *testing.T) {
	for in, want := range map[string]string{
		"repository:a/b:pull,push":                 "[repository:a/b:pull,push]",
		"repository:localhost:5000/x:pull":         "[repository:localhost:5000/x:pull]",
		"registry:catalog:*":                       "[registry:catalog:*]",
		"repository:a:pull repository:b:push,pull": "[repository:a:pull repository:b:push,pull]",
		"repository:a:pull,pull":                   "[repository:a:pull]",
	} {
		got, err := ParseScope(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseScope(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"repository", "repository:a", ":a:pull", "repository:a:", "repository:a:pull,,push"} {
		if _, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	f.Add("repository:a/b:pull,push registry:catalog:*")
	f.Add("repository:localhost:5000/x:pull")
	f.Fuzz(func(t *testing.T, s string) {
		as, err := ParseScope(s)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.Type == "" || a.Name == "" || len(a.Actions) == 0 {
				t.Fatalf("ParseScope(%q) gave %+v", s, a)
			}
			back, err := ParseScope(a.String())
			if err != nil || len(back) != 1 || back[0].String() != a.String() {
				t.Fatalf("round trip of %q: %v %v", a, back, err)
			}
		}
	})
}

func htpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(users); i += 2 {
		h, _ := bcrypt.GenerateFromPassword([]byte(users[i+1]), bcrypt.MinCost)
		fmt.Fprintf(&b, "%s:%s\n", users[i], h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte(b.String()), 0o600)
	return p
}

func pull(name string) []Access {
	return []Access{{Type: "repository", Name: name, Actions: []string{"pull"}}}
}
func push(name string) []Access {
	return []Access{{Type: "repository", Name: name, Actions: []string{"pull", "push"}}}
}

func req(user, pass string) *http.Request {
	r := httptest.NewRequest("GET", "/v2/x/manifests/y", nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	return r
}

func status(err error) int {
	var c *Challenge
	if errors.As(err, &c) {
		return c.Status
	}
	if err != nil {
		return -1
	}
	return 200
}

func TestBasic(t *testing.T) {
	cfg := &Config{
		Htpasswd:      &HtpasswdConfig{Path: htpasswd(t, "alice", "a-pass", "bob", "b-pass")},
		AnonymousPull: true,
		Rules: []Rule{
			{Account: "alice", Repository: "**", Actions: []string{"*"}},
			{Account: "bob", Repository: "bob/**", Actions: []string{"pull", "push"}},
			{Account: "*", Repository: "public/*", Actions: []string{"pull"}},
		},
	}
	az, h, _, err := New(cfg, t.TempDir())
	if err != nil || h != nil {
		t.Fatalf("New: %v %v", err, h)
	}
	for _, tc := range []struct {
		user, pass string
		need       []Access
		want       int
	}{
		{"", "", nil, 401}, // the base endpoint always challenges
		{"", "", pull("any/thing"), 200},
		{"", "", push("any/thing"), 401},
		{"alice", "wrong", pull("x"), 401},
		{"alice", "a-pass", push("x/y/z"), 200},
		{"bob", "b-pass", push("bob/app"), 200},
		{"bob", "b-pass", push("bob/deep/app"), 200},
		{"bob", "b-pass", push("alice/app"), 403},
		{"bob", "b-pass", []Access{{Type: "repository", Name: "bob/app", Actions: []string{"delete"}}}, 403},
		{"bob", "b-pass", []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, 403},
		{"alice", "a-pass", []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, 200},
	} {
		_, err := az.Authorize(req(tc.user, tc.pass), tc.need)
		if got := status(err); got != tc.want {
			t.Errorf("%s with %v: %d (%v), want %d", tc.user, tc.need, got, err, tc.want)
		}
		var c *Challenge
		if errors.As(err, &c) && c.Status == 401 && !strings.HasPrefix(c.Header, "Basic realm=") {
			t.Errorf("401 without a Basic challenge: %q", c.Header)
		}
	}
	// Bad files: one line, naming the line.
	bad := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(bad, []byte("# users\ncarol:{SHA}abc\n"), 0o600)
	if _, _, _, err := New(&Config{Htpasswd: &HtpasswdConfig{Path: bad}}, t.TempDir()); err == nil || !strings.Contains(err.Error(), ":2:") || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("a non-bcrypt entry: %v", err)
	}
	if _, _, _, err := New(&Config{AnonymousPull: true}, ""); err == nil {
		t.Error("anonymous_pull without an auth method was accepted")
	}
}

// parseChallenge reads a Bearer WWW-Authenticate header.
func parseChallenge(h string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(h, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// The token flow as a client does it: a request, a 401 challenge, a
// token from the endpoint, the request again with it.
func TestTokenFlow(t *testing.T) {
	dir := t.TempDir()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cfg := &Config{
		Htpasswd:      &HtpasswdConfig{Path: htpasswd(t, "alice", "a-pass", "bob", "b-pass")},
		Token:         &TokenConfig{Realm: srv.URL + "/token", Service: "test-registry", Expiry: time.Minute},
		AnonymousPull: true,
		Rules:         []Rule{{Account: "alice", Repository: "**", Actions: []string{"*"}}, {Account: "bob", Repository: "shared/*", Actions: []string{"pull"}}},
	}
	az, tokens, tokenPath, err := New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if tokenPath != "/token" {
		t.Fatalf("token path %q", tokenPath)
	}
	mux.Handle(tokenPath, tokens)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		need := push("shared/app")
		if r.Method == "GET" {
			need = pull("shared/app")
		}
		if _, err := az.Authorize(r, need); err != nil {
			c := err.(*Challenge)
			w.Header().Set("WWW-Authenticate", c.Header)
			w.WriteHeader(c.Status)
			return
		}
		w.WriteHeader(200)
	})
	getToken := func(user, pass string, ch map[string]string) string {
		u := ch["realm"] + "?" + url.Values{"service": {ch["service"]}, "scope": {ch["scope"]}}.Encode()
		r, _ := http.NewRequest("GET", u, nil)
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		json.NewDecoder(res.Body).Decode(&body)
		if res.StatusCode != 200 {
			return "status:" + res.Status
		}
		if body.Token == "" || body.Token != body.AccessToken || body.ExpiresIn != 60 {
			t.Fatalf("token response %+v", body)
		}
		return body.Token
	}
	call := func(method, tok string) *http.Response {
		r, _ := http.NewRequest(method, srv.URL+"/v2/shared/app/manifests/x", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := call("PUT", "")
	ch := parseChallenge(res.Header.Get("WWW-Authenticate"))
	if res.StatusCode != 401 || ch["realm"] != srv.URL+"/token" || ch["service"] != "test-registry" || ch["scope"] != "repository:shared/app:pull,push" {
		t.Fatalf("challenge: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	alice := getToken("alice", "a-pass", ch)
	if res := call("PUT", alice); res.StatusCode != 200 {
		t.Errorf("PUT with alice's token: %d", res.StatusCode)
	}
	// bob asks for push and gets pull only: his token pulls, and a push
	// with it is refused as insufficient.
	bob := getToken("bob", "b-pass", ch)
	if res := call("GET", bob); res.StatusCode != 200 {
		t.Errorf("GET with bob's token: %d", res.StatusCode)
	}
	if res := call("PUT", bob); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("PUT with bob's pull-only token: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	// Anonymous: a pull token, from no credentials.
	anon := getToken("", "", map[string]string{"realm": ch["realm"], "service": "test-registry", "scope": "repository:shared/app:pull"})
	if res := call("GET", anon); res.StatusCode != 200 {
		t.Errorf("GET with an anonymous token: %d", res.StatusCode)
	}
	if got := getToken("alice", "wrong", ch); got != "status:401 Unauthorized" {
		t.Errorf("token with a wrong password: %s", got)
	}
	// POST, as containerd asks.
	res2, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"a-pass"}, "service": {"test-registry"}, "scope": {"repository:shared/app:push,pull"}})
	if err != nil || res2.StatusCode != 200 {
		t.Fatalf("POST token: %v %v", res2, err)
	}
	var pb struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res2.Body).Decode(&pb)
	res2.Body.Close()
	if res := call("PUT", pb.AccessToken); res.StatusCode != 200 {
		t.Errorf("PUT with a POSTed token: %d", res.StatusCode)
	}
	// Forged, expired and foreign tokens.
	parts := strings.Split(alice, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sign := func(key any, c claims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
		return s
	}
	full := []Access{{Type: "repository", Name: "shared/app", Actions: []string{"pull", "push"}}}
	base := func(aud string, exp time.Duration) claims {
		return claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "berth-registry", Subject: "alice", Audience: jwt.ClaimStrings{aud},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp))}, Access: full}
	}
	tk := az.(*token)
	for name, tok := range map[string]string{
		"tampered":       tampered,
		"foreign key":    sign(other, base("test-registry", time.Minute)),
		"expired":        sign(tk.key, base("test-registry", -time.Hour)),
		"other audience": sign(tk.key, base("another-registry", time.Minute)),
		"garbage":        "not.a.jwt",
	} {
		if res := call("PUT", tok); res.StatusCode != 401 || strings.Contains(res.Header.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("%s token: %d %q", name, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
	// The generated key is kept: a second New validates the first's
	// tokens.
	az2, _, _, err := New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("PUT", "/v2/shared/app/manifests/x", nil)
	r.Header.Set("Authorization", "Bearer "+alice)
	if _, err := az2.Authorize(r, push("shared/app")); err != nil {
		t.Errorf("a token after a restart: %v", err)
	}
}
