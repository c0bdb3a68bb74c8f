package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// fakeDaemon answers the Docker API on a unix socket that BERTH_HOST
// names, with canned answers keyed by "METHOD /path" (the version prefix
// removed). It records each request as "METHOD /path?query" with its body.
type fakeDaemon struct {
	mu       sync.Mutex
	requests []string
	bodies   map[string][]byte
}

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+/`)

func newFakeDaemon(t *testing.T, routes map[string]http.HandlerFunc) *fakeDaemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{bodies: map[string][]byte{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := apiVersionPrefix.ReplaceAllString(r.URL.Path, "/")
		if path == "/_ping" {
			w.Header().Set("Api-Version", "1.52")
			w.Write([]byte("OK"))
			return
		}
		key := r.Method + " " + path
		body, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.requests = append(d.requests, key+"?"+r.URL.RawQuery)
		d.bodies[key] = body
		d.mu.Unlock()
		h, ok := routes[key]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"message": "no route " + key})
			return
		}
		h(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("BERTH_HOST", "unix://"+sock)
	t.Setenv("BERTH_ROOT", "")
	return d
}

func (d *fakeDaemon) body(key string) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bodies[key]
}

func (d *fakeDaemon) sent(prefix string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, r := range d.requests {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// reply answers with v as JSON.
func reply(status int, v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if v != nil {
			json.NewEncoder(w).Encode(v)
		}
	}
}

func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

var testNetworks = []network.Summary{
	{Network: network.Network{Name: "bridge", ID: "5c7ab7e5a0e4f3fb4d8a3b2ad9f0e0c1b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3", Driver: "bridge", Scope: "local", EnableIPv4: true}},
	{Network: network.Network{Name: "app10", ID: "b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3", Driver: "bridge", Scope: "local", Internal: true, Labels: map[string]string{"team": "web", "env": "prod"}}},
	{Network: network.Network{Name: "app9", ID: "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2", Driver: "bridge", Scope: "local"}},
	{Network: network.Network{Name: "host", ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Driver: "host", Scope: "local"}},
}

func TestNetworkLs(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{"GET /networks": reply(200, testNetworks)})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"network", "ls"}, `NETWORK ID     NAME      DRIVER    SCOPE
a1b2c3d4e5f6   app9      bridge    local
b2c3d4e5f6a7   app10     bridge    local
5c7ab7e5a0e4   bridge    bridge    local
0123456789ab   host      host      local
`},
		{[]string{"network", "list", "-q"}, "a1b2c3d4e5f6\nb2c3d4e5f6a7\n5c7ab7e5a0e4\n0123456789ab\n"},
		{[]string{"network", "ls", "-q", "--no-trunc"}, testNetworks[2].ID + "\n" + testNetworks[1].ID + "\n" + testNetworks[0].ID + "\n" + testNetworks[3].ID + "\n"},
		{[]string{"network", "ls", "--format", "{{.Name}} {{.Internal}} {{.Labels}} {{.Label \"team\"}}"}, "app9 false  \napp10 true env=prod,team=web web\nbridge false  \nhost false  \n"},
		{[]string{"network", "ls", "--format", "table {{.Name}}\t{{.IPv4}}"}, "NAME      IPV4\napp9      false\napp10     false\nbridge    true\nhost      false\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := runIn(t, "", tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("output (-want +got)\n%s", diff)
			}
		})
	}

	out, _, code := runIn(t, "", "network", "ls", "--format", "json")
	var row map[string]string
	if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &row) != nil {
		t.Fatalf("network ls --format json = %q, exit %d", out, code)
	}
	for k, want := range map[string]string{"ID": "a1b2c3d4e5f6", "Name": "app9", "Driver": "bridge", "Scope": "local", "IPv6": "false"} {
		if row[k] != want {
			t.Errorf("network ls --format json: %s = %q, want %q", k, row[k], want)
		}
	}

	// Filters go to the daemon as given.
	d.requests = nil
	if _, stderr, code := runIn(t, "", "network", "ls", "-f", "driver=bridge", "--filter", "type=custom", "--filter", "label=team=web"); code != 0 {
		t.Fatalf("network ls --filter: exit %d: %s", code, stderr)
	}
	sent := d.sent("GET /networks")
	if len(sent) != 1 {
		t.Fatalf("requests %q, want one GET /networks", sent)
	}
	var got client.Filters
	_, raw, _ := strings.Cut(sent[0], "?")
	q, _ := url.ParseQuery(raw)
	if err := json.Unmarshal([]byte(q.Get("filters")), &got); err != nil {
		t.Fatalf("filters %q: %v", raw, err)
	}
	want := client.Filters{}.Add("driver", "bridge").Add("type", "custom").Add("label", "team=web")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("filters (-want +got)\n%s", diff)
	}
}

func TestNetworkRm(t *testing.T) {
	newFakeDaemon(t, map[string]http.HandlerFunc{
		"DELETE /networks/app":     reply(http.StatusNoContent, nil),
		"DELETE /networks/missing": reply(http.StatusNotFound, map[string]string{"message": "network missing not found"}),
		"DELETE /networks/busy":    reply(http.StatusForbidden, map[string]string{"message": "error while removing network: network busy has active endpoints"}),
	})
	tests := []struct {
		args          []string
		out, mentions string
		code          int
	}{
		{[]string{"network", "rm", "app"}, "app\n", "", 0},
		{[]string{"network", "rm", "missing", "app"}, "app\n", "network missing not found", 1},
		{[]string{"network", "remove", "-f", "missing", "app"}, "app\n", "", 0},
		{[]string{"network", "rm", "-f", "busy", "app"}, "app\n", "active endpoints", 1},
	}
	for _, tt := range tests {
		out, stderr, code := runIn(t, "", tt.args...)
		if out != tt.out || code != tt.code || !strings.Contains(stderr, tt.mentions) || (tt.mentions == "" && stderr != "") {
			t.Errorf("%q: stdout %q, stderr %q, exit %d; want stdout %q, exit %d, stderr mentioning %q", tt.args, out, stderr, code, tt.out, tt.code, tt.mentions)
		}
	}
}

func TestNetworkPrune(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /networks/prune": reply(200, network.PruneReport{NetworksDeleted: []string{"app", "backend"}}),
	})
	const prompt = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
	const deleted = "Deleted Networks:\napp\nbackend\n\n"
	tests := []struct {
		stdin string
		args  []string
		want  string
		calls int
	}{
		{"n\n", []string{"network", "prune"}, prompt, 0},
		{"", []string{"network", "prune"}, prompt, 0},
		{"y\n", []string{"network", "prune"}, prompt + deleted, 1},
		{"", []string{"network", "prune", "-f", "--filter", "until=24h"}, deleted, 1},
	}
	for _, tt := range tests {
		d.requests = nil
		out, stderr, code := runIn(t, tt.stdin, tt.args...)
		if code != 0 || out != tt.want || len(d.sent("POST /networks/prune")) != tt.calls {
			t.Errorf("%q with stdin %q: stdout %q, stderr %q, exit %d, %d prune calls; want stdout %q, %d calls",
				tt.args, tt.stdin, out, stderr, code, len(d.sent("POST /networks/prune")), tt.want, tt.calls)
		}
	}
}

func TestNetworkCreate(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /networks/create": reply(http.StatusCreated, network.CreateResponse{ID: "f00d"}),
	})
	out, stderr, code := runIn(t, "", "network", "create", "--subnet", "172.30.0.0/16", "--gateway", "172.30.0.1", "--ip-range", "172.30.5.0/24",
		"--internal", "--attachable", "-l", "team=web", "--label", "env", "-o", "com.docker.network.bridge.name=br-app", "--ipv6", "app")
	if code != 0 || out != "f00d\n" {
		t.Fatalf("network create: stdout %q, stderr %q, exit %d", out, stderr, code)
	}
	var req network.CreateRequest
	if err := json.Unmarshal(d.body("POST /networks/create"), &req); err != nil {
		t.Fatal(err)
	}
	yes := true
	want := network.CreateRequest{
		Name: "app", Driver: "bridge", Internal: true, Attachable: true, EnableIPv6: &yes,
		Labels:  map[string]string{"team": "web", "env": ""},
		Options: map[string]string{"com.docker.network.bridge.name": "br-app"},
		IPAM: &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{
			Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: netip.MustParseAddr("172.30.0.1"), IPRange: netip.MustParsePrefix("172.30.5.0/24"),
		}}},
	}
	if diff := cmp.Diff(want, req, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("create request (-want +got)\n%s", diff)
	}
}

func TestNetworkIPAMErrors(t *testing.T) {
	for _, tt := range []struct {
		o    networkCreateOptions
		want string
	}{
		{networkCreateOptions{gateways: []string{"10.0.0.1"}}, "every ip-range or gateway must have a corresponding subnet"},
		{networkCreateOptions{subnets: []string{"10.0.0.0/8", "10.1.0.0/16"}}, "multiple overlapping subnet configuration is not supported"},
		{networkCreateOptions{subnets: []string{"10.0.0.0/16"}, gateways: []string{"10.1.0.1"}}, "no matching subnet for gateway 10.1.0.1"},
		{networkCreateOptions{subnets: []string{"10.0.0.0/16"}, ipRanges: []string{"10.1.0.0/24"}}, "no matching subnet for range 10.1.0.0/24"},
		{networkCreateOptions{subnets: []string{"10.0.0.0/16", "10.2.0.0/16"}, gateways: []string{"10.0.0.1", "10.0.0.2"}}, "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/16)"},
		{networkCreateOptions{subnets: []string{"10.0.0.0/16"}, auxAddresses: []string{"r=10.3.0.1"}}, "no matching subnet for aux-address 10.3.0.1"},
		{networkCreateOptions{subnets: []string{"nope"}}, `--subnet "nope"`},
	} {
		_, err := tt.o.ipam()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ipam(%+v) = %v, want an error mentioning %q", tt.o, err, tt.want)
		}
	}
}

func TestNetworkConnect(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /networks/app/connect":    reply(200, nil),
		"POST /networks/app/disconnect": reply(200, nil),
	})
	if _, stderr, code := runIn(t, "", "network", "connect", "--alias", "db", "--alias", "pg", "--ip", "172.30.0.9", "app", "web"); code != 0 {
		t.Fatalf("network connect: exit %d: %s", code, stderr)
	}
	var req network.ConnectRequest
	if err := json.Unmarshal(d.body("POST /networks/app/connect"), &req); err != nil {
		t.Fatal(err)
	}
	if req.Container != "web" || !cmp.Equal(req.EndpointConfig.Aliases, []string{"db", "pg"}) ||
		req.EndpointConfig.IPAMConfig == nil || req.EndpointConfig.IPAMConfig.IPv4Address != netip.MustParseAddr("172.30.0.9") {
		t.Errorf("connect request %s", d.body("POST /networks/app/connect"))
	}
	if _, stderr, code := runIn(t, "", "network", "disconnect", "-f", "app", "web"); code != 0 {
		t.Fatalf("network disconnect: exit %d: %s", code, stderr)
	}
	var dreq network.DisconnectRequest
	if err := json.Unmarshal(d.body("POST /networks/app/disconnect"), &dreq); err != nil || dreq.Container != "web" || !dreq.Force {
		t.Errorf("disconnect request %s (%v)", d.body("POST /networks/app/disconnect"), err)
	}
}

// TestCreateSendsNetworking checks what create puts on the wire: docker's
// field names for ports, hosts, DNS and the endpoint settings.
func TestCreateSendsNetworking(t *testing.T) {
	d := newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /containers/create": reply(http.StatusCreated, container.CreateResponse{ID: "c0ffee"}),
	})
	out, stderr, code := runIn(t, "", "create", "-p", "127.0.0.1:8080:80", "--network", "app", "--network-alias", "web",
		"--add-host", "db:10.0.0.2", "--dns", "1.1.1.1", "busybox")
	if code != 0 || out != "c0ffee\n" {
		t.Fatalf("create: stdout %q, stderr %q, exit %d", out, stderr, code)
	}
	var body struct {
		ExposedPorts map[string]struct{}
		HostConfig   struct {
			NetworkMode  string
			PortBindings map[string][]map[string]string
			ExtraHosts   []string
			Dns          []string
		}
		NetworkingConfig struct {
			EndpointsConfig map[string]struct{ Aliases []string }
		}
	}
	if err := json.Unmarshal(d.body("POST /containers/create"), &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("ExposedPorts = %v, want 80/tcp", body.ExposedPorts)
	}
	h := body.HostConfig
	if h.NetworkMode != "app" || !cmp.Equal(h.PortBindings, map[string][]map[string]string{"80/tcp": {{"HostIp": "127.0.0.1", "HostPort": "8080"}}}) ||
		!cmp.Equal(h.ExtraHosts, []string{"db:10.0.0.2"}) || !cmp.Equal(h.Dns, []string{"1.1.1.1"}) {
		t.Errorf("HostConfig = %+v", h)
	}
	if got := body.NetworkingConfig.EndpointsConfig["app"].Aliases; !cmp.Equal(got, []string{"web"}) {
		t.Errorf("EndpointsConfig[app].Aliases = %q, want [web]", got)
	}
}

func TestPort(t *testing.T) {
	inspect := map[string]any{
		"Id": "abc", "Name": "/web",
		"NetworkSettings": map[string]any{"Ports": map[string]any{
			"80/tcp":   []map[string]string{{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}},
			"443/tcp":  []map[string]string{{"HostIp": "127.0.0.1", "HostPort": "8443"}},
			"53/udp":   []map[string]string{{"HostIp": "", "HostPort": "5353"}},
			"9000/tcp": nil, // exposed, not published
		}},
	}
	newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /containers/web/json":  reply(200, inspect),
		"GET /containers/nope/json": reply(404, map[string]string{"message": "No such container: nope"}),
	})
	tests := []struct {
		args         []string
		out, mention string
		code         int
	}{
		{[]string{"port", "web"}, "53/udp -> 0.0.0.0:5353\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n443/tcp -> 127.0.0.1:8443\n", "", 0},
		{[]string{"container", "port", "web", "80"}, "0.0.0.0:8080\n[::]:8080\n", "", 0},
		{[]string{"port", "web", "443/tcp"}, "127.0.0.1:8443\n", "", 0},
		{[]string{"port", "web", "53/udp"}, "0.0.0.0:5353\n", "", 0},
		{[]string{"port", "web", "53"}, "", "berth: no public port '53/tcp' published for web\n", 1},
		{[]string{"port", "web", "9000"}, "", "berth: no public port '9000/tcp' published for web\n", 1},
		{[]string{"port", "web", "http"}, "", "berth: invalid port 'http': invalid syntax\n", 1},
		{[]string{"port", "nope"}, "", "No such container: nope", 1},
	}
	for _, tt := range tests {
		out, stderr, code := runIn(t, "", tt.args...)
		if out != tt.out || code != tt.code || !strings.Contains(stderr, tt.mention) {
			t.Errorf("%q: stdout %q, stderr %q, exit %d; want stdout %q, exit %d, stderr mentioning %q", tt.args, out, stderr, code, tt.out, tt.code, tt.mention)
		}
	}
}

func TestDisplayPorts(t *testing.T) {
	any4, any6, lo := netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		ports []container.PortSummary
		want  string
	}{
		{nil, ""},
		{[]container.PortSummary{{PrivatePort: 80, Type: "tcp"}}, "80/tcp"},
		{[]container.PortSummary{{IP: any4, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}, "0.0.0.0:8080->80/tcp"},
		{[]container.PortSummary{{IP: any6, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {IP: any4, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			"0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"},
		{[]container.PortSummary{{IP: lo, PrivatePort: 53, PublicPort: 53, Type: "udp"}}, "127.0.0.1:53->53/udp"},
		// Consecutive ports published at their own numbers, or only
		// exposed, are merged into ranges.
		{[]container.PortSummary{
			{IP: any4, PrivatePort: 8001, PublicPort: 8001, Type: "tcp"}, {IP: any4, PrivatePort: 8000, PublicPort: 8000, Type: "tcp"},
			{PrivatePort: 7000, Type: "udp"}, {PrivatePort: 7001, Type: "udp"}, {PrivatePort: 7003, Type: "udp"},
		}, "7000-7001/udp, 7003/udp, 0.0.0.0:8000-8001->8000-8001/tcp"},
		{[]container.PortSummary{{PrivatePort: 443, Type: "tcp"}, {PrivatePort: 80, Type: "tcp"}, {IP: any4, PrivatePort: 22, PublicPort: 2222, Type: "tcp"}},
			"80/tcp, 443/tcp, 0.0.0.0:2222->22/tcp"},
	}
	for _, tt := range tests {
		if got := displayPorts(tt.ports); got != tt.want {
			t.Errorf("displayPorts(%v) = %q, want %q", tt.ports, got, tt.want)
		}
	}
}

func TestPsPortsAndNetworks(t *testing.T) {
	list := []map[string]any{{
		"Id": "0123456789abcdef", "Names": []string{"/web"}, "Image": "nginx", "Command": "nginx", "Created": 1, "State": "running", "Status": "Up 1 second",
		"Ports":           []map[string]any{{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}},
		"NetworkSettings": map[string]any{"Networks": map[string]any{"frontend": map[string]any{}, "backend": map[string]any{}}},
	}}
	newFakeDaemon(t, map[string]http.HandlerFunc{"GET /containers/json": reply(200, list)})
	out, stderr, code := runIn(t, "", "ps", "--format", "{{.Names}}|{{.Ports}}|{{.Networks}}")
	if want := "web|443/tcp, 0.0.0.0:8080->80/tcp|backend,frontend\n"; code != 0 || out != want {
		t.Errorf("ps --format: stdout %q, stderr %q, exit %d; want %q", out, stderr, code, want)
	}
	out, _, _ = runIn(t, "", "ps")
	if !strings.Contains(out, "PORTS") || !strings.Contains(out, "443/tcp, 0.0.0.0:8080->80/tcp") {
		t.Errorf("ps table lacks the ports:\n%s", out)
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"443/tcp -> x", "80/tcp -> x", "8080/tcp -> x", "53/udp -> x", "app10", "app9", "app09b"}
	want := []string{"53/udp -> x", "80/tcp -> x", "443/tcp -> x", "8080/tcp -> x", "app9", "app09b", "app10"}
	got := append([]string(nil), in...)
	slices.SortFunc(got, naturalCompare)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("natural order (-want +got)\n%s", diff)
	}
}
