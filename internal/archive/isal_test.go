package archive

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"

	"github.com/berth-dev/berth/internal/errdefs"
)

// These tests hold Decompress's gzip decoder (ISA-L with cgo) to what
// klauspost/compress/gzip, a port of Go's compress/gzip, does.

// testData returns n bytes: random ones, which deflate stores, or text with
// repeats, which it codes with Huffman tables and back references.
func testData(kind string, n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, 0, n)
	switch kind {
	case "random":
		b = b[:n]
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	case "text":
		words := strings.Fields("the layer blob digest manifest index config tar entry file mode owner " +
			"0644 0755 usr lib bin etc var / . \n \t { } ( ) := func return if err != nil")
		for len(b) < n {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, " \n"[rng.IntN(2)])
		}
		b = b[:n]
	}
	return b
}

// gzipMembers compresses each part as one gzip member, at level, and
// concatenates the members.
func gzipMembers(tb testing.TB, level int, parts ...[]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	for _, p := range parts {
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(p); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// readAllSize reads r to its end, size bytes per Read at most.
func readAllSize(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// gunzipAll decompresses z with Decompress, which must detect gzip, reading
// from src(z) size bytes at a time.
func gunzipAll(z []byte, src func(io.Reader) io.Reader, size int) ([]byte, error) {
	rc, c, err := Decompress(src(bytes.NewReader(z)))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if c != Gzip {
		return nil, fmt.Errorf("Decompress detected %v, want gzip", c)
	}
	return readAllSize(rc, size)
}

// gunzipKlauspost decompresses z with klauspost's gzip, the reference.
func gunzipKlauspost(z []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func identity(r io.Reader) io.Reader { return r }

// sources are ways a network hands over a stream: all at once, a byte at a
// time, in halves, or with the end-of-file on the last data.
var sources = map[string]func(io.Reader) io.Reader{
	"whole":   identity,
	"onebyte": iotest.OneByteReader,
	"half":    iotest.HalfReader,
	"dataerr": iotest.DataErrReader,
}

// TestISALLoaded: where libisal.so.2 is installed (scripts/deps.sh installs
// it), berth must actually use it; the fallback is for other machines.
func TestISALLoaded(t *testing.T) {
	matches, _ := filepath.Glob("/usr/lib/*/libisal.so.2")
	if len(matches) == 0 || os.Getenv("BERTH_NO_ISAL") == "1" {
		t.Skip("libisal.so.2 not installed or disabled: klauspost decodes")
	}
	if got := gzipDecoder(); got != "isa-l" {
		t.Fatalf("gzip decoder = %s with %s installed, want isa-l", got, matches[0])
	}
}

func TestGzipRoundTrip(t *testing.T) {
	t.Logf("gzip decoder: %s", gzipDecoder())
	sizes := []int{0, 1, 100, 64<<10 - 1, 64 << 10, 64<<10 + 1, 1 << 20, 10 << 20}
	levels := []int{gzip.NoCompression, gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression, gzip.HuffmanOnly}
	for _, kind := range []string{"random", "text"} {
		for _, size := range sizes {
			data := testData(kind, size, 1)
			for _, level := range levels {
				if size > 1<<20 && level != gzip.BestSpeed && level != gzip.DefaultCompression {
					continue // compressing 10 MiB at every level is slow
				}
				t.Run(fmt.Sprintf("%s/%d/level%d", kind, size, level), func(t *testing.T) {
					t.Parallel()
					single := gzipMembers(t, level, data)
					third := len(data) / 3
					multi := gzipMembers(t, level, data[:third], nil, data[third:2*third], data[2*third:])
					for name, z := range map[string][]byte{"single": single, "multi": multi} {
						for src, wrap := range sources {
							for _, bufSize := range []int{1, 7, 4096, 1 << 20} {
								// Small reads of large streams take
								// long and find nothing new.
								if size > 64<<10+1 && (src == "onebyte" || bufSize < 4096) {
									continue
								}
								got, err := gunzipAll(z, wrap, bufSize)
								if err != nil || !bytes.Equal(got, data) {
									t.Errorf("%s stream from %s read %d bytes at a time = %d bytes, %v, want %d bytes",
										name, src, bufSize, len(got), err, len(data))
								}
							}
						}
					}
				})
			}
		}
	}
}

// gzipHeader builds a gzip header with the given flags and fields; hcrc
// adds the header CRC, wrong if badHCRC.
func gzipHeader(flags byte, extra []byte, name, comment string, badHCRC bool) []byte {
	h := []byte{0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3}
	if flags&0x04 != 0 {
		h = binary.LittleEndian.AppendUint16(h, uint16(len(extra)))
		h = append(h, extra...)
	}
	if flags&0x08 != 0 {
		h = append(append(h, name...), 0)
	}
	if flags&0x10 != 0 {
		h = append(append(h, comment...), 0)
	}
	if flags&0x02 != 0 {
		sum := uint16(crc32.ChecksumIEEE(h))
		if badHCRC {
			sum++
		}
		h = binary.LittleEndian.AppendUint16(h, sum)
	}
	return h
}

// withHeader replaces the 10-byte header of the single-member stream z.
func withHeader(hdr, z []byte) []byte {
	return append(append([]byte{}, hdr...), z[10:]...)
}

func TestGzipHeaderFields(t *testing.T) {
	data := testData("text", 100000, 2)
	z := gzipMembers(t, gzip.DefaultCompression, data)
	const all = 0x02 | 0x04 | 0x08 | 0x10
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"no fields", withHeader(gzipHeader(0, nil, "", "", false), z), true},
		{"all fields", withHeader(gzipHeader(all, []byte("xtra field"), "name.tar", "a comment", false), z), true},
		{"empty fields", withHeader(gzipHeader(all, nil, "", "", false), z), true},
		{"long extra", withHeader(gzipHeader(0x04, make([]byte, 65535), "", "", false), z), true},
		{"name of 511", withHeader(gzipHeader(0x08, nil, strings.Repeat("n", 511), "", false), z), true},
		{"name of 512", withHeader(gzipHeader(0x08, nil, strings.Repeat("n", 512), "", false), z), false},
		{"comment of 512", withHeader(gzipHeader(0x10, nil, "", strings.Repeat("c", 512), false), z), false},
		{"bad header crc", withHeader(gzipHeader(all, []byte("x"), "n", "c", true), z), false},
		{"reserved flag", withHeader(gzipHeader(0x20, nil, "", "", false), z), false},
		{"method 7", withHeader([]byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3}, z), false},
		{"second member fields", append(bytes.Clone(z), withHeader(gzipHeader(all, []byte("e"), "n", "c", false), z)...), true},
		{"second member bad", append(bytes.Clone(z), withHeader(gzipHeader(0x40, nil, "", "", false), z)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, werr := gunzipKlauspost(tt.in)
			if (werr == nil) != tt.ok {
				t.Fatalf("klauspost: %v, want ok = %v", werr, tt.ok)
			}
			for src, wrap := range sources {
				got, err := gunzipAll(tt.in, wrap, 4096)
				if tt.ok && (err != nil || !bytes.Equal(got, want)) {
					t.Errorf("from %s: %d bytes, %v, want %d bytes", src, len(got), err, len(want))
				}
				if !tt.ok && !errdefs.IsDataLoss(err) {
					t.Errorf("from %s: %v, want a data loss error", src, err)
				}
			}
		})
	}
}

func TestGzipCorrupt(t *testing.T) {
	text := testData("text", 100000, 3)
	random := testData("random", 100000, 4)
	zt := gzipMembers(t, gzip.DefaultCompression, text)
	zr := gzipMembers(t, gzip.BestSpeed, random)
	two := gzipMembers(t, gzip.DefaultCompression, text[:1000], text[1000:])
	first := len(gzipMembers(t, gzip.DefaultCompression, text[:1000]))

	flip := func(z []byte, i int) []byte {
		c := bytes.Clone(z)
		c[i] ^= 0xff
		return c
	}
	tests := map[string][]byte{
		"wrong crc":               flip(zt, len(zt)-8),
		"wrong isize":             flip(zt, len(zt)-1),
		"isize off by one":        append(bytes.Clone(zt[:len(zt)-4]), binary.LittleEndian.AppendUint32(nil, uint32(len(text)+1))...),
		"wrong crc, 2nd member":   flip(two, len(two)-6),
		"truncated 2nd header":    two[:first+5],
		"truncated 2nd at 1 byte": two[:first+1],
		"trailing zeros":          append(bytes.Clone(zt), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
		"trailing text":           append(bytes.Clone(zt), "garbage"...),
		"trailing magic only":     append(bytes.Clone(zt), 0x1f, 0x8b),
		"header only":             zt[:10],
		"magic only":              zt[:2],
	}
	for _, i := range []int{11, 12, 100, 1000, len(zt) / 2, len(zt) - 20} {
		tests[fmt.Sprintf("text flipped at %d", i)] = flip(zt, i)
	}
	for _, i := range []int{11, 12, 13, 14, 15, 100, len(zr) / 2, len(zr) - 20} {
		tests[fmt.Sprintf("random flipped at %d", i)] = flip(zr, i)
	}
	for _, n := range []int{3, 9, 11, 20, len(zt) / 2, len(zt) - 8, len(zt) - 4, len(zt) - 1} {
		tests[fmt.Sprintf("text truncated to %d", n)] = zt[:n]
	}
	for _, n := range []int{12, len(zr) / 3, len(zr) - 9, len(zr) - 1} {
		tests[fmt.Sprintf("random truncated to %d", n)] = zr[:n]
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := gunzipKlauspost(in); err == nil {
				t.Fatalf("klauspost accepts the stream")
			}
			for src, wrap := range sources {
				for _, size := range []int{7, 1 << 20} {
					_, err := gunzipAll(in, wrap, size)
					if !errdefs.IsDataLoss(err) {
						t.Fatalf("from %s, %d bytes at a time: %v, want a data loss error", src, size, err)
					}
					if msg := err.Error(); strings.Contains(msg, "\n") || strings.Count(msg, "decompressing gzip layer: ") != 1 {
						t.Errorf("error %q, want one line about the gzip layer", msg)
					}
				}
			}
		})
	}
}

