package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `{"meta": {"date": "2026-11-22", "machine": "test box"}}
{"workload": "run --rm busybox true", "tool": "berth", "unit": "ms", "better": "lower", "samples": [100, 90, 110]}
{"workload": "run --rm busybox true", "tool": "docker", "unit": "ms", "better": "lower", "samples": [300, 330, 360]}
{"workload": "pull", "tool": "berth", "unit": "MB/s", "better": "higher", "samples": [200]}
{"workload": "pull", "tool": "skopeo", "unit": "MB/s", "better": "higher", "samples": [400]}
{"workload": "run on the bridge", "tool": "berth", "unit": "ms", "better": "lower", "samples": [104]}
`

// The page, the chart and the README section come from the results: the
// medians, spreads and ratios are computed, not copied.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.jsonl")
	os.WriteFile(in, []byte(sample), 0o644)
	readme := filepath.Join(dir, "README.md")
	os.WriteFile(readme, []byte("intro\n"+startMark+"\nold text\n"+endMark+"\nrest\n"), 0o644)
	md, pngPath := filepath.Join(dir, "b.md"), filepath.Join(dir, "b.png")
	if err := run(in, md, pngPath, readme); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(md)
	for _, want := range []string{
		"- **date**: 2026-11-22",
		"| berth | 100 | 90.0-110 | 3 |  |",
		"| docker | 330 | 300-360 | 3 | 3.30x |",
		"| skopeo | 400 | 400-400 | 1 | 0.50x |",
		"(b.png)",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	r, _ := os.ReadFile(readme)
	if strings.Contains(string(r), "old text") || !strings.Contains(string(r), "- run --rm busybox true: berth 100 ms; docker 3.30x\n") || !strings.HasSuffix(string(r), endMark+"\nrest\n") {
		t.Errorf("README section:\n%s", r)
	}
	if !strings.Contains(string(r), "[b.md](b.md)") {
		t.Errorf("README link not relative:\n%s", r)
	}
	if strings.Contains(string(r), "run on the bridge") {
		t.Errorf("a workload with no rival made the headline:\n%s", r)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// One row per rival: docker and skopeo.
	if h := img.Bounds().Dy(); h != 30+2*18+30 {
		t.Errorf("chart height %d, want two bars", h)
	}
}

// A malformed line or a result missing its fields is refused with its line.
func TestReportBadInput(t *testing.T) {
	for _, in := range []string{
		"{\"workload\": \"x\", \"tool\": \"berth\", \"better\": \"lower\", \"samples\": [1]}\n{not json\n",
		"{\"workload\": \"x\", \"tool\": \"berth\", \"better\": \"sideways\", \"samples\": [1]}\n",
		"{\"workload\": \"x\", \"tool\": \"berth\", \"better\": \"lower\", \"samples\": []}\n",
	} {
		_, _, err := parse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("parse(%q) = %v, want an error naming the line", in, err)
		}
	}
	if err := run(filepath.Join(t.TempDir(), "missing"), "a.md", "a.png", ""); err == nil {
		t.Error("a missing results file was accepted")
	}
}
