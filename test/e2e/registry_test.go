package e2e

// berth registry serve, for real: skopeo, berth's daemon, the docker CLI
// (through the real dockerd) and podman push to it and pull from it; a
// kill -9 mid-upload and garbage collection during pushes lose nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/testutil"
)

func skopeoInspectDigest(t *testing.T, ref string, extra ...string) string {
	t.Helper()
	out := testutil.Skopeo(t, append(append([]string{"inspect", "--tls-verify=false", "--raw"}, extra...), "docker://"+ref)...)
	return digest.FromBytes([]byte(out)).String()
}

func TestRegistrySkopeoRoundTrip(t *testing.T) {
	reg := testutil.StartBerthRegistry(t, berthBin, "")
	dir := t.TempDir()
	l := testutil.WriteOCILayout(t, filepath.Join(dir, "img"), "v1", []testutil.Layer{
		{Files: map[string]string{"etc/": "", "etc/hello": "hello from a gzip layer\n"}, Compression: "gzip"},
		{Files: map[string]string{"data/zstd.txt": "zstd layer\n"}, Compression: "zstd"},
	})
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/e2e/img:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/e2e/img:v1"); got != l.ManifestDigest.String() {
		t.Errorf("manifest digest in berth's registry %s, want %s", got, l.ManifestDigest)
	}
	// Back out again, byte for byte.
	back := filepath.Join(dir, "back")
	testutil.Skopeo(t, "copy", "--src-tls-verify=false", "--preserve-digests", "docker://"+reg.Addr+"/e2e/img:v1", "oci:"+back+":v1")
	for _, d := range append(l.LayerDigests, l.ConfigDigest, l.ManifestDigest) {
		a, err1 := os.ReadFile(filepath.Join(l.Dir, "blobs", "sha256", d.Encoded()))
		b, err2 := os.ReadFile(filepath.Join(back, "blobs", "sha256", d.Encoded()))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("blob %s differs after the round trip (%v, %v)", d, err1, err2)
		}
	}
	// A multi-platform index, every image with it.
	il := testutil.WriteOCIIndex(t, filepath.Join(dir, "multi"), "v1", []string{"amd64", "arm64"})
	testutil.Skopeo(t, "copy", "--all", "--dest-tls-verify=false", "--preserve-digests", "oci:"+il.Dir+":v1", "docker://"+reg.Addr+"/e2e/multi:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/e2e/multi:v1"); got != il.IndexDigest.String() {
		t.Errorf("index digest %s, want %s", got, il.IndexDigest)
	}
	for arch, img := range il.Images {
		if got := skopeoInspectDigest(t, reg.Addr+"/e2e/multi@"+img.ManifestDigest.String()); got != img.ManifestDigest.String() {
			t.Errorf("%s image %s, want %s", arch, got, img.ManifestDigest)
		}
	}
	// A copy between two repositories of the same registry.
	testutil.Skopeo(t, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+reg.Addr+"/e2e/img:v1", "docker://"+reg.Addr+"/e2e/copy:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/e2e/copy:v1"); got != l.ManifestDigest.String() {
		t.Errorf("copy within the registry: %s, want %s", got, l.ManifestDigest)
	}
	tags := testutil.Skopeo(t, "list-tags", "--tls-verify=false", "docker://"+reg.Addr+"/e2e/img")
	if !strings.Contains(tags, `"v1"`) {
		t.Errorf("list-tags: %s", tags)
	}
}

