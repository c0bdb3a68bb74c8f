package build

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sync/errgroup"
)

// stageRun is a stage being built: done is closed once st (or err) is set.
type stageRun struct {
	done chan struct{}
	st   *stage
	err  error
}

// stageResult is a finished stage's state; a stage only asks for stages
// it depends on, which are finished before it starts.
func (r *run) stageResult(i int) *stage {
	sr := r.built[i]
	if sr == nil {
		return nil
	}
	<-sr.done
	return sr.st
}

// deps are the earlier stages stage i reads: its FROM and COPY --from.
func (r *run) deps(i int) []int {
	var out []int
	s := r.stages[i]
	if base, err := r.expandMeta(s.BaseName); err == nil {
		if j := r.stageIndex(base, i); j >= 0 {
			out = append(out, j)
		}
	}
	for _, c := range s.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
			if j := r.stageIndex(cp.From, i); j >= 0 {
				out = append(out, j)
			}
		}
	}
	return out
}

// buildStages builds the needed stages, each as soon as the stages it
// reads are done, so independent stages build in parallel. Their text is
// shown in stage order: the first unfinished stage's live, the others'
// held until it is their turn. It returns the last stage.
func (r *run) buildStages(ctx context.Context, need []int) (*stage, error) {
	mux := newOrdered(r.out, need)
	first := map[int]int{}
	n := 1
	for _, i := range need {
		first[i] = n
		n += 1 + len(r.stages[i].Commands)
		r.built[i] = &stageRun{done: make(chan struct{})}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, i := range need {
		sr := r.built[i]
		deps := r.deps(i)
		g.Go(func() error {
			defer close(sr.done)
			defer mux.finish(i)
			for _, j := range deps {
				select {
				case <-r.built[j].done:
					if r.built[j].err != nil {
						sr.err = r.built[j].err
						return nil // reported by the stage that failed
					}
				case <-gctx.Done():
					sr.err = gctx.Err()
					return nil
				}
			}
			sr.st, sr.err = r.buildStage(gctx, i, first[i], mux.writer(i))
			return sr.err
		})
	}
	err := g.Wait()
	mux.flushAll()
	if err != nil {
		return nil, err
	}
	return r.built[need[len(need)-1]].st, nil
}

// ordered shows several writers' text in a fixed order: the current
// one's as it comes, the later ones' once the earlier have finished.
type ordered struct {
	mu    sync.Mutex
	out   io.Writer
	order []int
	cur   int
	bufs  map[int]*bytes.Buffer
	done  map[int]bool
}

func newOrdered(out io.Writer, order []int) *ordered {
	o := &ordered{out: out, order: order, bufs: map[int]*bytes.Buffer{}, done: map[int]bool{}}
	for _, i := range order {
		o.bufs[i] = &bytes.Buffer{}
	}
	return o
}

type orderedWriter struct {
	o *ordered
	i int
}

func (o *ordered) writer(i int) io.Writer { return orderedWriter{o, i} }

func (w orderedWriter) Write(p []byte) (int, error) {
	o := w.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur < len(o.order) && o.order[o.cur] == w.i {
		return o.out.Write(p)
	}
	return o.bufs[w.i].Write(p)
}

// finish marks a stage done and moves the turn on, showing what the next
// stages held.
func (o *ordered) finish(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[i] = true
	for o.cur < len(o.order) && o.done[o.order[o.cur]] {
		o.cur++
		if o.cur < len(o.order) {
			next := o.order[o.cur]
			o.out.Write(o.bufs[next].Bytes())
			o.bufs[next].Reset()
		}
	}
}

// flushAll shows whatever is still held (after a failure).
func (o *ordered) flushAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, i := range o.order[min(o.cur, len(o.order)):] {
		if b := o.bufs[i]; b.Len() > 0 {
			o.out.Write(b.Bytes())
			b.Reset()
		}
	}
}
