package dns

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// ttl is the TTL of local answers; Docker's embedded server uses the same.
const ttl = 600

// ednsSize is the UDP payload size the server advertises in its own OPT
// records, and the most it sends over UDP whatever a client advertises.
const ednsSize = dns.DefaultMsgSize

// serveMsg turns one request, as read from network ("udp" or "tcp"), into
// the bytes of its response; nil means send nothing. When mayForward is
// false the caller holds no slot, so queries that would be forwarded get
// REFUSED instead.
//
// Every response is packed by miekg/dns from a message it built, so it
// parses; the fuzz test holds it to that.
func (s *Server) serveMsg(ctx context.Context, req []byte, network string, mayForward bool) []byte {
	var q dns.Msg
	if err := q.Unpack(req); err != nil {
		s.log.Debug("dns: malformed query", "len", len(req), "err", err)
		return formErr(req)
	}
	if q.Response {
		// Answering responses would let two servers bounce packets forever.
		return nil
	}
	switch {
	case q.Opcode != dns.OpcodeQuery:
		return s.pack(new(dns.Msg).SetRcode(&q, dns.RcodeNotImplemented), &q, network)
	case len(q.Question) != 1:
		return s.pack(reply(&q, dns.RcodeFormatError), &q, network)
	}
	if resp := s.answer(&q); resp != nil {
		return s.pack(resp, &q, network)
	}
	if !mayForward {
		s.log.Debug("dns: too many queries in flight", "name", q.Question[0].Name)
		return s.pack(reply(&q, dns.RcodeRefused), &q, network)
	}
	return s.pack(s.forward(ctx, &q, network), &q, network)
}

// answer returns the authoritative answer for a query about a name Lookup
// knows, or nil if the query should be forwarded.
func (s *Server) answer(q *dns.Msg) *dns.Msg {
	qq := q.Question[0]
	if qq.Qclass != dns.ClassINET {
		return nil
	}
	switch qq.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
	default:
		return nil
	}
	addrs := s.find(qq.Name)
	if len(addrs) == 0 {
		return nil
	}
	m := reply(q, dns.RcodeSuccess)
	m.Authoritative = true
	// An AAAA query gets NOERROR with no records: NXDOMAIN would tell the
	// client the name does not exist at all, and some resolvers then give up
	// on the A query they sent alongside.
	if qq.Qtype == dns.TypeAAAA {
		return m
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() {
			continue
		}
		m.Answer = append(m.Answer, &dns.A{
			// The owner is the name as asked: resolvers that randomise the
			// case of queries (DNS 0x20) expect it back unchanged.
			Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   a.AsSlice(),
		})
	}
	return m
}

// find asks Lookup about a query name, and again without the search domain.
func (s *Server) find(qname string) []netip.Addr {
	if s.lookup == nil {
		return nil
	}
	name := normalize(qname)
	if name == "" {
		return nil
	}
	if addrs := s.lookup(name); len(addrs) > 0 {
		return addrs
	}
	if s.domain != "" {
		if short, ok := strings.CutSuffix(name, "."+s.domain); ok && short != "" {
			return s.lookup(short)
		}
	}
	return nil
}

// normalize lower-cases a name and strips its surrounding dots, the form
// Lookup is asked in.
func normalize(name string) string {
	return strings.Trim(strings.ToLower(name), ".")
}

// reply returns an empty response to q with rcode. The server offers
// recursion through its upstreams, so it says so; otherwise clients such as
// dig warn on every answer.
func reply(q *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg).SetRcode(q, rcode)
	m.RecursionAvailable = true
	return m
}

// pack encodes resp for the client that sent q over network. Over UDP the
// response is cut to what the client can take (512 bytes, or its EDNS
// size), with the TC bit telling it to retry over TCP.
func (s *Server) pack(resp, q *dns.Msg, network string) []byte {
	size := dns.MaxMsgSize
	if opt := q.IsEdns0(); opt != nil {
		if resp.IsEdns0() == nil {
			resp.SetEdns0(ednsSize, false)
		}
		if network == "udp" {
			size = int(min(max(opt.UDPSize(), dns.MinMsgSize), ednsSize))
		}
	} else if network == "udp" {
		size = dns.MinMsgSize
	}
	resp.Compress = true
	if resp.Len() > size {
		resp.Truncate(size)
	}
	b, err := resp.Pack()
	if err != nil {
		// A name or record can unpack yet not pack again (an extended
		// rcode without OPT, say); the bare header always packs.
		s.log.Debug("dns: pack response", "err", err)
		b, _ = (&dns.Msg{MsgHdr: dns.MsgHdr{
			Id: q.Id, Response: true, Opcode: q.Opcode, RecursionAvailable: true,
			Rcode: dns.RcodeServerFailure,
		}}).Pack()
	}
	return b
}

// formErr answers a request that did not parse with FORMERR, if its header
// is readable and it claims to be a query; otherwise it returns nil and the
// request is dropped.
func formErr(req []byte) []byte {
	const qrBit = 0x80
	if len(req) < 12 || req[2]&qrBit != 0 {
		return nil
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id:       uint16(req[0])<<8 | uint16(req[1]),
		Response: true,
		Opcode:   int(req[2]>>3) & 0xf,
		Rcode:    dns.RcodeFormatError,
	}}
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}