// berth's daemon pushes to and pulls from berth's registry; the real
// dockerd and podman pull what berth pushed and push their own.
func TestRegistryClients(t *testing.T) {
	reg := testutil.StartBerthRegistry(t, berthBin, "")
	e := newEnv(t)
	e.ok("import", "--change", `CMD ["/bin/sh"]`, baseRootfs(t), "busybox:latest")
	ref := reg.Addr + "/clients/busybox:1"
	e.ok("tag", "busybox:latest", ref)
	e.ok("push", ref)
	pushed := strings.TrimSpace(e.ok("image", "inspect", "--format", "{{index .RepoDigests 0}}", ref))
	e.ok("rmi", ref, "busybox:latest")
	e.ok("pull", ref)
	if got := strings.TrimSpace(e.ok("run", "--rm", "--network", "none", ref, "echo", "pulled from berth's registry")); got != "pulled from berth's registry" {
		t.Errorf("run of the pulled image: %q", got)
	}
	if !strings.HasSuffix(pushed, "@"+skopeoInspectDigest(t, ref)) {
		t.Errorf("berth's repo digest %s, registry has %s", pushed, skopeoInspectDigest(t, ref))
	}

	host := dockerd(t)
	docker(t, host, "pull", ref)
	if got := docker(t, host, "run", "--rm", "--network", "none", ref, "echo", "docker pulled it"); strings.TrimSpace(got) != "docker pulled it" {
		t.Errorf("docker run: %q", got)
	}
	dref := reg.Addr + "/clients/from-docker:1"
	docker(t, host, "tag", ref, dref)
	docker(t, host, "push", dref)
	e.ok("pull", dref)

	if _, err := exec.LookPath("podman"); err == nil {
		pdir := t.TempDir()
		out, err := exec.Command("podman", "--root", filepath.Join(pdir, "root"), "--runroot", filepath.Join(pdir, "run"),
			"--cgroup-manager", "cgroupfs", "pull", "--tls-verify=false", ref).CombinedOutput()
		if err != nil {
			t.Errorf("podman pull: %v\n%s", err, out)
		}
		exec.Command("podman", "--root", filepath.Join(pdir, "root"), "--runroot", filepath.Join(pdir, "run"), "system", "reset", "-f").Run()
	}
}

// A kill -9 in the middle of a chunked upload: after the restart the
// blob is not visible, the repository is consistent, the session can be
// resumed, and a retried push succeeds.
func TestRegistryKill9MidUpload(t *testing.T) {
	reg := testutil.StartBerthRegistry(t, berthBin, "")
	base := reg.URL()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	d := digest.FromBytes(data)
	res, err := http.Post(base+"/v2/crash/app/blobs/uploads/", "", nil)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("start upload: %v %v", res, err)
	}
	loc := base + res.Header.Get("Location")
	patch := func(b []byte, from int) *http.Response {
		req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(b))
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", from, from+len(b)-1))
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if r := patch(data[:300<<10], 0); r.StatusCode != 202 {
		t.Fatalf("first chunk: %d", r.StatusCode)
	}
	// The second chunk is cut off by the kill: the registry dies while
	// reading it.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[300<<10 : 500<<10])
		time.Sleep(300 * time.Millisecond)
		reg.Kill9()
		pw.Close()
	}()
	req, _ := http.NewRequest("PATCH", loc, pr)
	req.Header.Set("Content-Type", "application/octet-stream")
	http.DefaultClient.Do(req)
	reg.Restart()

	if r, _ := http.Head(base + "/v2/crash/app/blobs/" + d.String()); r == nil || r.StatusCode != 404 {
		t.Fatalf("a partial blob is visible after the crash: %v", r)
	}
	st, err := http.Get(loc)
	if err != nil || st.StatusCode != 204 {
		t.Fatalf("upload status after the crash: %v %v", st, err)
	}
	var have int
	fmt.Sscanf(strings.TrimPrefix(st.Header.Get("Range"), "0-"), "%d", &have)
	have++
	if have < 300<<10 || have > 500<<10 {
		t.Fatalf("upload holds %d bytes after the crash, want between the first chunk and the cut", have)
	}
	// Resume from what the registry says it has, then close.
	if r := patch(data[have:], have); r.StatusCode != 202 {
		t.Fatalf("resumed chunk: %d", r.StatusCode)
	}
	req, _ = http.NewRequest("PUT", loc+"?digest="+d.String(), nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 201 {
		t.Fatalf("close after resuming: %v %v", r, err)
	}
	got, _ := http.Get(base + "/v2/crash/app/blobs/" + d.String())
	var buf bytes.Buffer
	buf.ReadFrom(got.Body)
	got.Body.Close()
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("blob after the resumed upload: %d bytes, want %d", buf.Len(), len(data))
	}
	// A whole push killed half way and retried.
	l := testutil.WriteOCILayout(t, filepath.Join(t.TempDir(), "img"), "v1", []testutil.Layer{{Tar: bytes.Repeat([]byte{1}, 8<<20)}})
	cmd := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/crash/img:v1")
	if err := cmd.Start(); err != nil {
		t.Skipf("skopeo: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	reg.Kill9()
	cmd.Wait()
	reg.Restart()
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/crash/img:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/crash/img:v1"); got != l.ManifestDigest.String() {
		t.Errorf("retried push: %s, want %s", got, l.ManifestDigest)
	}
	// Nothing half-written is under blobs/.
	filepath.Walk(filepath.Join(reg.Root, "blobs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			want := filepath.Base(filepath.Dir(p))
			if got := digest.FromBytes(b).Encoded(); got != want {
				t.Errorf("blob file %s holds %s", p, got)
			}
		}
		return nil
	})
}

