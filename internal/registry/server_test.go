package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newServer starts a registry on a fresh root; cfg may set policies.
func newServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	hs, url := newServerHS(t, cfg)
	return hs.Config.Handler.(*Server), url
}

func newServerHS(t *testing.T, cfg Config) (*httptest.Server, string) {
	t.Helper()
	cfg.Root = t.TempDir()
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs, hs.URL
}

type resp struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body []byte, header ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

func (r resp) code() string {
	var e struct{ Errors []struct{ Code string } }
	json.Unmarshal([]byte(r.body), &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// pushBlob uploads b in chunks through PATCH and closes with PUT.
func pushBlob(t *testing.T, base, repo string, b []byte, chunk int) digest.Digest {
	t.Helper()
	r := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	if r.status != 202 {
		t.Fatalf("POST upload: %d %s", r.status, r.body)
	}
	loc := base + r.header.Get("Location")
	for off := 0; off < len(b); off += chunk {
		end := min(off+chunk, len(b))
		r = do(t, "PATCH", loc, b[off:end], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		if r.status != 202 || r.header.Get("Range") != fmt.Sprintf("0-%d", end-1) {
			t.Fatalf("PATCH %d-%d: %d Range %q %s", off, end-1, r.status, r.header.Get("Range"), r.body)
		}
		loc = base + r.header.Get("Location")
	}
	d := digest.FromBytes(b)
	r = do(t, "PUT", loc+"?digest="+d.String(), nil)
	if r.status != 201 || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT close: %d %v %s", r.status, r.header, r.body)
	}
	return d
}

func manifestFor(t *testing.T, base, repo string, layers ...[]byte) []byte {
	t.Helper()
	cfg := []byte(`{"os":"linux","architecture":"amd64"}`)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: pushBlob(t, base, repo, cfg, 1<<20), Size: int64(len(cfg))}}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: pushBlob(t, base, repo, l, 1<<20), Size: int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b
}