// errAfter returns data, then err.
type errAfter struct {
	data []byte
	err  error
	// withData returns err with the last bytes rather than on the next call.
	withData bool
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	if len(e.data) == 0 && e.withData {
		return n, e.err
	}
	return n, nil
}

func TestGzipSourceError(t *testing.T) {
	boom := errors.New("connection reset by peer")
	text := testData("text", 500000, 5)
	z := gzipMembers(t, gzip.DefaultCompression, text[:1000], text[1000:])
	first := len(gzipMembers(t, gzip.DefaultCompression, text[:1000]))
	for _, at := range []int{2, 5, 10, 11, 100, first - 4, first, first + 3, len(z) / 2, len(z) - 5, len(z)} {
		for _, withData := range []bool{false, true} {
			name := fmt.Sprintf("at %d", at)
			if withData {
				name += " with data"
			}
			t.Run(name, func(t *testing.T) {
				for src, wrap := range sources {
					if src == "dataerr" {
						continue // it would turn boom into io.EOF
					}
					r := wrap(&errAfter{data: z[:at], err: boom, withData: withData})
					rc, _, err := Decompress(r)
					if err == nil {
						_, err = readAllSize(rc, 4096)
						rc.Close()
					}
					if !errors.Is(err, boom) || errdefs.IsDataLoss(err) {
						t.Errorf("from %s: %v, want %v and not data loss", src, err, boom)
					}
				}
			})
		}
	}
	t.Run("timeout", func(t *testing.T) {
		_, err := gunzipAll(z, iotest.TimeoutReader, 4096)
		if !errors.Is(err, iotest.ErrTimeout) || errdefs.IsDataLoss(err) {
			t.Errorf("got %v, want %v and not data loss", err, iotest.ErrTimeout)
		}
	})
}

