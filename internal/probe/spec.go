// Package probe holds berth's Kubernetes-style probe specifications: what
// a liveness, readiness or startup probe checks and how often. It parses
// the compact form the CLI flags and the container labels carry:
//
//	http=PORT[/PATH]            an HTTP GET on 127.0.0.1 in the container's
//	                            network namespace; 2xx and 3xx pass
//	tcp=PORT                    a TCP connect to 127.0.0.1:PORT there
//	cmd=COMMAND                 a command run in the container by /bin/sh -c;
//	                            exit 0 passes. It must come last: it takes
//	                            the rest of the text, commas included
//	interval=DURATION           time between probes          (default 10s)
//	timeout=DURATION            one probe's limit             (default 1s)
//	delay=DURATION              wait before the first probe   (default 0s)
//	retries=N                   failures in a row that fail   (default 3)
//	successes=N                 passes in a row that pass     (default 1)
//
// The parts are separated by commas, e.g.
// "http=8080/healthz,interval=5s,retries=2". The defaults are Kubernetes'
// (periodSeconds 10, timeoutSeconds 1, failureThreshold 3,
// successThreshold 1).
package probe

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kinds of probe.
const (
	KindExec = "exec"
	KindHTTP = "http"
	KindTCP  = "tcp"
)

// Kubernetes' defaults.
const (
	DefaultInterval  = 10 * time.Second
	DefaultTimeout   = time.Second
	DefaultRetries   = 3
	DefaultSuccesses = 1
)

// Spec is one probe.
type Spec struct {
	Kind string
	// Cmd is the exec probe's argv.
	Cmd []string
	// Port and Path are the HTTP and TCP probes' target.
	Port uint16
	Path string

	Interval, Timeout, Delay time.Duration
	Retries, Successes       int
}

// Parse reads a probe spec. Errors name the part that is wrong.
func Parse(s string) (*Spec, error) {
	p := &Spec{Interval: DefaultInterval, Timeout: DefaultTimeout, Retries: DefaultRetries, Successes: DefaultSuccesses}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("empty probe: want http=PORT[/PATH], tcp=PORT or cmd=COMMAND, with options such as interval=5s")
	}
	for rest != "" {
		var part string
		rest = strings.TrimLeft(rest, " \t")
		if strings.HasPrefix(rest, "cmd=") {
			part, rest = rest, ""
		} else {
			part, rest, _ = strings.Cut(rest, ",")
		}
		key, val, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return nil, fmt.Errorf("probe part %q: want key=value", part)
		}
		if key != "cmd" {
			val = strings.TrimSpace(val)
		}
		if err := p.set(key, val); err != nil {
			return nil, fmt.Errorf("probe part %q: %w", part, err)
		}
	}
	if p.Kind == "" {
		return nil, fmt.Errorf("probe %q: no check; want http=PORT[/PATH], tcp=PORT or cmd=COMMAND", s)
	}
	return p, nil
}

func (p *Spec) set(key, val string) error {
	target := func(kind string) error {
		if p.Kind != "" {
			return fmt.Errorf("a probe has one check, and it already has %s", p.Kind)
		}
		p.Kind = kind
		return nil
	}
	switch key {
	case "http":
		if err := target(KindHTTP); err != nil {
			return err
		}
		port, path, _ := strings.Cut(val, "/")
		n, err := parsePort(port)
		if err != nil {
			return err
		}
		if strings.ContainsAny(path, " \t\r\n#") {
			return fmt.Errorf("the path may not hold spaces or '#'")
		}
		if _, err := url.ParseRequestURI("/" + path); err != nil {
			return fmt.Errorf("path %q: not a valid URL path", "/"+path)
		}
		p.Port, p.Path = n, "/"+path
	case "tcp":
		if err := target(KindTCP); err != nil {
			return err
		}
		n, err := parsePort(val)
		if err != nil {
			return err
		}
		p.Port = n
	case "cmd":
		if err := target(KindExec); err != nil {
			return err
		}
		if strings.TrimSpace(val) == "" {
			return fmt.Errorf("empty command")
		}
		p.Cmd = []string{"/bin/sh", "-c", val}
	case "interval", "timeout", "delay":
		d, err := time.ParseDuration(val)
		switch {
		case err != nil:
			return fmt.Errorf("want a duration such as 500ms or 10s")
		case d < 0:
			return fmt.Errorf("cannot be negative")
		case key != "delay" && d < time.Millisecond:
			return fmt.Errorf("must be at least 1ms")
		}
		switch key {
		case "interval":
			p.Interval = d
		case "timeout":
			p.Timeout = d
		default:
			p.Delay = d
		}
	case "retries", "successes":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("want a whole number from 1 to 1000")
		}
		if key == "retries" {
			p.Retries = n
		} else {
			p.Successes = n
		}
	default:
		return fmt.Errorf("unknown key %q (want http, tcp, cmd, interval, timeout, delay, retries or successes)", key)
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return uint16(n), nil
}
