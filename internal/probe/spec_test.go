package probe

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		{"http=8080/healthz", Spec{Kind: KindHTTP, Port: 8080, Path: "/healthz", Interval: DefaultInterval, Timeout: DefaultTimeout, Retries: 3, Successes: 1}},
		{"http=80", Spec{Kind: KindHTTP, Port: 80, Path: "/", Interval: DefaultInterval, Timeout: DefaultTimeout, Retries: 3, Successes: 1}},
		{" interval=500ms, timeout=2s ,retries=5,successes=2,delay=1s,tcp=5432", Spec{Kind: KindTCP, Port: 5432, Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, Delay: time.Second, Retries: 5, Successes: 2}},
		{"retries=2, cmd=check --x,timeout=5s", Spec{Kind: KindExec, Cmd: []string{"/bin/sh", "-c", "check --x,timeout=5s"}, Interval: DefaultInterval, Timeout: DefaultTimeout, Retries: 2, Successes: 1}},
		{"interval=1s,cmd=test -f /ready, || exit 1", Spec{Kind: KindExec, Cmd: []string{"/bin/sh", "-c", "test -f /ready, || exit 1"}, Interval: time.Second, Timeout: DefaultTimeout, Retries: 3, Successes: 1}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got.Kind != tc.want.Kind || got.Port != tc.want.Port || got.Path != tc.want.Path || strings.Join(got.Cmd, "|") != strings.Join(tc.want.Cmd, "|") ||
			got.Interval != tc.want.Interval || got.Timeout != tc.want.Timeout || got.Delay != tc.want.Delay || got.Retries != tc.want.Retries || got.Successes != tc.want.Successes {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty probe"},
		{"interval=5s", "no check"},
		{"http=0", `port "0"`},
		{"http=70000/x", `port "70000"`},
		{"tcp=ab", `port "ab"`},
		{"http=80,tcp=81", "already has http"},
		{"interval=-1s,tcp=1", "cannot be negative"},
		{"interval=5,tcp=1", "want a duration"},
		{"timeout=0s,tcp=1", "at least 1ms"},
		{"retries=0,tcp=1", "from 1 to 1000"},
		{"successes=x,tcp=1", "from 1 to 1000"},
		{"port=1", `unknown key "port"`},
		{"tcp", "want key=value"},
		{"cmd=  ", "empty command"},
		{"http=80/a b", "spaces"},
		{"http=80/%zz", "not a valid URL path"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error spans lines: %q", tc.in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"http=8080/healthz", "tcp=1,interval=1s", "retries=2,cmd=a,b", "", "=,", "delay=1h,successes=3,http=1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("multi-line error for %q: %v", s, err)
			}
			return
		}
		switch p.Kind {
		case KindHTTP, KindTCP:
			if p.Port == 0 {
				t.Fatalf("%q: port 0 accepted", s)
			}
		case KindExec:
			if len(p.Cmd) != 3 {
				t.Fatalf("%q: cmd %q", s, p.Cmd)
			}
		default:
			t.Fatalf("%q: kind %q", s, p.Kind)
		}
		if p.Interval < time.Millisecond || p.Timeout < time.Millisecond || p.Delay < 0 || p.Retries < 1 || p.Successes < 1 {
			t.Fatalf("%q: out of range %+v", s, p)
		}
	})
}
