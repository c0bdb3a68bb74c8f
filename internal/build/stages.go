package build

import (
	"bytes"
	"context"
	"fmt"
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
	bufs  map[int]*held
	done  map[int]bool
}

// heldMax bounds what one waiting stage's output may hold in memory: its
// head up to heldMax, then its last tailMax bytes (where a failure shows).
const heldMax = 1 << 20

// held is a waiting stage's output.
type held struct {
	head    bytes.Buffer
	tail    tailWriter
	dropped int64
}

func (h *held) Write(p []byte) (int, error) {
	if room := heldMax - h.head.Len(); room > 0 && h.dropped == 0 {
		if len(p) <= room {
			return h.head.Write(p)
		}
		h.head.Write(p[:room])
		h.tail.Write(p[room:])
		h.dropped += int64(len(p) - room)
		return len(p), nil
	}
	h.tail.Write(p)
	h.dropped += int64(len(p))
	return len(p), nil
}

// flush writes what is held to w and empties it.
func (h *held) flush(w io.Writer) {
	w.Write(h.head.Bytes())
	if h.dropped > 0 {
		kept := int64(len(h.tail.buf))
		if h.dropped > kept {
			fmt.Fprintf(w, "\n[... %d bytes of output, held while an earlier stage built, were dropped ...]\n", h.dropped-kept)
		}
		w.Write(h.tail.buf)
	}
	h.head.Reset()
	h.tail.buf = nil
	h.dropped = 0
}

func newOrdered(out io.Writer, order []int) *ordered {
	o := &ordered{out: out, order: order, bufs: map[int]*held{}, done: map[int]bool{}}
	for _, i := range order {
		o.bufs[i] = &held{tail: tailWriter{w: io.Discard}}
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
			o.bufs[o.order[o.cur]].flush(o.out)
		}
	}
}

// flushAll shows whatever is still held (after a failure).
func (o *ordered) flushAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, i := range o.order[min(o.cur, len(o.order)):] {
		o.bufs[i].flush(o.out)
	}
}