// closeRecorder records a Close it should never get.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestGzipClose(t *testing.T) {
	z := gzipMembers(t, gzip.DefaultCompression, testData("text", 100000, 6))
	src := &closeRecorder{Reader: bytes.NewReader(z)}
	rc, _, err := Decompress(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if src.closed {
		t.Errorf("Close closed the source")
	}
	// ISA-L's state is freed: a Read must not touch it. (klauspost's reader
	// keeps working after Close.)
	if n, err := rc.Read(make([]byte, 100)); err == nil && gzipDecoder() == "isa-l" {
		t.Errorf("Read after Close = %d, nil, want an error", n)
	}

	// A decoder dropped without Close frees its memory at the next GC.
	for range 10 {
		if _, _, err := Decompress(bytes.NewReader(z)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
}

func TestGzipReadAllocs(t *testing.T) {
	z := gzipMembers(t, gzip.DefaultCompression, testData("text", 20<<20, 7))
	rc, _, err := Decompress(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rc.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if gzipDecoder() == "isa-l" && allocs != 0 {
		t.Errorf("Read allocates %v times, want 0", allocs)
	}
}

// deflateMember wraps the deflate stream body as a gzip member whose trailer
// is that of out.
func deflateMember(body, out []byte) []byte {
	m := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}, body...)
	m = binary.LittleEndian.AppendUint32(m, crc32.ChecksumIEEE(out))
	return binary.LittleEndian.AppendUint32(m, uint32(len(out)))
}

// FuzzDecompressGzip holds Decompress to klauspost's gzip on gzip streams.
// An input that does not start with the gzip magic is taken as a deflate
// stream instead and given the trailer of what either decoder makes of it:
// checksums would otherwise hide where the two decoders' deflate differs.
func FuzzDecompressGzip(f *testing.F) {
	text := testData("text", 5000, 8)
	z := gzipMembers(f, gzip.DefaultCompression, text)
	for _, seed := range [][]byte{
		z,
		gzipMembers(f, gzip.BestSpeed, text[:100], nil, text[100:300]),
		gzipMembers(f, gzip.NoCompression, text[:300]),
		gzipMembers(f, gzip.HuffmanOnly, text[:300]),
		gzipMembers(f, gzip.BestCompression, nil),
		withHeader(gzipHeader(0x1e, []byte("ex"), "name", "comment", false), gzipMembers(f, 5, text[:200])),
		z[:len(z)/2],
		append(bytes.Clone(z), 0x1f, 0x8b, 8),
	} {
		f.Add(seed)
	}
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, level)
		w.Write(text[:1000])
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if bytes.HasPrefix(in, gzipMagic) {
			compareGunzip(t, in)
			return
		}
		fr := bytes.NewReader(in)
		if out, err := io.ReadAll(io.LimitReader(flate.NewReader(fr), fuzzLimit)); err == nil {
			compareGunzip(t, deflateMember(in[:len(in)-fr.Len()], out))
		}
		out, _ := gunzipAll(deflateMember(in, nil), identity, 1<<20)
		compareGunzip(t, deflateMember(in, out))
	})
}

