package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// eventsOptions are the flags of `berth events`.
type eventsOptions struct {
	since, until string
	filters      []string
	format       string
}

// newEvents is `berth events`, also `berth system events`.
func newEvents(g *globals) *cobra.Command {
	var o eventsOptions
	c := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Long: `Print the daemon's events (containers, images, volumes, networks) as they
happen, until interrupted. With --since, recorded events come first: the
daemon keeps the most recent ones (10000 by default), across restarts. With
--until, the command ends when that time passes (at once, for a time in the
past).

--since and --until take Unix timestamps, RFC 3339 dates and times, or
durations before now (10m, 1h30m). Filters (--filter key=value, repeatable;
values of one key are ORed, keys ANDed, and every label must match):
container, image, event, type, label, volume, network, daemon, scope.`,
		Example: `  berth events
  berth events --since 1h --until 0s
  berth events --filter type=container --filter event=start --filter event=die
  berth events --filter container=web --format '{{.Action}} {{.Actor.Attributes.name}}'
  berth events --format '{{json .}}'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvents(cmd.Context(), g, cmd.OutOrStdout(), o)
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&o.filters, "filter", "f", nil, `Filter output based on conditions provided (e.g. "type=container")`)
	f.StringVar(&o.format, "format", "", "Format output using a Go template, or 'json'")
	f.StringVar(&o.since, "since", "", "Show all events created since timestamp")
	f.StringVar(&o.until, "until", "", "Stream events until this timestamp")
	return c
}

// runEvents prints events until the stream ends (--until passed, or the
// daemon stopped) or ctx is cancelled (interrupted), which is not an
// error.
func runEvents(ctx context.Context, g *globals, out io.Writer, o eventsOptions) error {
	tmpl, err := eventTemplate(o.format)
	if err != nil {
		return err
	}
	// The daemon checks the keys: it knows which it serves.
	flt, err := parseFilters(o.filters, nil)
	if err != nil {
		return usageError{err}
	}
	c, err := g.client(ctx)
	if err != nil {
		return err
	}
	res := c.Events(ctx, client.EventsListOptions{Since: o.since, Until: o.until, Filters: flt})
	for {
		select {
		case m := <-res.Messages:
			if err := printEvent(out, m, tmpl, time.Local); err != nil {
				return err
			}
		case err := <-res.Err:
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
}

// eventTemplate parses --format as the docker CLI does: "" is the default
// line, "json" is {{json .}}. A template that fails on an empty event is
// refused before anything is printed, with Docker's exit status 64.
func eventTemplate(format string) (*template.Template, error) {
	switch format {
	case "":
		return nil, nil
	case "json":
		format = "{{json .}}"
	}
	tmpl, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err == nil {
		err = tmpl.Execute(io.Discard, events.Message{})
	}
	if err != nil {
		return nil, statusError{code: 64, msg: "error parsing format: " + err.Error()}
	}
	return tmpl, nil
}

// rfc3339NanoFixed is RFC 3339 with all nine digits of the nanoseconds,
// so that the columns of docker's event lines line up.
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// printEvent prints one event: through tmpl, or as docker's line
//
//	2026-11-22T07:30:00.123456789Z container start 0123abcd (image=busybox, name=web)
//
// with the time in loc and the attributes sorted by key.
func printEvent(w io.Writer, m events.Message, tmpl *template.Template, loc *time.Location) error {
	var b strings.Builder
	if tmpl != nil {
		if err := tmpl.Execute(&b, m); err != nil {
			return fmt.Errorf("--format: %v", err)
		}
	} else {
		switch {
		case m.TimeNano != 0:
			b.WriteString(time.Unix(0, m.TimeNano).In(loc).Format(rfc3339NanoFixed) + " ")
		case m.Time != 0:
			b.WriteString(time.Unix(m.Time, 0).In(loc).Format(rfc3339NanoFixed) + " ")
		}
		fmt.Fprintf(&b, "%s %s %s", m.Type, m.Action, m.Actor.ID)
		if len(m.Actor.Attributes) > 0 {
			keys := slices.Sorted(maps.Keys(m.Actor.Attributes))
			attrs := make([]string, 0, len(keys))
			for _, k := range keys {
				attrs = append(attrs, k+"="+m.Actor.Attributes[k])
			}
			b.WriteString(" (" + strings.Join(attrs, ", ") + ")")
		}
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
