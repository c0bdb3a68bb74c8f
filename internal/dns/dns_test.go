package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// names is the network the tests' servers answer for.
var names = map[string][]netip.Addr{
	"web": {netip.MustParseAddr("10.210.1.2")},
	"api": {netip.MustParseAddr("10.210.1.3"), netip.MustParseAddr("10.210.1.4")},
}

func lookup(name string) []netip.Addr { return names[name] }

// upstream is a fake resolver on 127.0.0.1, on one port for UDP and TCP.
type upstream struct {
	addr    netip.AddrPort
	queries atomic.Int32
}

// startUpstream serves h, or fakeUpstream's answers when h is nil.
func startUpstream(t *testing.T, h dns.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if h == nil {
		h = fakeUpstream
	}
	udp, tcp, err := listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	u.addr = netip.AddrPortFrom(loopback.Addr(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
	counted := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		h(w, r)
	})
	for _, srv := range []*dns.Server{
		{PacketConn: udp, Handler: counted},
		{Listener: tcp, Handler: counted},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

// fakeUpstream knows example.test and big.test (more A records than fit in
// 512 bytes) and answers NXDOMAIN for everything else.
func fakeUpstream(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg).SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	switch {
	case strings.EqualFold(q.Name, "example.test.") && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, aRecord(q.Name, "192.0.2.55"))
	case strings.EqualFold(q.Name, "big.test.") && q.Qtype == dns.TypeA:
		for i := range 60 {
			m.Answer = append(m.Answer, aRecord(q.Name, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()))
		}
	case strings.EqualFold(q.Name, "example.test.") || strings.EqualFold(q.Name, "big.test."):
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

func aRecord(name, addr string) *dns.A {
	return &dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.ParseIP(addr).To4(),
	}
}

// startServer starts a Server on 127.0.0.1:0 and closes it when the test
// ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if !cfg.Addr.IsValid() {
		cfg.Addr = loopback
	}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// query asks s for name over network and checks the answer carries the
// query's ID.
func query(t *testing.T, network string, addr netip.AddrPort, name string, qtype uint16, edns bool) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = 0xbe0f
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		return nil, err
	}
	if r.Id != m.Id {
		t.Errorf("%s %s over %s: id %#x, want %#x", name, dns.TypeToString[qtype], network, r.Id, m.Id)
	}
	return r, nil
}

// answers returns the addresses of the A records in r.
func answers(r *dns.Msg) []string {
	var got []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	slices.Sort(got)
	return got
}

func TestServe(t *testing.T) {
	up := startUpstream(t, nil)
	s := startServer(t, Config{Lookup: lookup, Upstreams: []netip.AddrPort{up.addr}, Domain: "Berth.Test."})

	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		auth    bool
		want    []string
		forward bool
	}{
		{name: "web.", qtype: dns.TypeA, auth: true, want: []string{"10.210.1.2"}},
		{name: "WEB.", qtype: dns.TypeA, auth: true, want: []string{"10.210.1.2"}},
		{name: "wEb.berth.TEST.", qtype: dns.TypeA, auth: true, want: []string{"10.210.1.2"}},
		{name: "api.", qtype: dns.TypeA, auth: true, want: []string{"10.210.1.3", "10.210.1.4"}},
		{name: "api.", qtype: dns.TypeANY, auth: true, want: []string{"10.210.1.3", "10.210.1.4"}},
		{name: "web.", qtype: dns.TypeAAAA, auth: true},
		{name: "example.test.", qtype: dns.TypeA, want: []string{"192.0.2.55"}, forward: true},
		{name: "EXAMPLE.test.", qtype: dns.TypeA, want: []string{"192.0.2.55"}, forward: true},
		{name: "example.test.", qtype: dns.TypeAAAA, forward: true},
		{name: "nope.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, forward: true},
		{name: "db.", qtype: dns.TypeA, rcode: dns.RcodeNameError, forward: true},
		{name: "berth.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, forward: true},
		{name: "web.", qtype: dns.TypeMX, rcode: dns.RcodeNameError, forward: true},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				before := up.queries.Load()
				r, err := query(t, network, s.Addr(), tt.name, tt.qtype, false)
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if r.Authoritative != tt.auth {
					t.Errorf("authoritative %v, want %v", r.Authoritative, tt.auth)
				}
				if !r.RecursionAvailable {
					t.Error("RA bit not set")
				}
				if diff := cmp.Diff(tt.want, answers(r)); diff != "" {
					t.Errorf("answers (-want +got):\n%s", diff)
				}
				if len(r.Question) != 1 || r.Question[0].Name != tt.name {
					t.Errorf("question %v, want %s as asked", r.Question, tt.name)
				}
				for _, rr := range r.Answer {
					if tt.auth && (rr.Header().Ttl != ttl || rr.Header().Name != tt.name) {
						t.Errorf("record %v, want owner %s and TTL %d", rr, tt.name, ttl)
					}
				}
				if forwarded := up.queries.Load() != before; forwarded != tt.forward {
					t.Errorf("forwarded %v, want %v", forwarded, tt.forward)
				}
			})
		}
	}
}

