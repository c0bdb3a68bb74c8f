package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// forward sends q to the upstreams in order over network and returns the
// first usable answer, or SERVFAIL when there is none.
//
// A truncated UDP answer is passed on as it is: the client retries over TCP,
// and that query is forwarded over TCP in turn.
func (s *Server) forward(ctx context.Context, q *dns.Msg, network string) *dns.Msg {
	for _, up := range s.upstreams {
		r, err := s.exchange(ctx, q, network, up)
		if err != nil {
			s.log.Debug("dns: forward failed", "name", q.Question[0].Name, "upstream", up, "err", err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		// Like Docker, treat SERVFAIL and REFUSED as this upstream's
		// trouble and ask the next one.
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			s.log.Debug("dns: upstream failed the query", "name", q.Question[0].Name, "upstream", up, "rcode", dns.RcodeToString[r.Rcode])
			continue
		}
		return r
	}
	return reply(q, dns.RcodeServerFailure)
}

// exchange asks one upstream, within s.timeout. The query goes out with a
// fresh random ID, so a container's predictable IDs do not make spoofed
// answers easier, and the answer comes back with the client's ID.
func (s *Server) exchange(ctx context.Context, q *dns.Msg, network string, up netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	out := q.Copy()
	out.Id = dns.Id()
	// The UDP size only sizes the read buffer, for queries without EDNS
	// answered by an upstream that sends more than 512 bytes anyway.
	c := &dns.Client{Net: network, Timeout: s.timeout, UDPSize: dns.MaxMsgSize}
	co, err := c.DialContext(ctx, up.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, up, err)
	}
	defer co.Close()
	// The exchange only obeys ctx's deadline; closing the connection is
	// what makes Close abandon it at once.
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()

	r, _, err := c.ExchangeWithConnContext(ctx, out, co)
	if err != nil {
		// A truncated UDP answer may end mid-record and fail to unpack;
		// its header is still enough to send the client to TCP.
		if r != nil && r.Id == out.Id && r.Response && r.Truncated {
			t := reply(q, r.Rcode)
			t.Truncated = true
			return t, nil
		}
		return nil, fmt.Errorf("query %s %s: %w", network, up, err)
	}
	if !r.Response {
		return nil, fmt.Errorf("query %s %s: answer is not a response", network, up)
	}
	if len(r.Question) > 0 && !sameQuestion(r.Question[0], q.Question[0]) {
		return nil, fmt.Errorf("query %s %s: answer is for %s, not %s", network, up, r.Question[0].Name, q.Question[0].Name)
	}
	r.Id = q.Id
	// Stub resolvers such as glibc's check that the question comes back
	// exactly as asked; some upstreams leave it out of error answers.
	r.Question = []dns.Question{q.Question[0]}
	return r, nil
}

func sameQuestion(a, b dns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
