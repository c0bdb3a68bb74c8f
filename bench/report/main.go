// Command report turns the result lines the bench scripts write (one JSON
// object per line, $BENCH_RESULTS) into the published benchmark page: a
// Markdown table per workload with medians, spreads and ratios, a PNG
// chart of the ratios, and the headline lines in the README.
//
//	go run ./bench/report -in results.jsonl -md docs/benchmarks.md \
//		-png docs/benchmarks.png -readme README.md
//
// A result line is {"workload", "tool", "unit", "better": "lower" or
// "higher", "samples": [...]}; a line {"meta": {...}} carries the date,
// the machine and the versions. Tools of a workload keep the order in
// which they were first recorded; "berth" is the one the others are
// compared with.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

type result struct {
	Workload string            `json:"workload"`
	Tool     string            `json:"tool"`
	Unit     string            `json:"unit"`
	Better   string            `json:"better"`
	Samples  []float64         `json:"samples"`
	Meta     map[string]string `json:"meta"`
}

// workload is one table: its tools in order.
type workload struct {
	name    string
	unit    string
	better  string
	tools   []string
	samples map[string][]float64
}

func main() {
	in := flag.String("in", "", "results file (JSON lines)")
	md := flag.String("md", "docs/benchmarks.md", "Markdown page to write")
	pngOut := flag.String("png", "docs/benchmarks.png", "chart to write")
	readme := flag.String("readme", "", "README whose headline section to rewrite")
	flag.Parse()
	if err := run(*in, *md, *pngOut, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, mdPath, pngPath, readme string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	meta, ws, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(ws) == 0 {
		return fmt.Errorf("%s: no results", in)
	}
	chartName := filepath.Base(pngPath)
	if err := os.WriteFile(mdPath, []byte(markdown(meta, ws, chartName)), 0o644); err != nil {
		return err
	}
	out, err := os.Create(pngPath)
	if err != nil {
		return err
	}
	if err := png.Encode(out, chart(ws)); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if readme != "" {
		// The link is relative to the README, wherever the page is.
		link, err := filepath.Rel(filepath.Dir(readme), mdPath)
		if err != nil {
			return err
		}
		return rewriteHeadline(readme, headline(ws, filepath.ToSlash(link)))
	}
	return nil
}

// parse reads result lines; a malformed line is an error naming it.
func parse(r io.Reader) (map[string]string, []*workload, error) {
	meta := map[string]string{}
	var ws []*workload
	byName := map[string]*workload{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if res.Meta != nil {
			for k, v := range res.Meta {
				meta[k] = v
			}
			continue
		}
		if res.Workload == "" || res.Tool == "" || len(res.Samples) == 0 || (res.Better != "lower" && res.Better != "higher") {
			return nil, nil, fmt.Errorf("line %d: a result needs a workload, a tool, samples and better (lower or higher)", n)
		}
		w := byName[res.Workload]
		if w == nil {
			w = &workload{name: res.Workload, unit: res.Unit, better: res.Better, samples: map[string][]float64{}}
			byName[res.Workload] = w
			ws = append(ws, w)
		}
		if _, ok := w.samples[res.Tool]; !ok {
			w.tools = append(w.tools, res.Tool)
		}
		w.samples[res.Tool] = append(w.samples[res.Tool], res.Samples...)
	}
	return meta, ws, sc.Err()
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is how many times better berth is than tool (>1: berth better).
func (w *workload) ratio(tool string) (float64, bool) {
	b, ok := w.samples["berth"]
	if !ok || tool == "berth" {
		return 0, false
	}
	bm, tm := median(b), median(w.samples[tool])
	if bm <= 0 || tm <= 0 {
		return 0, false
	}
	if w.better == "lower" {
		return tm / bm, true
	}
	return bm / tm, true
}

func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func markdown(meta map[string]string, ws []*workload, chartName string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `make bench` (bench/all.sh and bench/report); do not edit by hand.\n\n")
	for _, k := range []string{"date", "machine", "kernel", "versions"} {
		if v := meta[k]; v != "" {
			fmt.Fprintf(&b, "- **%s**: %s\n", k, v)
		}
	}
	b.WriteString(`
## Method

Every workload runs its tools alternately (A B C A B C ...) after a
warm-up, on this one machine, in one run; each row gives the median of
the samples, their spread (lowest and highest), and how many times better
berth is than that tool (for times and memory, the tool's median over
berth's; for throughput, berth's over the tool's). Machines are noisy:
compare ratios from one run, not absolute numbers across runs. All traffic
stays on 127.0.0.1; every daemon has private directories and sockets and
everything is removed at the end. The scripts in bench/ say exactly what
each workload runs.

`)
	fmt.Fprintf(&b, "![how many times better berth is, per workload and tool](%s)\n", chartName)
	for _, w := range ws {
		fmt.Fprintf(&b, "\n## %s\n\n", w.name)
		better := "lower is better"
		if w.better == "higher" {
			better = "higher is better"
		}
		fmt.Fprintf(&b, "| tool | median (%s, %s) | spread | n | berth is |\n|---|---|---|---|---|\n", w.unit, better)
		for _, t := range w.tools {
			s := w.samples[t]
			r := ""
			if x, ok := w.ratio(t); ok {
				r = fmt.Sprintf("%.2fx", x)
			}
			fmt.Fprintf(&b, "| %s | %s | %s-%s | %d | %s |\n", t, num(median(s)), num(slices.Min(s)), num(slices.Max(s)), len(s), r)
		}
	}
	return b.String()
}

// headline is one line per workload compared with rivals, for the README.
func headline(ws []*workload, mdPath string) string {
	var b strings.Builder
	b.WriteString("Each ratio is how many times better berth is than that tool (below 1x: the tool is ahead).\n\n")
	for _, w := range ws {
		var parts []string
		for _, t := range w.tools {
			if x, ok := w.ratio(t); ok {
				parts = append(parts, fmt.Sprintf("%s %.2fx", t, x))
			}
		}
		if len(parts) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- %s: berth %s %s; %s\n", w.name, num(median(w.samples["berth"])), w.unit, strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\nThe full table, method and machine: [%s](%s).\n", mdPath, mdPath)
	return b.String()
}

const (
	startMark = "<!-- bench:headline:start -->"
	endMark   = "<!-- bench:headline:end -->"
)

// rewriteHeadline replaces what lies between the README's two markers.
func rewriteHeadline(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, startMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return errors.New(path + ": no " + startMark + " ... " + endMark + " section")
	}
	s = s[:i+len(startMark)] + "\n" + text + s[j:]
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// chart draws one bar per workload and rival: how many times better berth
// is, on a log scale with 1x marked (bars right of it: berth is better).
func chart(ws []*workload) image.Image {
	type bar struct {
		label string
		x     float64
	}
	var bars []bar
	for _, w := range ws {
		for _, t := range w.tools {
			if x, ok := w.ratio(t); ok {
				bars = append(bars, bar{w.name + " | " + t, x})
			}
		}
	}
	const (
		rowH   = 18
		labelW = 560
		plotW  = 420
		top    = 30
	)
	lo, hi := 0.25, 16.0
	for _, b := range bars {
		lo, hi = math.Min(lo, b.x), math.Max(hi, b.x)
	}
	width, height := labelW+plotW+60, top+rowH*len(bars)+30
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	xpos := func(v float64) int {
		return labelW + int(float64(plotW)*(math.Log(v)-math.Log(lo))/(math.Log(hi)-math.Log(lo)))
	}
	text := func(x, y int, s string, c color.Color) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	text(10, 18, "how many times better berth is (log scale; right of 1x: berth better)", color.Black)
	grey := color.RGBA{200, 200, 200, 255}
	for _, v := range []float64{0.25, 0.5, 1, 2, 4, 8, 16, 32} {
		if v < lo || v > hi {
			continue
		}
		x := xpos(v)
		c := grey
		if v == 1 {
			c = color.RGBA{0, 0, 0, 255}
		}
		draw.Draw(img, image.Rect(x, top-4, x+1, height-24), image.NewUniform(c), image.Point{}, draw.Src)
		text(x-8, height-8, fmt.Sprintf("%gx", v), color.Black)
	}
	for i, b := range bars {
		y := top + i*rowH
		label := b.label
		if len(label) > labelW/7-2 {
			label = label[:labelW/7-5] + "..."
		}
		text(6, y+13, label, color.Black)
		x0, x1 := xpos(1), xpos(b.x)
		c := color.RGBA{46, 125, 50, 255} // berth better
		if x1 < x0 {
			x0, x1 = x1, x0
			c = color.RGBA{198, 40, 40, 255}
		}
		draw.Draw(img, image.Rect(x0, y+3, max(x1, x0+1), y+rowH-3), image.NewUniform(c), image.Point{}, draw.Src)
		text(xpos(math.Max(b.x, 1))+4, y+13, fmt.Sprintf("%.2fx", b.x), color.Black)
	}
	return img
}
