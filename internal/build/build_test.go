package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The .dockerignore examples of Docker's documentation, and the rules
// around them (exceptions, leading slashes, comments, directories).
func TestDockerignore(t *testing.T) {
	for _, tc := range []struct {
		patterns string
		ignored  []string
		kept     []string
	}{
		{"*/temp*", []string{"somedir/temporary.txt", "somedir/temp", "somedir/temp/inner.txt"}, []string{"temp", "temporary.txt", "a/b/temp"}},
		{"*/*/temp*", []string{"somedir/subdir/temporary.txt"}, []string{"somedir/temporary.txt"}},
		{"temp?", []string{"tempa", "tempb"}, []string{"temp", "tempab", "dir/tempa"}},
		{"**/*.go", []string{"main.go", "cmd/x/main.go"}, []string{"main.go.txt", "go"}},
		{"*.md\n!README.md", []string{"CHANGES.md"}, []string{"README.md"}},
		{"*.md\n!README*.md\nREADME-secret.md", []string{"README-secret.md", "a.md"}, []string{"README-public.md"}},
		{"/foo\n./bar", []string{"foo", "bar", "foo/x"}, []string{"baz", "x/foo"}},
		{"# a comment\ndocs\n", []string{"docs", "docs/a.txt", "docs/sub/b.txt"}, []string{"# a comment", "documentation"}},
		{"build/\n!build/keep", []string{"build/out.o"}, []string{"build/keep"}},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(tc.patterns), 0o644)
		r := &run{o: Options{ContextDir: dir}}
		if err := r.readIgnore(); err != nil {
			t.Fatalf("%q: %v", tc.patterns, err)
		}
		for _, p := range tc.ignored {
			if !r.ignored(p) {
				t.Errorf("patterns %q: %s is kept, want ignored", tc.patterns, p)
			}
		}
		for _, p := range tc.kept {
			if r.ignored(p) {
				t.Errorf("patterns %q: %s is ignored, want kept", tc.patterns, p)
			}
		}
	}
}

func TestContextPath(t *testing.T) {
	for in, want := range map[string]string{"a/b": "a/b", "./a": "a", "/a/../b": "b", "a/../../b": "ERR", "..": "ERR", "../x": "ERR", ".": "", "a//b/": "a/b"} {
		got, err := contextPath(in)
		if want == "ERR" {
			if err == nil || !strings.Contains(err.Error(), "outside the build context") {
				t.Errorf("contextPath(%q) = %q, %v; want an error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("contextPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// plan is the builder's reading of a Dockerfile: the stages a target
// needs, through FROM and COPY --from, and the ARGs before FROM.
func TestPlan(t *testing.T) {
	src := `ARG BASE=busybox
FROM ${BASE} AS deps
RUN true
FROM busybox AS unused
RUN false
FROM deps AS build
RUN true
FROM busybox AS other
FROM scratch
COPY --from=build /x /x
COPY --from=other /y /y
`
	for target, want := range map[string]string{"": "[0 2 3 4]", "build": "[0 2]", "unused": "[1]", "deps": "[0]"} {
		r := &run{o: Options{Target: target}, meta: map[string]string{}, used: map[string]bool{}}
		need, err := r.plan("Dockerfile", src)
		if err != nil {
			t.Fatalf("target %q: %v", target, err)
		}
		if got := fmt.Sprint(need); got != want {
			t.Errorf("target %q: stages %s, want %s", target, got, want)
		}
		if r.meta["BASE"] != "busybox" || r.meta["BUILDPLATFORM"] == "" || r.meta["TARGETARCH"] == "" {
			t.Errorf("meta ARG: %v", r.meta)
		}
	}
	for _, tc := range []struct{ src, target, want string }{
		{"RUN true\n", "", "no build stage"},
		{"FROM busybox\nBOGUS x\n", "", "unknown instruction"},
		{"FROM busybox AS a\n", "b", `target stage "b"`},
		{"FROM busybox\nCOPY --from=\n", "", "line 2"},
		{"FROM ${NOPE:?required}\n", "", "required"},
	} {
		r := &run{o: Options{Target: tc.target}, meta: map[string]string{}, used: map[string]bool{}}
		if _, err := r.plan("Dockerfile", tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan(%q) = %v, want an error with %q", tc.src, err, tc.want)
		}
	}
}

func FuzzDockerfile(f *testing.F) {
	for _, s := range []string{
		"FROM busybox\nRUN echo hi\n",
		"ARG X=1\nFROM a:${X} AS b\nCOPY --from=b /x /y\nFROM b\n",
		"FROM scratch\nCOPY . /\nENV A=b C=d\nLABEL x=y\nHEALTHCHECK CMD true\n",
		"FROM x\nONBUILD RUN true\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo\n",
		"# syntax=docker/dockerfile:1\nFROM a\nRUN <<EOF\necho\nEOF\n",
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, src, target string) {
		r := &run{o: Options{Target: target}, meta: map[string]string{}, used: map[string]bool{}}
		need, err := r.plan("Dockerfile", src)
		if err != nil {
			return
		}
		if len(need) == 0 {
			t.Fatalf("a plan with no stages for %q", src)
		}
		last := -1
		for _, i := range need {
			if i <= last || i >= len(r.stages) {
				t.Fatalf("plan %v out of order or range for %q", need, src)
			}
			last = i
		}
	})
}

func FuzzDockerignore(f *testing.F) {
	f.Add("*.go\n!main.go\n", "cmd/main.go")
	f.Add("**/temp*\n/a\n# x\n", "a/b/temp")
	f.Add("[", "x")
	f.Add("!", "")
	f.Fuzz(func(t *testing.T, patterns, p string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(patterns), 0o644)
		r := &run{o: Options{ContextDir: dir}}
		if err := r.readIgnore(); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		rel, err := contextPath(p)
		if err != nil {
			return
		}
		if strings.HasPrefix(rel, "../") || rel == ".." || strings.HasPrefix(rel, "/") {
			t.Fatalf("contextPath(%q) = %q escapes", p, rel)
		}
		r.ignored(rel)
	})
}

// A stage waiting for its turn holds its output bounded: the head, a note
// of what was dropped, and the tail where a failure shows.
func TestHeldOutputBounded(t *testing.T) {
	var out strings.Builder
	o := newOrdered(&out, []int{0, 1})
	w := o.writer(1)
	w.Write([]byte("start\n"))
	chunk := strings.Repeat("x", 4096)
	for range heldMax/4096 + 100 {
		w.Write([]byte(chunk))
	}
	w.Write([]byte("\nthe failing end\n"))
	if out.Len() != 0 {
		t.Fatalf("stage 1 wrote before its turn")
	}
	o.finish(0)
	got := out.String()
	if !strings.HasPrefix(got, "start\n") || !strings.HasSuffix(got, "the failing end\n") || !strings.Contains(got, "were dropped") {
		t.Errorf("held output: %d bytes, head %q, tail %q", len(got), got[:10], got[len(got)-20:])
	}
	if len(got) > heldMax+tailMax+200 {
		t.Errorf("held %d bytes, more than the bound %d", len(got), heldMax+tailMax)
	}
}
