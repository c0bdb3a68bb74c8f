package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// statsOptions are docker stats' flags and arguments.
type statsOptions struct {
	all, noStream, noTrunc bool
	format                 string
	// containers are the ones named; none means every running container
	// (every container with all), followed as they come and go.
	containers []string
	// tty redraws the table in place; otherwise tables follow each other.
	tty bool
	// refresh separates redraws; default 500ms on a terminal (Docker's
	// CLI), otherwise 1s (the daemon's sampling interval, so that each
	// table has new numbers).
	refresh time.Duration
	// poll separates refreshes of the container list; default statsPoll.
	poll time.Duration
}

const (
	// statsStall is how long a row waits for a frame before it shows
	// "--", as in Docker's CLI.
	statsStall = 2 * time.Second
	// statsPoll is how often the list of containers is refreshed when no
	// containers were named.
	statsPoll = time.Second

	statsDefaultFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)

var statsHeaders = map[string]string{
	"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
	"MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

func newStats(g *globals) *cobra.Command {
	var o statsOptions
	c := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		Example: `  berth stats
  berth stats --no-stream web db
  berth stats -a --format 'table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}'
  berth stats --no-stream --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			out := cmd.OutOrStdout()
			if f, ok := out.(*os.File); ok && isTerminal(f) {
				o.tty = true
			}
			return runStats(cmd.Context(), g, out, o)
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table', 'table TEMPLATE' or 'json'")
	return c
}

// runStats shows the stats of o's containers until ctx ends (once with
// noStream). Named containers that do not exist are an error; without
// names, the set follows the daemon's list.
func runStats(ctx context.Context, g *globals, out io.Writer, o statsOptions) error {
	api, err := g.client(ctx)
	if err != nil {
		return err
	}
	// Ending stops every collector.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	set := &statsSet{api: api, stream: !o.noStream}
	follow := len(o.containers) == 0
	if follow {
		if err := set.sync(ctx, o.all); err != nil {
			return err
		}
	} else {
		for _, name := range o.containers {
			set.add(ctx, name)
		}
	}
	set.waitFirst(ctx)
	if ctx.Err() != nil {
		return nil // interrupted before there was anything to show
	}
	if !follow {
		if errs := set.errors(); len(errs) > 0 {
			return errors.New(strings.Join(errs, "\n"))
		}
	}

	refresh := o.refresh
	if refresh == 0 {
		refresh = time.Second
		if o.tty {
			refresh = 500 * time.Millisecond
		}
	}
	poll := o.poll
	if poll == 0 {
		poll = statsPoll
	}
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	synced := time.Now()
	for {
		var b bytes.Buffer
		if o.tty && !o.noStream {
			b.WriteString("\033[2J\033[H") // clear the screen, cursor home
		}
		if err := render(&b, o.format, statsDefaultFormat, statsHeaders, set.rows(!o.noTrunc)); err != nil {
			return err
		}
		// One write per table, so a terminal never shows half of one.
		if _, err := out.Write(b.Bytes()); err != nil {
			return err
		}
		if o.noStream {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if follow && time.Since(synced) >= poll {
			synced = time.Now()
			if err := set.sync(ctx, o.all); err != nil && ctx.Err() == nil {
				slog.Debug("stats: listing containers", "err", err)
			}
		}
	}
}

// statsSet is the rows of a stats display, in the order their containers
// were added; a collector goroutine feeds each row.
type statsSet struct {
	api    *client.Client
	stream bool

	// mu guards entries.
	mu      sync.Mutex
	entries []*statsEntry
}

// statsEntry is one container's row.
type statsEntry struct {
	// key is the container as the user named it, or its short ID.
	key    string
	cancel context.CancelFunc
	// first is closed at the first frame or error.
	first     chan struct{}
	firstOnce sync.Once

	// mu guards v and err.
	mu  sync.Mutex
	v   statsValues
	err error
}

// add starts collecting for a container unless it is in the set already.
func (s *statsSet) add(ctx context.Context, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.key == key {
			return
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &statsEntry{key: key, cancel: cancel, first: make(chan struct{})}
	s.entries = append(s.entries, e)
	go e.collect(ctx, s.api, s.stream)
}

// sync makes the set the daemon's running containers (all with all):
// Docker's CLI follows start and die events to the same end.
func (s *statsSet) sync(ctx context.Context, all bool) error {
	list, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: all})
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, c := range list.Items {
		keep[shortID(c.ID)] = true
		s.add(ctx, shortID(c.ID))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.entries[:0]
	for _, e := range s.entries {
		if keep[e.key] {
			kept = append(kept, e)
		} else {
			e.cancel()
		}
	}
	clear(s.entries[len(kept):])
	s.entries = kept
	return nil
}

// waitFirst waits until every row has had its first frame or error, so
// the first table shows numbers.
func (s *statsSet) waitFirst(ctx context.Context) {
	s.mu.Lock()
	entries := append([]*statsEntry(nil), s.entries...)
	s.mu.Unlock()
	for _, e := range entries {
		select {
		case <-e.first:
		case <-ctx.Done():
			return
		}
	}
}

// errors are the rows' errors, in order.
func (s *statsSet) errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []string
	for _, e := range s.entries {
		e.mu.Lock()
		if e.err != nil {
			errs = append(errs, strings.TrimPrefix(e.err.Error(), "Error response from daemon: "))
		}
		e.mu.Unlock()
	}
	return errs
}

// rows are the table's rows now, as templates see them.
func (s *statsSet) rows(trunc bool) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]any, 0, len(s.entries))
	for _, e := range s.entries {
		e.mu.Lock()
		rows = append(rows, statsRowOf(e.key, e.v, e.err != nil, trunc))
		e.mu.Unlock()
	}
	return rows
}

// collect reads the container's stats frames into e until ctx ends, the
// stream does, or (without stream) after one frame.
func (e *statsEntry) collect(ctx context.Context, api *client.Client, stream bool) {
	defer e.firstOnce.Do(func() { close(e.first) })
	res, err := api.ContainerStats(ctx, e.key, client.ContainerStatsOptions{Stream: stream, IncludePreviousSample: !stream})
	if err != nil {
		e.set(statsValues{}, err)
		return
	}
	defer res.Body.Close()
	stall := time.AfterFunc(statsStall, func() { e.set(statsValues{}, errors.New("timeout waiting for stats")) })
	defer stall.Stop()
	dec := json.NewDecoder(res.Body)
	for {
		var v container.StatsResponse
		if err := dec.Decode(&v); err != nil {
			if ctx.Err() == nil {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("%s: stats stream ended", e.key)
				}
				e.set(statsValues{}, err)
			}
			return
		}
		stall.Reset(statsStall)
		e.set(valuesOf(v), nil)
		if !stream {
			return
		}
	}
}

// set records a frame's values, or an error that blanks the row.
func (e *statsEntry) set(v statsValues, err error) {
	e.mu.Lock()
	if err == nil || e.err == nil {
		e.v, e.err = v, err
	}
	e.mu.Unlock()
	e.firstOnce.Do(func() { close(e.first) })
}

// statsValues are one row's numbers.
type statsValues struct {
	id, name                        string
	cpuPerc, mem, memLimit, memPerc float64
	netRx, netTx, blkRead, blkWrite float64
	pids                            uint64
}

// valuesOf computes a row from a frame as Docker's CLI does.
func valuesOf(v container.StatsResponse) statsValues {
	mem := memUsage(v.MemoryStats)
	limit := float64(v.MemoryStats.Limit)
	memPerc := 0.0
	if limit != 0 { // zero for a container that is not running
		memPerc = mem / limit * 100
	}
	rd, wr := blockIO(v.BlkioStats)
	rx, tx := netIO(v.Networks)
	return statsValues{
		id: v.ID, name: v.Name,
		cpuPerc: cpuPercent(v.PreCPUStats, v.CPUStats),
		mem:     mem, memLimit: limit, memPerc: memPerc,
		netRx: rx, netTx: tx, blkRead: float64(rd), blkWrite: float64(wr),
		pids: v.PidsStats.Current,
	}
}

// cpuPercent is the container's share of the host's CPU time between two
// samples, scaled so that one busy CPU is 100%.
func cpuPercent(prev, cur container.CPUStats) float64 {
	cpuDelta := float64(cur.CPUUsage.TotalUsage) - float64(prev.CPUUsage.TotalUsage)
	systemDelta := float64(cur.SystemUsage) - float64(prev.SystemUsage)
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(cur.CPUUsage.PercpuUsage))
	}
	if systemDelta > 0 && cpuDelta > 0 {
		return cpuDelta / systemDelta * cpus * 100
	}
	return 0
}

// memUsage is memory use without the page cache that could be dropped:
// usage less inactive file pages (total_inactive_file on cgroup v1,
// inactive_file on v2), as Docker's CLI shows it.
func memUsage(m container.MemoryStats) float64 {
	if v, ok := m.Stats["total_inactive_file"]; ok && v < m.Usage {
		return float64(m.Usage - v)
	}
	if v := m.Stats["inactive_file"]; v < m.Usage {
		return float64(m.Usage - v)
	}
	return float64(m.Usage)
}

// blockIO sums bytes read and written over devices; v1 names ops "Read",
// v2 "read".
func blockIO(b container.BlkioStats) (read, write uint64) {
	for _, e := range b.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			read += e.Value
		case "write":
			write += e.Value
		}
	}
	return read, write
}

// netIO sums bytes received and sent over interfaces.
func netIO(n map[string]container.NetworkStats) (rx, tx float64) {
	for _, v := range n {
		rx += float64(v.RxBytes)
		tx += float64(v.TxBytes)
	}
	return rx, tx
}

// statsRow is one row of stats, with Docker's --format field names (in
// the order of Docker's JSON output).
type statsRow struct {
	BlockIO, CPUPerc, Container, ID, MemPerc, MemUsage, Name, NetIO, PIDs string
}

// statsRowOf formats a row as Docker's CLI does; a row in error shows
// "--".
func statsRowOf(key string, v statsValues, invalid, trunc bool) statsRow {
	r := statsRow{Container: key, ID: v.id, Name: "--"}
	if trunc {
		r.ID = shortID(v.id)
	}
	if len(v.name) > 1 {
		r.Name = v.name[1:]
	}
	if invalid {
		r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs = "--", "-- / --", "--", "--", "--", "--"
		return r
	}
	r.CPUPerc = fmt.Sprintf("%.2f%%", v.cpuPerc)
	r.MemUsage = units.BytesSize(v.mem) + " / " + units.BytesSize(v.memLimit)
	r.MemPerc = fmt.Sprintf("%.2f%%", v.memPerc)
	r.NetIO = units.HumanSizeWithPrecision(v.netRx, 3) + " / " + units.HumanSizeWithPrecision(v.netTx, 3)
	r.BlockIO = units.HumanSizeWithPrecision(v.blkRead, 3) + " / " + units.HumanSizeWithPrecision(v.blkWrite, 3)
	r.PIDs = strconv.FormatUint(v.pids, 10)
	return r
}