func TestTruncation(t *testing.T) {
	up := startUpstream(t, nil)
	many := make([]netip.Addr, 100)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 210, 2, byte(i)})
	}
	s := startServer(t, Config{
		Lookup:    func(name string) []netip.Addr { return map[string][]netip.Addr{"many": many}[name] },
		Upstreams: []netip.AddrPort{up.addr},
	})
	tests := []struct {
		network string
		name    string
		edns    bool
		trunc   bool
		count   int // answers; -1 for "fewer than all"
	}{
		{"udp", "many.", false, true, -1},
		{"udp", "many.", true, false, 100},
		{"tcp", "many.", false, false, 100},
		{"udp", "big.test.", false, true, -1},
		{"udp", "big.test.", true, false, 60},
		{"tcp", "big.test.", false, false, 60},
	}
	for _, tt := range tests {
		r, err := query(t, tt.network, s.Addr(), tt.name, dns.TypeA, tt.edns)
		if err != nil {
			t.Fatalf("%s over %s: %v", tt.name, tt.network, err)
		}
		if r.Truncated != tt.trunc {
			t.Errorf("%s over %s (edns %v): truncated %v, want %v", tt.name, tt.network, tt.edns, r.Truncated, tt.trunc)
		}
		if got := len(r.Answer); tt.count >= 0 && got != tt.count || tt.count < 0 && got >= 60 {
			t.Errorf("%s over %s (edns %v): %d answers, want %d", tt.name, tt.network, tt.edns, got, tt.count)
		}
		if tt.edns && r.IsEdns0() == nil {
			t.Errorf("%s over %s: no OPT record in answer to an EDNS query", tt.name, tt.network)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) netip.AddrPort {
	udp, tcp, err := listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(loopback.Addr(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
	udp.Close()
	tcp.Close()
	return addr
}

// blackhole returns a loopback address that takes queries and never
// answers: UDP packets are never read, TCP connections never accepted.
func blackhole(t *testing.T) netip.AddrPort {
	udp, tcp, err := listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close(); tcp.Close() })
	return netip.AddrPortFrom(loopback.Addr(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
}

func TestUpstreamFailure(t *testing.T) {
	up := startUpstream(t, nil)
	servfail := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeServerFailure))
	})
	tests := []struct {
		name      string
		upstreams []netip.AddrPort
		rcode     int
	}{
		{"down", []netip.AddrPort{closedAddr(t)}, dns.RcodeServerFailure},
		{"silent", []netip.AddrPort{blackhole(t)}, dns.RcodeServerFailure},
		{"none", []netip.AddrPort{}, dns.RcodeServerFailure},
		{"down then up", []netip.AddrPort{closedAddr(t), up.addr}, dns.RcodeSuccess},
		{"silent then up", []netip.AddrPort{blackhole(t), up.addr}, dns.RcodeSuccess},
		{"servfail then up", []netip.AddrPort{servfail.addr, up.addr}, dns.RcodeSuccess},
		{"servfail", []netip.AddrPort{servfail.addr}, dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, Config{Lookup: lookup, Upstreams: tt.upstreams, Timeout: 200 * time.Millisecond})
			for _, network := range []string{"udp", "tcp"} {
				start := time.Now()
				r, err := query(t, network, s.Addr(), "example.test.", dns.TypeA, false)
				if err != nil {
					t.Fatalf("over %s: %v", network, err)
				}
				if r.Rcode != tt.rcode {
					t.Errorf("over %s: rcode %s, want %s", network, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("over %s: answered after %v, want well within a second", network, d)
				}
			}
			// Container names do not depend on the upstreams.
			if r, err := query(t, "udp", s.Addr(), "web.", dns.TypeA, false); err != nil || len(r.Answer) != 1 {
				t.Errorf("web. = %v, %v; want one answer", r, err)
			}
		})
	}
}

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments and options only", "# nameserver 192.0.2.1\n; nameserver 192.0.2.2\noptions edns0 trust-ad\nsearch example.com\n", nil},
		{"systemd-resolved", "# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", []string{"127.0.0.53:53"}},
		{"several", "nameserver 127.0.0.1\n  nameserver\t192.0.2.1  # office\nnameserver 2001:db8::1;x\nnameserver fe80::1%eth0\n", []string{"127.0.0.1:53", "192.0.2.1:53", "[2001:db8::1]:53", "[fe80::1%eth0]:53"}},
		{"garbage lines", "nameserver\nnameserver not-an-ip\nnameservers 192.0.2.9\nNAMESERVER 192.0.2.8\nnameserver ::ffff:192.0.2.7\n", []string{"192.0.2.7:53"}},
		{"no trailing newline", "nameserver 192.0.2.1", []string{"192.0.2.1:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups, err := parseResolvConf(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("parseResolvConf(%q): %v", tt.in, err)
			}
			var got []string
			for _, u := range ups {
				got = append(got, u.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseResolvConf(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("nameservers", func(t *testing.T) {
		path := write("listed", "# generated\nnameserver 127.0.0.1\nnameserver 192.0.2.1 ; lab\noptions ndots:2\n")
		s := startServer(t, Config{Lookup: lookup, ResolvConf: path})
		want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("192.0.2.1:53")}
		if !slices.Equal(s.upstreams, want) {
			t.Errorf("upstreams %v, want %v", s.upstreams, want)
		}
	})

	for name, path := range map[string]string{
		"none listed": write("empty", "# nothing here\noptions edns0\n"),
		"missing":     filepath.Join(dir, "does-not-exist"),
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, Config{Lookup: lookup, ResolvConf: path})
			if len(s.upstreams) != 0 {
				t.Fatalf("upstreams %v, want none", s.upstreams)
			}
			r, err := query(t, "udp", s.Addr(), "example.test.", dns.TypeA, false)
			if err != nil || r.Rcode != dns.RcodeServerFailure {
				t.Errorf("example.test. = %v, %v; want SERVFAIL", r, err)
			}
			r, err = query(t, "udp", s.Addr(), "web.", dns.TypeA, false)
			if err != nil || len(r.Answer) != 1 {
				t.Errorf("web. = %v, %v; want one answer", r, err)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		if _, err := Start(t.Context(), Config{Addr: loopback, ResolvConf: dir}); err == nil {
			t.Error("Start with a directory as resolv.conf succeeded, want an error")
		}
	})
}

func TestIsSelf(t *testing.T) {
	tests := []struct {
		up, self string
		want     bool
	}{
		{"10.210.1.1:53", "10.210.1.1:53", true},
		{"10.210.1.1:53", "10.210.2.1:53", false},
		{"10.210.1.1:5353", "10.210.1.1:53", false},
		{"127.0.0.1:53", "0.0.0.0:53", true},
		{"0.0.0.0:53", "10.210.1.1:53", true},
		{"127.0.0.53:53", "10.210.1.1:53", false},
	}
	for _, tt := range tests {
		if got := isSelf(netip.MustParseAddrPort(tt.up), netip.MustParseAddrPort(tt.self)); got != tt.want {
			t.Errorf("isSelf(%s, %s) = %v, want %v", tt.up, tt.self, got, tt.want)
		}
	}
}

func TestStart(t *testing.T) {
	up := startUpstream(t, nil)
	s := startServer(t, Config{Lookup: lookup, Upstreams: []netip.AddrPort{}})
	if s.Addr().Port() == 0 || s.Addr().Addr() != loopback.Addr() {
		t.Errorf("Addr() = %v, want 127.0.0.1 with a port", s.Addr())
	}

	t.Run("address taken", func(t *testing.T) {
		_, err := Start(t.Context(), Config{Addr: s.Addr()})
		if err == nil || !strings.Contains(err.Error(), s.Addr().String()) {
			t.Errorf("Start on a taken address: %v, want an error naming %s", err, s.Addr())
		}
	})

	t.Run("tcp port taken", func(t *testing.T) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addr := l.Addr().(*net.TCPAddr).AddrPort()
		_, err = Start(t.Context(), Config{Addr: addr})
		if err == nil || !strings.Contains(err.Error(), "tcp "+addr.String()) {
			t.Errorf("Start with TCP port taken: %v, want an error naming tcp %s", err, addr)
		}
	})

	t.Run("never forwards to itself", func(t *testing.T) {
		addr := closedAddr(t)
		s := startServer(t, Config{Addr: addr, Lookup: lookup, Upstreams: []netip.AddrPort{addr, up.addr}})
		if want := []netip.AddrPort{up.addr}; !slices.Equal(s.upstreams, want) {
			t.Errorf("upstreams %v, want %v", s.upstreams, want)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Start(ctx, Config{Addr: loopback}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start with a cancelled context: %v, want context.Canceled", err)
		}
	})
}

func TestClose(t *testing.T) {
	up := startUpstream(t, nil)
	for _, how := range []string{"Close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s, err := Start(ctx, Config{Addr: loopback, Lookup: lookup, Upstreams: []netip.AddrPort{up.addr}})
			if err != nil {
				t.Fatal(err)
			}
			// An idle TCP connection must not keep Close waiting.
			idle, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			if _, err := query(t, "udp", s.Addr(), "web.", dns.TypeA, false); err != nil {
				t.Fatalf("before %s: %v", how, err)
			}
			if how == "cancel" {
				cancel()
				s.wg.Wait()
			}
			start := time.Now()
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Close took %v", d)
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			for _, network := range []string{"udp", "tcp"} {
				m := new(dns.Msg).SetQuestion("web.", dns.TypeA)
				c := &dns.Client{Net: network, Timeout: 200 * time.Millisecond}
				if r, _, err := c.Exchange(m, s.Addr().String()); err == nil {
					t.Errorf("over %s after %s: answered %v, want no answer", network, how, r)
				}
			}
		})
	}
}

