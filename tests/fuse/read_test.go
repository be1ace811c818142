package fuse_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/tests/testenv"
)

// TestReads checks that files read byte-exact through the mount: whole, in
// cat-like 1 MiB reads and through io.Copy, at random offsets, and by many
// readers at once.
func TestReads(t *testing.T) {
	e := newEnv(t)
	sizes := []struct {
		name string
		size int64
	}{
		{"empty", 0}, {"one", 1}, {"page-1", MiB - 1}, {"page+1", MiB + 1},
		{"odd", 3*MiB + 12345}, {"big", 150 * MiB},
		{"random", 20*MiB + 7}, {"shared", 40 * MiB}, {"c0", 5 * MiB}, {"c1", 6*MiB + 1}, {"c2", 7 * MiB}, {"c3", 2*MiB - 3},
	}
	want := map[string][]byte{}
	for i, s := range sizes {
		want[s.name] = testenv.RandomBytes(s.size, uint64(i+1))
		e.put(t, "files/"+s.name, want[s.name])
	}
	dir, root := e.mount(t, "", fuseview.Options{})
	path := func(name string) string { return filepath.Join(dir, "files", name) }

	t.Run("sequential", func(t *testing.T) {
		for _, name := range []string{"empty", "one", "page-1", "page+1", "odd", "big"} {
			start := time.Now()
			got, err := readInChunks(path(name), MiB)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(got, want[name]) {
				t.Fatalf("%s: read %d bytes that differ from the %d stored", name, len(got), len(want[name]))
			}
			t.Logf("%s: %d bytes in 1 MiB reads in %s", name, len(got), time.Since(start).Round(time.Millisecond))

			f, err := os.Open(path(name))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil || n != int64(len(want[name])) || !bytes.Equal(h.Sum(nil), sha(want[name])) {
				t.Fatalf("%s: io.Copy gave %d bytes (want %d), err %v, same hash: %t", name, n, len(want[name]), err, bytes.Equal(h.Sum(nil), sha(want[name])))
			}
		}
		st := root.Stats()
		t.Logf("stats: %d opens, %d read requests, %d bytes (%.0f KiB per request)",
			st.Opens.Load(), st.Reads.Load(), st.ReadBytes.Load(), float64(st.ReadBytes.Load())/float64(max(1, st.Reads.Load()))/1024)
	})

	t.Run("random", func(t *testing.T) {
		data := want["random"]
		f, err := os.Open(path("random"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 300 {
			off := rng.Int64N(int64(len(data)) + 100)
			n := 1 + rng.IntN(3*MiB)
			if i%10 == 0 { // straddle a page boundary
				off = int64(1+rng.IntN(19))*MiB - int64(rng.IntN(100)) - 1
				n = 200
			}
			if err := checkReadAt(f, data, off, n); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		// Four readers of the same file at random offsets, each with its
		// own descriptor, and one with a shared descriptor.
		shared, err := os.Open(path("shared"))
		if err != nil {
			t.Fatal(err)
		}
		defer shared.Close()
		for r := range 5 {
			wg.Go(func() {
				f := shared
				if r < 4 {
					var err error
					if f, err = os.Open(path("shared")); err != nil {
						errs <- err
						return
					}
					defer f.Close()
				}
				rng := rand.New(rand.NewPCG(uint64(r), 7))
				for range 60 {
					off := rng.Int64N(40 * MiB)
					if err := checkReadAt(f, want["shared"], off, 1+rng.IntN(2*MiB)); err != nil {
						errs <- fmt.Errorf("reader %d of shared: %w", r, err)
						return
					}
				}
			})
		}
		// Four readers of different files, whole and sequential.
		for _, name := range []string{"c0", "c1", "c2", "c3"} {
			wg.Go(func() {
				got, err := readInChunks(path(name), 256<<10)
				if err == nil && !bytes.Equal(got, want[name]) {
					err = fmt.Errorf("%d bytes differ from the %d stored", len(got), len(want[name]))
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
				}
			})
		}
		testenv.Within(t, 60*time.Second, "concurrent readers", func() error {
			wg.Wait()
			close(errs)
			return errors.Join(collect(errs)...)
		})
	})
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// readInChunks reads the file at path with reads of n bytes, as cat does.
func readInChunks(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, n)
	for {
		k, err := f.Read(buf)
		out = append(out, buf[:k]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// checkReadAt reads n bytes at off and compares them with data.
func checkReadAt(f *os.File, data []byte, off int64, n int) error {
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	end := min(off+int64(n), int64(len(data)))
	wantN := int(max(0, end-off))
	switch {
	case k != wantN:
		return fmt.Errorf("ReadAt(%d bytes at %d) read %d, want %d (err %v)", n, off, k, wantN, err)
	case k < n && !errors.Is(err, io.EOF):
		return fmt.Errorf("ReadAt(%d bytes at %d): short read of %d without EOF: %v", n, off, k, err)
	case k == n && err != nil:
		return fmt.Errorf("ReadAt(%d bytes at %d): %v", n, off, err)
	case k > 0 && !bytes.Equal(buf[:k], data[off:end]):
		return fmt.Errorf("ReadAt(%d bytes at %d): bytes differ", n, off)
	}
	return nil
}
