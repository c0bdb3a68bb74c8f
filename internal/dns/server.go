// Package dns is berth's embedded DNS server for user-defined networks, the
// counterpart of Docker's 127.0.0.11 resolver.
//
// The daemon runs one Server per user-defined network, listening on the
// network's gateway address in the host's network namespace, and containers
// on the network get that address as their nameserver. The server answers
// container names and aliases from a Lookup callback and forwards every other
// query to the host's resolvers. Because it runs on the host rather than
// inside each container, loopback upstreams such as systemd-resolved's
// 127.0.0.53 work as they are, which Docker has to special-case.
//
// Only the daemon's network wiring should import this package.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Lookup returns the IPv4 addresses for a name (already lower-cased, without
// the trailing dot) on this server's network, or nil if unknown. It is called
// from several goroutines at once and should not block.
type Lookup func(name string) []netip.Addr

// Config describes one Server.
type Config struct {
	// Addr is where to listen, on both UDP and TCP: the network's gateway
	// and port 53 in production. With port 0 both transports share one
	// port chosen by the kernel.
	Addr netip.AddrPort
	// Lookup answers the names of the network's containers. Nil knows no
	// names, so every query is forwarded.
	Lookup Lookup
	// Upstreams are the resolvers that other queries are forwarded to, tried
	// in order. Nil reads them from ResolvConf; an empty non-nil slice
	// forwards nowhere and answers SERVFAIL.
	Upstreams []netip.AddrPort
	// ResolvConf is read for nameservers when Upstreams is nil. Default
	// "/etc/resolv.conf". A missing file, or one without nameservers,
	// leaves the server with no upstreams.
	ResolvConf string
	// Domain is an optional search domain: "name.<Domain>" resolves like
	// "name".
	Domain string
	// Timeout bounds each attempt at one upstream. Default 2s.
	Timeout time.Duration
	// Logger receives debug records. Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultResolvConf = "/etc/resolv.conf"
	defaultTimeout    = 2 * time.Second

	// maxInFlight bounds the queries served concurrently off the UDP socket
	// and the forwards from TCP connections, so a flood of queries for a
	// dead upstream holds at most this many goroutines; the rest get
	// REFUSED unless they can be answered locally.
	maxInFlight = 64
	// maxConns bounds open TCP connections; more are closed on accept.
	maxConns = 64
	// tcpIdle closes TCP connections that send nothing, so idle clients
	// cannot hold connection slots forever.
	tcpIdle = 10 * time.Second
	// listenAttempts is how often Start looks for a port free on both UDP
	// and TCP when Addr's port is 0.
	listenAttempts = 5
)