// fuzzLimit caps the output of fuzzed streams, which may be zip bombs.
const fuzzLimit = 64 << 20

// compareGunzip fails t unless Decompress and klauspost's gzip both
// decompress the gzip stream in to the same bytes, or both fail.
func compareGunzip(t *testing.T, in []byte) {
	rc, c, err := Decompress(bytes.NewReader(in))
	var got []byte
	if err == nil {
		if c != Gzip {
			t.Fatalf("Decompress detected %v, want gzip", c)
		}
		got, err = io.ReadAll(io.LimitReader(rc, fuzzLimit))
		rc.Close()
	}
	if err != nil && (!errdefs.IsDataLoss(err) || strings.Contains(err.Error(), "\n")) {
		t.Fatalf("Decompress: %v, want a one-line data loss error", err)
	}
	zr, werr := gzip.NewReader(bytes.NewReader(in))
	var want []byte
	if werr == nil {
		want, werr = io.ReadAll(io.LimitReader(zr, fuzzLimit))
	}
	if len(got) == fuzzLimit || len(want) == fuzzLimit {
		return
	}
	// ISA-L is more lenient than Go's inflate with some malformed deflate
	// bodies (the fuzzer found one: testdata/fuzz/FuzzDecompressGzip). That
	// is safe: ISA-L still checks the member's CRC-32 and size, and berth
	// checks every layer's diffID. What must hold is that ISA-L never fails
	// where Go succeeds, never disagrees with it on output, and never
	// accepts what Go refuses for any reason other than a corrupt body.
	var corrupt flate.CorruptInputError
	lenient := err == nil && werr != nil && errors.As(werr, &corrupt) && gzipDecoder() == "isa-l"
	// klauspost in turn ignores a next member's header cut short after a
	// complete member (the fuzzer found one); Go's compress/gzip and
	// gunzip(1) call that an unexpected EOF, and so does ISA-L.
	if err != nil && werr == nil && gzipDecoder() == "isa-l" {
		if sr, serr := stdgzip.NewReader(bytes.NewReader(in)); serr == nil {
			_, serr = io.ReadAll(io.LimitReader(sr, fuzzLimit))
			lenient = errors.Is(serr, io.ErrUnexpectedEOF) && errors.Is(err, io.ErrUnexpectedEOF)
		}
	}
	if (err == nil) != (werr == nil) && !lenient {
		t.Fatalf("Decompress: %d bytes, %v; klauspost: %d bytes, %v", len(got), err, len(want), werr)
	}
	if err == nil && werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("Decompress and klauspost disagree: %d and %d bytes", len(got), len(want))
	}
	// Input in single bytes and output in odd sizes change nothing.
	got2, err2 := gunzipAll(in, iotest.OneByteReader, 7)
	if (err2 == nil) != (err == nil) || (err == nil && !bytes.Equal(got2, got)) {
		t.Fatalf("byte by byte: %d bytes, %v; at once: %d bytes, %v", len(got2), err2, len(got), err)
	}
}