// header returns a 12-byte DNS header.
func header(id uint16, flags uint16, qd, an, ns, ar uint16) []byte {
	return []byte{
		byte(id >> 8), byte(id), byte(flags >> 8), byte(flags),
		byte(qd >> 8), byte(qd), byte(an >> 8), byte(an),
		byte(ns >> 8), byte(ns), byte(ar >> 8), byte(ar),
	}
}

func packQuery(t testing.TB, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = 0x1234
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServeMsg(t *testing.T) {
	s := newServer(Config{Lookup: lookup}, nil)
	const drop = -1
	tests := []struct {
		name       string
		req        []byte
		mayForward bool
		rcode      int
		answers    int
	}{
		{"empty", nil, true, drop, 0},
		{"short", []byte{1, 2, 3}, true, drop, 0},
		{"response", header(1, 0x8000, 0, 0, 0, 0), true, drop, 0},
		{"no question", header(1, 0x0100, 0, 0, 0, 0), true, dns.RcodeFormatError, 0},
		{"question missing", header(1, 0x0100, 1, 0, 0, 0), true, dns.RcodeFormatError, 0},
		{"garbage after header", append(header(1, 0, 1, 0, 0, 0), 0xff, 0xff, 0xff), true, dns.RcodeFormatError, 0},
		{"two questions", packQuery(t, "web.", dns.TypeA, func(m *dns.Msg) {
			m.Question = append(m.Question, m.Question[0])
		}), true, dns.RcodeFormatError, 0},
		{"notify", packQuery(t, "web.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), true, dns.RcodeNotImplemented, 0},
		{"known", packQuery(t, "web.", dns.TypeA, nil), true, dns.RcodeSuccess, 1},
		{"known, no slot", packQuery(t, "api.", dns.TypeA, nil), false, dns.RcodeSuccess, 2},
		{"chaos class", packQuery(t, "web.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), true, dns.RcodeServerFailure, 0},
		{"root", packQuery(t, ".", dns.TypeA, nil), true, dns.RcodeServerFailure, 0},
		{"unknown, no upstreams", packQuery(t, "example.test.", dns.TypeA, nil), true, dns.RcodeServerFailure, 0},
		{"unknown, no slot", packQuery(t, "example.test.", dns.TypeA, nil), false, dns.RcodeRefused, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.serveMsg(t.Context(), tt.req, "udp", tt.mayForward)
			if tt.rcode == drop {
				if resp != nil {
					t.Errorf("serveMsg(%x) = %x, want no response", tt.req, resp)
				}
				return
			}
			var r dns.Msg
			if err := r.Unpack(resp); err != nil {
				t.Fatalf("serveMsg(%x) = %x, which does not parse: %v", tt.req, resp, err)
			}
			if !r.Response || r.Id != uint16(tt.req[0])<<8|uint16(tt.req[1]) {
				t.Errorf("serveMsg(%x): header %v, want a response with the query's ID", tt.req, r.MsgHdr)
			}
			if r.Rcode != tt.rcode || len(r.Answer) != tt.answers {
				t.Errorf("serveMsg(%x): rcode %s with %d answers, want %s with %d",
					tt.req, dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tt.rcode], tt.answers)
			}
		})
	}
}

// With every slot taken, as during a flood of queries for a dead upstream,
// container names still resolve and forwarded names are refused at once.
func TestBusy(t *testing.T) {
	up := startUpstream(t, nil)
	s := startServer(t, Config{Lookup: lookup, Upstreams: []netip.AddrPort{up.addr}})
	for range maxInFlight {
		s.slots <- struct{}{}
	}
	defer func() {
		for range maxInFlight {
			<-s.slots
		}
	}()
	for _, network := range []string{"udp", "tcp"} {
		if r, err := query(t, network, s.Addr(), "web.", dns.TypeA, false); err != nil || len(r.Answer) != 1 {
			t.Errorf("web. over %s = %v, %v; want one answer", network, r, err)
		}
		if r, err := query(t, network, s.Addr(), "example.test.", dns.TypeA, false); err != nil || r.Rcode != dns.RcodeRefused {
			t.Errorf("example.test. over %s = %v, %v; want REFUSED", network, r, err)
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream got %d queries, want none", n)
	}
}

// A malformed packet must not stop the server.
func TestMalformedOverNetwork(t *testing.T) {
	s := startServer(t, Config{Lookup: lookup, Upstreams: []netip.AddrPort{}})
	c, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range [][]byte{{0}, header(7, 0, 9, 9, 9, 9), header(7, 0x8000, 1, 0, 0, 0)} {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	tc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write([]byte{0, 3, 1, 2, 3})
	for _, network := range []string{"udp", "tcp"} {
		if r, err := query(t, network, s.Addr(), "web.", dns.TypeA, false); err != nil || len(r.Answer) != 1 {
			t.Errorf("web. over %s after garbage = %v, %v; want one answer", network, r, err)
		}
	}
}
