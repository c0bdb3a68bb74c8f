package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeMsg feeds arbitrary bytes to the server as a UDP query. serveMsg
// must not panic, and whatever it answers must parse as a response with the
// query's ID that fits a UDP reply. The server has no upstreams, so nothing
// leaves the process.
func FuzzServeMsg(f *testing.F) {
	f.Add(packQuery(f, "web.", dns.TypeA, nil))
	f.Add(packQuery(f, "API.berth.test.", dns.TypeANY, func(m *dns.Msg) { m.SetEdns0(1232, true) }))
	f.Add(packQuery(f, "web.", dns.TypeAAAA, nil))
	f.Add(packQuery(f, "example.test.", dns.TypeMX, nil))
	f.Add(packQuery(f, "many.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(600, false) }))
	f.Add(header(1, 0x0100, 1, 0, 0, 0))
	f.Add([]byte{0xff})

	many := make([]netip.Addr, 300)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 210, byte(i >> 8), byte(i)})
	}
	s := newServer(Config{
		Lookup: func(name string) []netip.Addr {
			if name == "many" {
				return many
			}
			return lookup(name)
		},
		Domain: "berth.test",
	}, nil)
	f.Fuzz(func(t *testing.T, req []byte) {
		for _, mayForward := range []bool{true, false} {
			resp := s.serveMsg(t.Context(), req, "udp", mayForward)
			if resp == nil {
				continue
			}
			var r dns.Msg
			if err := r.Unpack(resp); err != nil {
				t.Fatalf("serveMsg(%x) = %x, which does not parse: %v", req, resp, err)
			}
			if !r.Response || len(req) < 2 || r.Id != uint16(req[0])<<8|uint16(req[1]) {
				t.Fatalf("serveMsg(%x): header %v, want a response with the query's ID", req, r.MsgHdr)
			}
			if len(resp) > ednsSize {
				t.Fatalf("serveMsg(%x): %d bytes, more than fits a UDP reply", req, len(resp))
			}
		}
	})
}
