package faults

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"hoard.dev/hoard/tests/testenv"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// object is one object of the data set: its content is
// testenv.RandomBytes(size, seed), and sums the CRC-32C of each MiB of it.
type object struct {
	key  string
	size int64
	seed uint64
	sums []uint32
}

// dataset is what the readers read: many small files and a few large
// shards.
type dataset struct {
	small  []object
	shards []object
	// cold objects are never read by the readers: reads of them are
	// misses whatever the readers did.
	cold []object
	// coldLarge are cold objects large enough that a sequential read of
	// one reads ahead: a GET of many pages.
	coldLarge []object
}

// datasetSpec sizes a data set.
type datasetSpec struct {
	smallFiles         int
	smallMin, smallMax int64 // sizes of small files, uniform between
	shards             int
	shardSize          int64
	filesPerDir        int
	cold               int // cold objects of 4 MiB
	coldLarge          int // cold objects of 24 MiB
}

// content returns the bytes of o.
func (o object) content() []byte { return testenv.RandomBytes(o.size, o.seed) }

func newObject(key string, size int64, seed uint64) object {
	o := object{key: key, size: size, seed: seed}
	data := o.content()
	for off := int64(0); off < size; off += MiB {
		o.sums = append(o.sums, crc32.Checksum(data[off:min(off+MiB, size)], castagnoli))
	}
	if size == 0 {
		o.sums = []uint32{crc32.Checksum(nil, castagnoli)}
	}
	return o
}

// putDataset makes the data set's objects and puts them in the bucket, 16
// at a time.
func putDataset(t *testing.T, m *testenv.MinIO, spec datasetSpec) *dataset {
	t.Helper()
	start := time.Now()
	d := &dataset{}
	if spec.filesPerDir == 0 {
		spec.filesPerDir = 500
	}
	span := spec.smallMax - spec.smallMin + 1
	for i := 0; i < spec.smallFiles; i++ {
		seed := uint64(i + 1)
		size := spec.smallMin + int64(seed*2654435761)%span
		key := fmt.Sprintf("small/d%03d/f%06d.bin", i/spec.filesPerDir, i)
		d.small = append(d.small, object{key: key, size: size, seed: seed})
	}
	for i := 0; i < spec.shards; i++ {
		d.shards = append(d.shards, object{key: fmt.Sprintf("shards/s%02d.bin", i), size: spec.shardSize, seed: uint64(1_000_000 + i)})
	}
	for i := 0; i < spec.cold; i++ {
		d.cold = append(d.cold, object{key: fmt.Sprintf("cold/c%02d.bin", i), size: 4 * MiB, seed: uint64(2_000_000 + i)})
	}
	for i := 0; i < spec.coldLarge; i++ {
		d.coldLarge = append(d.coldLarge, object{key: fmt.Sprintf("cold/large%02d.bin", i), size: 24 * MiB, seed: uint64(3_000_000 + i)})
	}
	all := append(append(append(append([]*object{}, ptrs(d.small)...), ptrs(d.shards)...), ptrs(d.cold)...), ptrs(d.coldLarge)...)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan *object)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range next {
				*o = newObject(o.key, o.size, o.seed)
				if err := put(m, *o); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, o := range all {
		next <- o
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("put the data set: %v", firstErr)
	}
	t.Logf("data set: %d small files, %d shards of %d MiB, %.0f MiB in all, put in %v",
		len(d.small), len(d.shards), spec.shardSize/MiB, float64(d.bytes())/MiB, time.Since(start).Round(time.Second))
	return d
}

func ptrs(os []object) []*object {
	out := make([]*object, len(os))
	for i := range os {
		out[i] = &os[i]
	}
	return out
}

func put(m *testenv.MinIO, o object) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := m.Client().PutObject(ctx, bucket, o.key, bytes.NewReader(o.content()), o.size,
		minio.PutObjectOptions{DisableMultipart: true})
	return err
}

func (d *dataset) bytes() int64 {
	var n int64
	for _, o := range d.small {
		n += o.size
	}
	for _, o := range d.shards {
		n += o.size
	}
	return n
}