func TestProtocol(t *testing.T) {
	_, base := newServer(t, Config{})
	data := bytes.Repeat([]byte("abcdefghij"), 3000)
	d := pushBlob(t, base, "ns/app", data, 7000)

	// Ranged GET, HEAD.
	r := do(t, "GET", base+"/v2/ns/app/blobs/"+d.String(), nil, "Range", "bytes=10-19")
	if r.status != 206 || r.body != string(data[10:20]) {
		t.Errorf("ranged GET: %d %q", r.status, r.body)
	}
	r = do(t, "HEAD", base+"/v2/ns/app/blobs/"+d.String(), nil)
	if r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(data)) || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD blob: %d %v", r.status, r.header)
	}
	// A whole GET (written from a mapping of the file) and a conditional
	// one (ServeContent): the same bytes and headers, and a 304.
	r = do(t, "GET", base+"/v2/ns/app/blobs/"+d.String(), nil)
	if r.status != 200 || r.body != string(data) || r.header.Get("Content-Length") != fmt.Sprint(len(data)) ||
		r.header.Get("Docker-Content-Digest") != d.String() || r.header.Get("ETag") != `"`+d.String()+`"` ||
		r.header.Get("Accept-Ranges") != "bytes" || r.header.Get("Last-Modified") == "" {
		t.Errorf("GET blob: %d %v, %d bytes", r.status, r.header, len(r.body))
	}
	r = do(t, "GET", base+"/v2/ns/app/blobs/"+d.String(), nil, "If-None-Match", `"`+d.String()+`"`)
	if r.status != 304 || r.body != "" {
		t.Errorf("conditional GET blob: %d, %d bytes", r.status, len(r.body))
	}
	// Out-of-order chunk: 416 and the upload's real range.
	r = do(t, "POST", base+"/v2/ns/app/blobs/uploads/", nil)
	loc := base + r.header.Get("Location")
	do(t, "PATCH", loc, []byte("12345"), "Content-Range", "0-4")
	r = do(t, "PATCH", loc, []byte("67890"), "Content-Range", "10-14")
	// The error body arrives whole (a success header's "Content-Length:
	// 0" must not cut it, or break the kept-alive connection).
	if r.status != 416 || r.header.Get("Range") != "0-4" || r.code() != "BLOB_UPLOAD_INVALID" {
		t.Errorf("out-of-order chunk: %d Range %q %q", r.status, r.header.Get("Range"), r.body)
	}
	r = do(t, "GET", loc, nil)
	if r.status != 204 || r.header.Get("Range") != "0-4" {
		t.Errorf("upload status: %d %q", r.status, r.header.Get("Range"))
	}
	// A wrong digest at close: DIGEST_INVALID, nothing stored.
	bad := digest.FromString("something else")
	r = do(t, "PUT", loc+"?digest="+bad.String(), nil)
	if r.status != 400 || r.code() != "DIGEST_INVALID" {
		t.Errorf("close with a wrong digest: %d %s", r.status, r.body)
	}
	if r := do(t, "HEAD", base+"/v2/ns/app/blobs/"+bad.String(), nil); r.status != 404 {
		t.Errorf("a mismatched upload is visible: %d", r.status)
	}
	if r := do(t, "DELETE", loc, nil); r.status != 204 {
		t.Errorf("cancel: %d", r.status)
	}
	if r := do(t, "GET", loc, nil); r.status != 404 || r.code() != "BLOB_UPLOAD_UNKNOWN" {
		t.Errorf("status of a cancelled upload: %d %s", r.status, r.body)
	}
	// Monolithic POST with digest, and a cross-repository mount.
	small := []byte("monolithic")
	r = do(t, "POST", base+"/v2/ns/app/blobs/uploads/?digest="+digest.FromBytes(small).String(), small, "Content-Type", "application/octet-stream")
	if r.status != 201 {
		t.Errorf("monolithic POST: %d %s", r.status, r.body)
	}
	r = do(t, "POST", base+"/v2/other/blobs/uploads/?mount="+d.String()+"&from=ns/app", nil)
	if r.status != 201 || r.header.Get("Location") != "/v2/other/blobs/"+d.String() {
		t.Errorf("mount: %d %v", r.status, r.header)
	}
	r = do(t, "POST", base+"/v2/other/blobs/uploads/?mount="+bad.String()+"&from=ns/app", nil)
	if r.status != 202 {
		t.Errorf("mount of an absent blob: %d, want 202 (an upload session)", r.status)
	}
	// Without "from", an open registry mounts what it has anywhere.
	if r := do(t, "POST", base+"/v2/third/blobs/uploads/?mount="+d.String(), nil); r.status != 201 {
		t.Errorf("anonymous mount: %d", r.status)
	}

	// Manifests: by tag and digest; a missing blob; bad JSON; too big.
	body := manifestFor(t, base, "ns/app", []byte("layer one"))
	md := digest.FromBytes(body)
	r = do(t, "PUT", base+"/v2/ns/app/manifests/v1", body, "Content-Type", ocispec.MediaTypeImageManifest)
	if r.status != 201 || r.header.Get("Docker-Content-Digest") != md.String() || r.header.Get("Location") != "/v2/ns/app/manifests/"+md.String() {
		t.Fatalf("PUT manifest: %d %v %s", r.status, r.header, r.body)
	}
	r = do(t, "GET", base+"/v2/ns/app/manifests/v1", nil, "Accept", ocispec.MediaTypeImageManifest)
	if r.status != 200 || r.body != string(body) || r.header.Get("Content-Type") != ocispec.MediaTypeImageManifest {
		t.Errorf("GET manifest: %d %v", r.status, r.header)
	}
	r = do(t, "GET", base+"/v2/other/manifests/v1", nil)
	if r.status != 404 || r.code() != "MANIFEST_UNKNOWN" {
		t.Errorf("manifest of another repository: %d %s", r.status, r.body)
	}
	var m ocispec.Manifest
	json.Unmarshal(body, &m)
	m.Layers[0].Digest = digest.FromString("never pushed")
	b2, _ := json.Marshal(m)
	if r := do(t, "PUT", base+"/v2/ns/app/manifests/v2", b2, "Content-Type", ocispec.MediaTypeImageManifest); r.status != 400 || r.code() != "MANIFEST_BLOB_UNKNOWN" {
		t.Errorf("manifest with a missing layer: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", base+"/v2/ns/app/manifests/v2", []byte("{nope"), "Content-Type", ocispec.MediaTypeImageManifest); r.status != 400 || r.code() != "MANIFEST_INVALID" {
		t.Errorf("bad JSON: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", base+"/v2/ns/app/manifests/v2", bytes.Repeat([]byte(" "), 5<<20), "Content-Type", ocispec.MediaTypeImageManifest); r.status != 413 || r.code() != "SIZE_INVALID" {
		t.Errorf("oversized manifest: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", base+"/v2/ns/app/manifests/"+digest.FromString("x").String(), body, "Content-Type", ocispec.MediaTypeImageManifest); r.status != 400 || r.code() != "DIGEST_INVALID" {
		t.Errorf("manifest under another digest: %d %s", r.status, r.body)
	}
	// Names and digests that are not.
	for _, p := range []string{"/v2/UPPER/tags/list", "/v2/a/../b/tags/list", "/v2/-a/manifests/x"} {
		if r := do(t, "GET", base+p, nil); r.status != 400 && r.status != 404 || r.status == 400 && r.code() != "NAME_INVALID" {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := do(t, "GET", base+"/v2/ns/app/blobs/sha256:xyz", nil); r.status != 400 || r.code() != "DIGEST_INVALID" {
		t.Errorf("bad digest: %d %s", r.status, r.body)
	}

	// A push by digest with tag parameters.
	r = do(t, "PUT", base+"/v2/ns/app/manifests/"+md.String()+"?tag=p1&tag=p2", body, "Content-Type", ocispec.MediaTypeImageManifest)
	if r.status != 201 || strings.Join(r.header.Values("OCI-Tag"), ",") != "p1,p2" {
		t.Errorf("tag parameters: %d OCI-Tag %v", r.status, r.header.Values("OCI-Tag"))
	}
	if r := do(t, "GET", base+"/v2/ns/app/manifests/.bad-tag", nil); r.status != 404 || r.code() != "MANIFEST_UNKNOWN" {
		t.Errorf("GET of an impossible tag: %d %s", r.status, r.body)
	}
	for _, tag := range []string{"p1", "p2"} {
		do(t, "DELETE", base+"/v2/ns/app/manifests/"+tag, nil)
	}

	// Tags with pagination.
	for _, tag := range []string{"a", "b", "c", "d"} {
		do(t, "PUT", base+"/v2/ns/app/manifests/"+tag, body, "Content-Type", ocispec.MediaTypeImageManifest)
	}
	r = do(t, "GET", base+"/v2/ns/app/tags/list?n=2", nil)
	if r.body != `{"name":"ns/app","tags":["a","b"]}`+"\n" || r.header.Get("Link") != `</v2/ns/app/tags/list?last=b&n=2>; rel="next"` {
		t.Errorf("tags page 1: %s Link %q", r.body, r.header.Get("Link"))
	}
	r = do(t, "GET", base+"/v2/ns/app/tags/list?n=2&last=d", nil)
	if r.body != `{"name":"ns/app","tags":["v1"]}`+"\n" || r.header.Get("Link") != "" {
		t.Errorf("tags last page: %s Link %q", r.body, r.header.Get("Link"))
	}
	if r := do(t, "GET", base+"/v2/nothere/tags/list", nil); r.status != 404 || r.code() != "NAME_UNKNOWN" {
		t.Errorf("tags of a missing repository: %d %s", r.status, r.body)
	}
	r = do(t, "GET", base+"/v2/_catalog?n=1", nil)
	if r.body != `{"repositories":["ns/app"]}`+"\n" || !strings.Contains(r.header.Get("Link"), "last=ns%2Fapp") {
		t.Errorf("catalog: %s %q", r.body, r.header.Get("Link"))
	}

	// Referrers: a signature with a subject, filtered by artifact type.
	sig := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig",
		Config: ocispec.DescriptorEmptyJSON, Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(body))},
		Layers: []ocispec.Descriptor{ocispec.DescriptorEmptyJSON}}
	sig.SchemaVersion = 2
	pushBlob(t, base, "ns/app", []byte("{}"), 10)
	sb, _ := json.Marshal(sig)
	sd := digest.FromBytes(sb)
	r = do(t, "PUT", base+"/v2/ns/app/manifests/"+sd.String(), sb, "Content-Type", ocispec.MediaTypeImageManifest)
	if r.status != 201 || r.header.Get("OCI-Subject") != md.String() {
		t.Errorf("PUT referrer: %d OCI-Subject %q %s", r.status, r.header.Get("OCI-Subject"), r.body)
	}
	for at, want := range map[string]int{"": 1, "application/vnd.example.sig": 1, "application/other": 0} {
		r = do(t, "GET", base+"/v2/ns/app/referrers/"+md.String()+"?artifactType="+at, nil)
		var idx ocispec.Index
		json.Unmarshal([]byte(r.body), &idx)
		if r.status != 200 || len(idx.Manifests) != want || r.header.Get("Content-Type") != ocispec.MediaTypeImageIndex {
			t.Errorf("referrers %q: %d %s", at, r.status, r.body)
		}
		if want == 1 && (idx.Manifests[0].Digest != sd || idx.Manifests[0].ArtifactType != "application/vnd.example.sig") {
			t.Errorf("referrer descriptor: %+v", idx.Manifests[0])
		}
		if (at != "") != (r.header.Get("OCI-Filters-Applied") == "artifactType") {
			t.Errorf("referrers %q: OCI-Filters-Applied %q", at, r.header.Get("OCI-Filters-Applied"))
		}
	}
	// Deletes: the referrer goes from the list with its manifest.
	if r := do(t, "DELETE", base+"/v2/ns/app/manifests/"+sd.String(), nil); r.status != 202 {
		t.Errorf("DELETE manifest: %d", r.status)
	}
	r = do(t, "GET", base+"/v2/ns/app/referrers/"+md.String(), nil)
	if !strings.Contains(r.body, `"manifests":[]`) {
		t.Errorf("referrers after delete: %s", r.body)
	}
	if r := do(t, "DELETE", base+"/v2/ns/app/blobs/"+d.String(), nil); r.status != 202 {
		t.Errorf("DELETE blob: %d", r.status)
	}
	if r := do(t, "GET", base+"/v2/ns/app/blobs/"+d.String(), nil); r.status != 404 || r.code() != "BLOB_UNKNOWN" {
		t.Errorf("GET deleted blob: %d %s", r.status, r.body)
	}
	// Metrics saw it all.
	r = do(t, "GET", base+"/metrics", nil)
	for _, want := range []string{`berth_registry_requests_total{method="PUT",route="manifest",status="201"}`, "berth_registry_request_duration_seconds_bucket", "berth_registry_storage_bytes", "berth_registry_bytes_received_total"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPolicies(t *testing.T) {
	cfg := Config{}
	cfg.Policies.ImmutableTags = []string{"release/*"}
	cfg.Policies.Quotas = []Quota{{Repository: "team/", Bytes: 4000}}
	_, base := newServer(t, cfg)
	one := manifestFor(t, base, "release/app", []byte("one"))
	two := manifestFor(t, base, "release/app", []byte("two"))
	if r := do(t, "PUT", base+"/v2/release/app/manifests/1.0", one, "Content-Type", ocispec.MediaTypeImageManifest); r.status != 201 {
		t.Fatalf("first push: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", base+"/v2/release/app/manifests/1.0", two, "Content-Type", ocispec.MediaTypeImageManifest); r.status != 403 || r.code() != "DENIED" {
		t.Errorf("overwriting an immutable tag: %d %s", r.status, r.body)
	}
	// The namespace quota is shared: the second repository's upload
	// tips it over, and nothing of that upload is stored.
	pushBlob(t, base, "team/a", bytes.Repeat([]byte("a"), 3000), 1000)
	r := do(t, "POST", base+"/v2/team/b/blobs/uploads/", nil)
	loc := base + r.header.Get("Location")
	big := bytes.Repeat([]byte("b"), 2000)
	r = do(t, "PUT", loc+"?digest="+digest.FromBytes(big).String(), big)
	if r.status != 403 || r.code() != "DENIED" || !strings.Contains(r.body, "quota") {
		t.Errorf("push over the namespace quota: %d %s", r.status, r.body)
	}
	if r := do(t, "HEAD", base+"/v2/team/b/blobs/"+digest.FromBytes(big).String(), nil); r.status != 404 {
		t.Errorf("a blob over quota is stored: %d", r.status)
	}
	// Outside the namespace there is no limit.
	pushBlob(t, base, "elsewhere", big, 1000)
}

func TestReadOnly(t *testing.T) {
	_, base := newServer(t, Config{ReadOnly: true})
	if r := do(t, "POST", base+"/v2/a/blobs/uploads/", nil); r.status != 405 || r.code() != "UNSUPPORTED" {
		t.Errorf("push to a read-only registry: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", base+"/v2/", nil); r.status != 200 || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %d %v", r.status, r.header)
	}
}

// The pull-through cache: two upstreams at once under their prefixes;
// cached content is served when the upstream goes down; a proxied
// repository cannot be pushed to.
func TestPullThroughCache(t *testing.T) {
	up1srv, up1 := newServerHS(t, Config{})
	_, up2 := newServer(t, Config{})
	b1 := manifestFor(t, up1, "lib/one", []byte("from upstream one"))
	do(t, "PUT", up1+"/v2/lib/one/manifests/v1", b1, "Content-Type", ocispec.MediaTypeImageManifest)
	b2 := manifestFor(t, up2, "lib/two", []byte("from upstream two"))
	do(t, "PUT", up2+"/v2/lib/two/manifests/v1", b2, "Content-Type", ocispec.MediaTypeImageManifest)

	cfg := Config{Proxy: []ProxyConfig{{Prefix: "one.example", URL: up1, TTL: Duration(time.Millisecond)}, {Prefix: "two.example", URL: up2}}}
	_, cache := newServer(t, cfg)
	for repo, body := range map[string][]byte{"one.example/lib/one": b1, "two.example/lib/two": b2} {
		r := do(t, "GET", cache+"/v2/"+repo+"/manifests/v1", nil)
		if r.status != 200 || r.body != string(body) {
			t.Fatalf("GET %s through the cache: %d %s", repo, r.status, r.body)
		}
		var m ocispec.Manifest
		json.Unmarshal(body, &m)
		r = do(t, "GET", cache+"/v2/"+repo+"/blobs/"+m.Layers[0].Digest.String(), nil)
		if r.status != 200 || !strings.HasPrefix(r.body, "from upstream") {
			t.Errorf("blob through the cache: %d %q", r.status, r.body)
		}
	}
	if r := do(t, "GET", cache+"/v2/one.example/lib/none/manifests/v1", nil); r.status != 404 || r.code() != "MANIFEST_UNKNOWN" {
		t.Errorf("a manifest the upstream lacks: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", cache+"/v2/one.example/lib/one/blobs/uploads/", nil); r.status != 405 {
		t.Errorf("push into a proxied repository: %d %s", r.status, r.body)
	}
	// Upstream one goes down: its tag's TTL is over, but the cached
	// content is served, blobs included.
	up1srv.Close()
	time.Sleep(2 * time.Millisecond)
	if r := do(t, "GET", cache+"/v2/one.example/lib/one/manifests/v1", nil); r.status != 200 || r.body != string(b1) {
		t.Errorf("cached manifest with the upstream down: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", cache+"/v2/one.example/lib/other/manifests/v1", nil); r.status != 502 {
		t.Errorf("uncached manifest with the upstream down: %d %s, want 502", r.status, r.body)
	}
}

// Without auth the registry listens on loopback only, unless told.
func TestConfigRefusesOpenNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Root: "/r", Addr: "0.0.0.0:5000"}, "not a loopback address"},
		{Config{Root: "/r", Addr: "[::1]:5000"}, ""},
		{Config{Root: "/r", Addr: "localhost:5000"}, ""},
		{Config{Root: "/r", Addr: "0.0.0.0:5000", AllowUnauthenticated: true}, ""},
		{Config{Root: "/r", Addr: "127.0.0.1:5000", Policies: Policies{Quotas: []Quota{{Repository: "x", Bytes: 0}}}}, "bytes must be positive"},
		{Config{Addr: "127.0.0.1:5000"}, "root"},
	} {
		tc.cfg.Defaults()
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg.Addr, err, tc.want)
		}
	}
	dir := t.TempDir()
	bad := dir + "/r.yaml"
	os.WriteFile(bad, []byte("version: 1\nunknown_field: 1\n"), 0o600)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), "unknown_field") {
		t.Errorf("an unknown config field: %v", err)
	}
	os.WriteFile(bad, []byte("gc:\n  interval: soon\n"), 0o600)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad duration: %v", err)
	}
}