// Garbage collection in the server, every 100 ms with a short grace,
// while skopeo pushes images that share layers and old tags are deleted:
// every tag left pulls whole.
func TestRegistryGCDuringPushes(t *testing.T) {
	reg := testutil.StartBerthRegistry(t, berthBin, "gc:\n  interval: 100ms\n  grace: 500ms\n  delete_untagged: true\n")
	dir := t.TempDir()
	for i := range 8 {
		l := testutil.WriteOCILayout(t, filepath.Join(dir, fmt.Sprint(i)), "v1", []testutil.Layer{
			{Files: map[string]string{"shared": fmt.Sprint("shared ", i%3)}, Compression: "gzip"},
			{Files: map[string]string{"own": fmt.Sprint("own ", i)}, Compression: "gzip"},
		})
		ref := fmt.Sprintf("%s/gc/app:%d", reg.Addr, i)
		testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+ref)
		if i%2 == 1 {
			testutil.Skopeo(t, "delete", "--tls-verify=false", fmt.Sprintf("docker://%s/gc/app:%d", reg.Addr, i-1))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var tags struct{ Tags []string }
	out := testutil.Skopeo(t, "list-tags", "--tls-verify=false", "docker://"+reg.Addr+"/gc/app")
	json.Unmarshal([]byte(out), &tags)
	if len(tags.Tags) == 0 {
		t.Fatalf("no tags left: %s", out)
	}
	for _, tag := range tags.Tags {
		back := filepath.Join(t.TempDir(), "back")
		testutil.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+reg.Addr+"/gc/app:"+tag, "oci:"+back+":x")
	}
	time.Sleep(time.Second)
	if !strings.Contains(reg.Log(), "garbage collection") {
		t.Errorf("no collection ran:\n%s", reg.Log())
	}
	res, err := http.Get(reg.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	m.ReadFrom(res.Body)
	res.Body.Close()
	if !strings.Contains(m.String(), `berth_registry_gc_runs_total{result="ok"}`) || strings.Contains(m.String(), "berth_registry_gc_blobs_deleted_total 0\n") {
		t.Errorf("collections ran but removed nothing, or were not counted:\n%s", grepLines(m.String(), "gc_"))
	}
	// The CLI: a dry run over the same storage finds nothing more to do
	// than the server would.
	if out, err := reg.Run("gc", "--dry-run", "--grace", "0s"); err != nil || !strings.Contains(out, "would remove") {
		t.Errorf("gc --dry-run: %v\n%s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The OCI distribution-spec conformance suites, both the v1.1.1 release's
// and the main branch's, pass with every workflow on (scripts/conformance.sh
// builds them; see its header).
func TestRegistryConformance(t *testing.T) {
	reg := testutil.StartBerthRegistry(t, berthBin, "access_log: false\n")
	out, err := exec.Command("bash", "../../scripts/conformance.sh", reg.URL(), "all").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	for _, want := range []string{"conformance v1.1.1: PASS", "conformance main: PASS"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TLS: skopeo pushes and pulls with the registry's CA trusted (and is
// refused without it); the conformance suites pass over HTTPS.
func TestRegistryTLS(t *testing.T) {
	ca := testutil.NewCA(t, "berth registry test CA")
	cert, key := ca.Issue(t, "berth registry", "127.0.0.1", "localhost")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cert.pem"), cert, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
	reg := testutil.StartBerthRegistry(t, berthBin, "", "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
	certs := filepath.Join(testutil.CertsDir(t, reg.Addr, ca.CertPEM), reg.Addr) // skopeo takes the host's directory
	l := testutil.WriteOCILayout(t, filepath.Join(dir, "img"), "v1", []testutil.Layer{{Files: map[string]string{"f": "over tls"}, Compression: "gzip"}})
	testutil.Skopeo(t, "copy", "--dest-cert-dir", certs, "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/tls/img:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/tls/img:v1", "--cert-dir", certs); got != l.ManifestDigest.String() {
		t.Errorf("digest over TLS %s, want %s", got, l.ManifestDigest)
	}
	// An untrusted certificate is refused by a verifying client.
	if out, err := exec.Command("skopeo", "inspect", "docker://"+reg.Addr+"/tls/img:v1").CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Errorf("skopeo trusted an unknown CA: %v\n%s", err, out)
	}
	conf := exec.Command("bash", "../../scripts/conformance.sh", reg.URL(), "main")
	conf.Env = append(os.Environ(), "CONFORMANCE_CA="+filepath.Join(certs, "ca.crt"))
	out, err := conf.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "conformance main: PASS") {
		t.Errorf("conformance over TLS: %v\n%s", err, out)
	}
}

// htpasswdFile writes a bcrypt htpasswd file.
func htpasswdFile(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(users); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(users[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", users[i], h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Basic auth: the docker CLI logs in (and is refused with a wrong
// password), pushes and pulls; an anonymous pull works where allowed and
// an anonymous push does not; rules deny what they do not grant.
func TestRegistryBasicAuth(t *testing.T) {
	pw := htpasswdFile(t, "alice", "alice-pass", "bob", "bob-pass")
	reg := testutil.StartBerthRegistry(t, berthBin, fmt.Sprintf(`auth:
  htpasswd: {path: %s, realm: berth-test}
  anonymous_pull: true
  rules:
    - {account: alice, repository: "**", actions: ["*"]}
    - {account: bob, repository: "bob/**", actions: [pull, push]}
`, pw))
	host := dockerd(t)
	cfgDir := t.TempDir()
	dockerc := func(args ...string) (string, error) {
		out, err := exec.Command("docker", append([]string{"--config", cfgDir, "-H", host}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := dockerc("login", "-u", "alice", "-p", "wrong", reg.Addr); err == nil {
		t.Fatalf("docker login with a wrong password succeeded:\n%s", out)
	}
	if out, err := dockerc("login", "-u", "alice", "-p", "alice-pass", reg.Addr); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	l := testutil.WriteOCILayout(t, filepath.Join(t.TempDir(), "img"), "v1", []testutil.Layer{{Files: map[string]string{"f": "auth"}, Compression: "gzip"}})
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pass", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/team/app:v1")
	if out, err := dockerc("pull", reg.Addr+"/team/app:v1"); err != nil {
		t.Fatalf("docker pull as alice: %v\n%s", err, out)
	}
	if out, err := dockerc("tag", reg.Addr+"/team/app:v1", reg.Addr+"/team/app:v2"); err != nil {
		t.Fatal(out)
	}
	if out, err := dockerc("push", reg.Addr+"/team/app:v2"); err != nil {
		t.Fatalf("docker push as alice: %v\n%s", err, out)
	}
	// Anonymous: pull yes, push no.
	testutil.Skopeo(t, "inspect", "--tls-verify=false", "--no-creds", "docker://"+reg.Addr+"/team/app:v2")
	if out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "--dest-no-creds", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/team/anon:v1").CombinedOutput(); err == nil {
		t.Errorf("an anonymous push succeeded:\n%s", out)
	}
	// bob: his namespace only.
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--dest-creds", "bob:bob-pass", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/bob/app:v1")
	if out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "bob:bob-pass", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/team/bob:v1").CombinedOutput(); err == nil || !strings.Contains(string(out), "403") {
		t.Errorf("bob pushed outside his namespace: %v\n%s", err, out)
	}
	// The conformance suites, authenticated.
	conf := exec.Command("bash", "../../scripts/conformance.sh", reg.URL(), "all")
	conf.Env = append(os.Environ(), "OCI_USERNAME=alice", "OCI_PASSWORD=alice-pass")
	if out, err := conf.CombinedOutput(); err != nil {
		t.Errorf("conformance with basic auth: %v\n%s", err, out)
	}
}

// Token auth: skopeo and the docker CLI go through the challenge, fetch
// tokens from the registry's own endpoint and push and pull; the
// conformance suites pass through it.
func TestRegistryTokenAuth(t *testing.T) {
	pw := htpasswdFile(t, "alice", "alice-pass", "reader", "reader-pass")
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	reg := testutil.StartBerthRegistry(t, berthBin, fmt.Sprintf(`auth:
  htpasswd: {path: %s}
  token: {realm: "http://%s/token", service: berth-test, expiry: 2m}
  rules:
    - {account: alice, repository: "**", actions: ["*"]}
    - {account: reader, repository: "**", actions: [pull]}
`, pw, addr), "--addr", addr)
	if reg.Addr != addr {
		t.Fatalf("registry on %s, want %s", reg.Addr, addr)
	}
	l := testutil.WriteOCILayout(t, filepath.Join(t.TempDir(), "img"), "v1", []testutil.Layer{{Files: map[string]string{"f": "token"}, Compression: "gzip"}})
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pass", "--preserve-digests", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/tok/app:v1")
	if got := skopeoInspectDigest(t, reg.Addr+"/tok/app:v1", "--creds", "reader:reader-pass"); got != l.ManifestDigest.String() {
		t.Errorf("reader sees %s, want %s", got, l.ManifestDigest)
	}
	if out, err := exec.Command("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "reader:reader-pass", "oci:"+l.Dir+":v1", "docker://"+reg.Addr+"/tok/other:v1").CombinedOutput(); err == nil {
		t.Errorf("a pull-only account pushed:\n%s", out)
	}
	if out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--no-creds", "docker://"+reg.Addr+"/tok/app:v1").CombinedOutput(); err == nil {
		t.Errorf("an anonymous pull succeeded without anonymous_pull:\n%s", out)
	}
	host := dockerd(t)
	cfgDir := t.TempDir()
	if out, err := exec.Command("docker", "--config", cfgDir, "-H", host, "login", "-u", "alice", "-p", "alice-pass", reg.Addr).CombinedOutput(); err != nil {
		t.Fatalf("docker login (token): %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "--config", cfgDir, "-H", host, "pull", reg.Addr+"/tok/app:v1").CombinedOutput(); err != nil {
		t.Fatalf("docker pull (token): %v\n%s", err, out)
	}
	conf := exec.Command("bash", "../../scripts/conformance.sh", reg.URL(), "all")
	conf.Env = append(os.Environ(), "OCI_USERNAME=alice", "OCI_PASSWORD=alice-pass")
	if out, err := conf.CombinedOutput(); err != nil {
		t.Errorf("conformance with token auth: %v\n%s", err, out)
	}
}