// benchLayer is a realistic layer: a tar of Go's sources and tools, 32 MB,
// gzipped at the default level as docker and buildkit do.
var benchLayer = sync.OnceValues(func() ([]byte, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	root := runtime.GOROOT()
	for _, dir := range []struct {
		path   string
		budget int
	}{{"src", 24 << 20}, {"pkg/tool", 8 << 20}} {
		limit := tarBuf.Len() + dir.budget
		err := filepath.WalkDir(filepath.Join(root, dir.path), func(path string, d fs.DirEntry, err error) error {
			if err != nil || tarBuf.Len() >= limit {
				return err
			}
			info, err := d.Info()
			if err != nil || !info.Mode().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			hdr, _ := tar.FileInfoHeader(info, "")
			hdr.Name = path[len(root)+1:]
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
})

func BenchmarkDecompress(b *testing.B) {
	z, err := benchLayer()
	if err != nil {
		b.Skipf("building the layer: %v", err)
	}
	buf := make([]byte, 1<<20) // Apply's copy buffer
	run := func(b *testing.B, open func(io.Reader) (io.Reader, func() error, error)) {
		b.SetBytes(int64(len(z)))
		b.ReportAllocs()
		for b.Loop() {
			r, closeR, err := open(bytes.NewReader(z))
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/float64(len(z)), "ratio")
			closeR()
		}
	}
	b.Run(gzipDecoder(), func(b *testing.B) {
		run(b, func(r io.Reader) (io.Reader, func() error, error) {
			rc, _, err := Decompress(r)
			if err != nil {
				return nil, nil, err
			}
			return rc, rc.Close, nil
		})
	})
	if gzipDecoder() != "klauspost" {
		b.Run("klauspost", func(b *testing.B) {
			run(b, func(r io.Reader) (io.Reader, func() error, error) {
				zr, err := gzip.NewReader(r)
				if err != nil {
					return nil, nil, err
				}
				return zr, zr.Close, nil
			})
		})
	}
}