// A client that stops sending mid-body is cut off after the read timeout,
// and its half chunk is discarded: the upload stays where it was.
func TestSlowClientCutOff(t *testing.T) {
	s, base := newServer(t, Config{})
	s.BodyTimeout = 300 * time.Millisecond
	r := do(t, "POST", base+"/v2/slow/blobs/uploads/", nil)
	loc := r.header.Get("Location")
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n0123456789", loc)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	reply, _ := io.ReadAll(conn) // the server answers and closes, or just closes
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("a stalled client was not cut off (%v)", took)
	}
	if len(reply) > 0 && !strings.Contains(string(reply), "400") {
		t.Errorf("reply to a stalled body: %q", reply)
	}
	st := do(t, "GET", base+loc, nil)
	if st.status != 204 || st.header.Get("Range") != "0-0" {
		t.Errorf("upload after the cut: %d Range %q, want nothing kept", st.status, st.header.Get("Range"))
	}
}

// Past max_inflight, requests get 429 TOOMANYREQUESTS and a Retry-After.
func TestTooManyRequests(t *testing.T) {
	s, base := newServer(t, Config{})
	s.LimitInflight(1)
	// One upload holds the only slot: its body never ends.
	r := do(t, "POST", base+"/v2/busy/blobs/uploads/", nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("PATCH", base+r.header.Get("Location"), pr)
	go http.DefaultClient.Do(req)
	pw.Write([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r = do(t, "GET", base+"/v2/", nil)
		if r.status == 429 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.status != 429 || r.code() != "TOOMANYREQUESTS" || r.header.Get("Retry-After") == "" {
		t.Errorf("a request past the limit: %d %s %v", r.status, r.body, r.header)
	}
	pw.Close()
}