// Server is an embedded DNS server for one network. Start it with Start and
// stop it with Close or by cancelling Start's context.
type Server struct {
	lookup    Lookup
	domain    string // lower-case, no surrounding dots; "" for none
	upstreams []netip.AddrPort
	timeout   time.Duration
	log       *slog.Logger

	// slots holds one token per query being served concurrently (see
	// maxInFlight); conns one per open TCP connection.
	slots chan struct{}
	conns chan struct{}

	addr   netip.AddrPort
	udp    *net.UDPConn
	tcp    *net.TCPListener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start listens on cfg.Addr over UDP and TCP and serves in goroutines until
// Close is called or ctx is done.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start dns server on %s: %w", cfg.Addr, err)
	}
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("start dns server: invalid listen address %q", cfg.Addr)
	}
	ups := cfg.Upstreams
	if ups == nil {
		path := cfg.ResolvConf
		if path == "" {
			path = defaultResolvConf
		}
		var err error
		if ups, err = readResolvConf(path); err != nil {
			return nil, fmt.Errorf("start dns server on %s: %w", cfg.Addr, err)
		}
	}

	udp, tcp, err := listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("start dns server: %w", err)
	}
	s := newServer(cfg, ups)
	s.udp, s.tcp = udp, tcp
	s.addr = netip.AddrPortFrom(cfg.Addr.Addr().Unmap(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
	s.upstreams = slices.DeleteFunc(s.upstreams, func(u netip.AddrPort) bool {
		if isSelf(u, s.addr) {
			s.log.Debug("dns: skipping upstream that is this server", "upstream", u)
			return true
		}
		return false
	})

	ctx, s.cancel = context.WithCancel(ctx)
	// Closing the sockets is what unblocks the accept and read loops.
	context.AfterFunc(ctx, s.shutdown)
	s.wg.Add(2)
	go s.serveUDP(ctx)
	go s.serveTCP(ctx)
	s.log.Debug("dns: serving", "addr", s.addr, "upstreams", s.upstreams, "domain", s.domain)
	return s, nil
}

// newServer returns a Server without sockets: enough to run serveMsg, which
// is how the fuzz test drives it.
func newServer(cfg Config, upstreams []netip.AddrPort) *Server {
	s := &Server{
		lookup:    cfg.Lookup,
		domain:    normalize(cfg.Domain),
		upstreams: slices.Clone(upstreams),
		timeout:   cfg.Timeout,
		log:       cfg.Logger,
		slots:     make(chan struct{}, maxInFlight),
		conns:     make(chan struct{}, maxConns),
	}
	for i, u := range s.upstreams {
		s.upstreams[i] = netip.AddrPortFrom(u.Addr().Unmap(), u.Port())
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// listen binds UDP and then TCP on the same port. When addr's port is 0 the
// kernel picks a port free for UDP, which TCP may not get; then it tries
// again with a fresh port.
func listen(addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	udpNet, tcpNet := "udp4", "tcp4"
	if addr.Addr().Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	for attempt := 1; ; attempt++ {
		udp, err := net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, nil, fmt.Errorf("listen on udp %s: %w", addr, err)
		}
		bound := netip.AddrPortFrom(addr.Addr(), uint16(udp.LocalAddr().(*net.UDPAddr).Port))
		tcp, err := net.ListenTCP(tcpNet, net.TCPAddrFromAddrPort(bound))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if addr.Port() != 0 || attempt == listenAttempts || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w", bound, err)
		}
	}
}

// isSelf reports whether forwarding to upstream would reach the server
// listening on self, which would loop until the query timed out.
func isSelf(upstream, self netip.AddrPort) bool {
	if upstream == self {
		return true
	}
	return upstream.Port() == self.Port() &&
		(upstream.Addr().IsUnspecified() || self.Addr().IsUnspecified())
}

// Addr returns the address the server listens on, with the port it actually
// got.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Close stops serving and waits until the server's goroutines have returned.
// In-flight forwards are abandoned. Close may be called more than once.
func (s *Server) Close() error {
	s.cancel()
	s.shutdown()
	s.wg.Wait()
	return s.closeErr
}

// shutdown closes the sockets once, from Close or when Start's context ends.
func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.udp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close dns udp %s: %w", s.addr, err))
		}
		if err := s.tcp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close dns tcp %s: %w", s.addr, err))
		}
		s.closeErr = errors.Join(errs...)
	})
}

// serveUDP reads queries until the socket is closed. Each query is served
// in its own goroutine while a slot is free, so a slow forward does not hold
// up the others; when all slots are taken the query is served inline without
// forwarding, which keeps container names resolving during a flood.
func (s *Server) serveUDP(ctx context.Context) {
	defer s.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: read udp", "addr", s.addr, "err", err)
			continue
		}
		select {
		case s.slots <- struct{}{}:
			req := slices.Clone(buf[:n])
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() { <-s.slots }()
				s.replyUDP(ctx, req, from, true)
			}()
		default:
			s.replyUDP(ctx, buf[:n], from, false)
		}
	}
}

func (s *Server) replyUDP(ctx context.Context, req []byte, to netip.AddrPort, mayForward bool) {
	resp := s.serveMsg(ctx, req, "udp", mayForward)
	if resp == nil {
		return
	}
	if _, err := s.udp.WriteToUDPAddrPort(resp, to); err != nil && ctx.Err() == nil {
		s.log.Debug("dns: write udp", "to", to, "err", err)
	}
}

// serveTCP accepts connections until the listener is closed.
func (s *Server) serveTCP(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.tcp.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: accept tcp", "addr", s.addr, "err", err)
			// Errors such as EMFILE repeat at once; back off rather than spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.log.Debug("dns: too many tcp connections", "from", c.RemoteAddr())
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.conns }()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn answers length-prefixed queries (RFC 1035 4.2.2) on one
// connection, one at a time, until the client goes quiet or sends something
// unanswerable.
func (s *Server) serveConn(ctx context.Context, c *net.TCPConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var hdr [2]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(tcpIdle)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		var resp []byte
		select {
		case s.slots <- struct{}{}:
			resp = s.serveMsg(ctx, req, "tcp", true)
			<-s.slots
		default:
			resp = s.serveMsg(ctx, req, "tcp", false)
		}
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		out = append(out, resp...)
		if err := c.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			s.log.Debug("dns: write tcp", "to", c.RemoteAddr(), "err", err)
			return
		}
	}
}
