// Command regload is the registry benchmark's load generator: it drives
// one registry (berth's or CNCF Distribution) on 127.0.0.1 the way clients
// do, and prints one JSON line of results.
//
//	regload -url http://127.0.0.1:5000 -mode upload   -clients 32 -size 1048576 -n 8
//	regload -url ...                    -mode download -clients 32 -size 1048576 -n 8
//	regload -url ...                    -mode manifest -clients 64 -n 200
//
// upload: each client pushes n blobs of its own (POST, one streamed PATCH,
// PUT with the digest), as docker and containerd do. download: the blobs
// are pushed first, then each client GETs n of them. manifest: one image
// is pushed, then each client GETs its manifest n times; latencies are
// reported as p50 and p99.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

type result struct {
	Mode     string  `json:"mode"`
	Clients  int     `json:"clients"`
	Size     int64   `json:"size"`
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	MBps     float64 `json:"mb_per_s,omitempty"`
	P50ms    float64 `json:"p50_ms,omitempty"`
	P99ms    float64 `json:"p99_ms,omitempty"`
	Errors   int     `json:"errors"`
}

func main() {
	base := flag.String("url", "", "registry base URL")
	mode := flag.String("mode", "upload", "upload, download or manifest")
	clients := flag.Int("clients", 1, "concurrent clients")
	size := flag.Int64("size", 1<<20, "blob size in bytes")
	n := flag.Int("n", 4, "operations per client")
	repo := flag.String("repo", fmt.Sprintf("bench/r%d", time.Now().UnixNano()), "repository")
	flag.Parse()
	if *base == "" {
		fmt.Fprintln(os.Stderr, "regload: -url is required")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	l := &load{c: c, base: *base, repo: *repo}
	var res result
	var err error
	switch *mode {
	case "upload":
		res, err = l.upload(*clients, *size, *n)
	case "download":
		res, err = l.download(*clients, *size, *n)
	case "manifest":
		res, err = l.manifest(*clients, *n)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "regload:", err)
		os.Exit(1)
	}
	res.Mode, res.Clients = *mode, *clients
	json.NewEncoder(os.Stdout).Encode(res)
}

type load struct {
	c          *http.Client
	base, repo string
}

// blob is deterministic pseudo-random content: fast to make, never the
// same for two (client, index) pairs, so nothing deduplicates.
func blob(seed uint64, size int64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1}))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func (l *load) push(b []byte) error {
	res, err := l.c.Post(l.base+"/v2/"+l.repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		return fmt.Errorf("POST upload: %s", res.Status)
	}
	loc := res.Header.Get("Location")
	if loc[0] == '/' {
		loc = l.base + loc
	}
	req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err = l.c.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		return fmt.Errorf("PATCH: %s", res.Status)
	}
	loc = res.Header.Get("Location")
	if loc[0] == '/' {
		loc = l.base + loc
	}
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	req, _ = http.NewRequest("PUT", loc+sep+"digest="+digestOf(b), nil)
	res, err = l.c.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		return fmt.Errorf("PUT: %s", res.Status)
	}
	return nil
}

// parallel runs fn(client, i) for every client and i < n and times it.
func parallel(clients, n int, fn func(c, i int) error) (time.Duration, int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := 0
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := fn(c, i); err != nil {
					mu.Lock()
					if errs == 0 {
						fmt.Fprintln(os.Stderr, "regload:", err)
					}
					errs++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs
}

func (l *load) upload(clients int, size int64, n int) (result, error) {
	// Content is made before the clock starts.
	blobs := make([][][]byte, clients)
	for c := range blobs {
		for i := range n {
			blobs[c] = append(blobs[c], blob(uint64(c*n+i)+uint64(time.Now().UnixNano()), size))
		}
	}
	took, errs := parallel(clients, n, func(c, i int) error { return l.push(blobs[c][i]) })
	total := float64(int64(clients*n) * size)
	return result{Size: size, Requests: clients * n, Seconds: took.Seconds(), MBps: total / took.Seconds() / 1e6, Errors: errs}, nil
}

func (l *load) download(clients int, size int64, n int) (result, error) {
	// A few distinct blobs, pushed first; clients read them round robin.
	distinct := min(clients, 8)
	var digests []string
	for i := range distinct {
		b := blob(uint64(i)+uint64(time.Now().UnixNano()), size)
		if err := l.push(b); err != nil {
			return result{}, err
		}
		digests = append(digests, digestOf(b))
	}
	took, errs := parallel(clients, n, func(c, i int) error {
		res, err := l.c.Get(l.base + "/v2/" + l.repo + "/blobs/" + digests[(c+i)%distinct])
		if err != nil {
			return err
		}
		defer res.Body.Close()
		got, err := drain(res.Body)
		if err != nil || res.StatusCode != 200 || got != size {
			return fmt.Errorf("GET blob: %s, %d bytes, %v", res.Status, got, err)
		}
		return nil
	})
	total := float64(int64(clients*n) * size)
	return result{Size: size, Requests: clients * n, Seconds: took.Seconds(), MBps: total / took.Seconds() / 1e6, Errors: errs}, nil
}

// bufs are the clients' read buffers: 1 MiB, as containerd copies
// content, so the load generator's own read calls do not bound what it
// measures (io.Discard reads 8 KiB at a time: 12,800 reads per 100 MiB).
var bufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// drain reads r to its end and counts the bytes.
func drain(r io.Reader) (int64, error) {
	b := bufs.Get().(*[]byte)
	defer bufs.Put(b)
	var n int64
	for {
		k, err := r.Read(*b)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (l *load) manifest(clients, n int) (result, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := blob(uint64(time.Now().UnixNano()), 4096)
	for _, b := range [][]byte{cfg, layer} {
		if err := l.push(b); err != nil {
			return result{}, err
		}
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digestOf(cfg), len(cfg), digestOf(layer), len(layer))
	req, _ := http.NewRequest("PUT", l.base+"/v2/"+l.repo+"/manifests/v1", bytes.NewReader([]byte(m)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	res, err := l.c.Do(req)
	if err != nil {
		return result{}, err
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		return result{}, fmt.Errorf("PUT manifest: %s", res.Status)
	}
	lat := make([][]time.Duration, clients)
	took, errs := parallel(clients, n, func(c, i int) error {
		req, _ := http.NewRequest("GET", l.base+"/v2/"+l.repo+"/manifests/v1", nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		t0 := time.Now()
		res, err := l.c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat[c] = append(lat[c], time.Since(t0))
		if res.StatusCode != 200 {
			return fmt.Errorf("GET manifest: %s", res.Status)
		}
		return nil
	})
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	return result{Requests: clients * n, Seconds: took.Seconds(), P50ms: pct(0.50), P99ms: pct(0.99), Errors: errs}, nil
}
