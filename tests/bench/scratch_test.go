package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

func BenchmarkScratchCold(b *testing.B) {
	ctx := context.Background()
	m := testenv.StartMinIO(b)
	m.MakeBucket(b, "scratch")
	size := int64(256 * MiB)
	n := 4
	for i := range n {
		m.Put(b, "scratch", fmt.Sprintf("f%d", i), testenv.RandomBytes(size, uint64(i)))
	}
	syncAll()
	s3, _ := ufs.NewS3(ctx, "scratch", m.S3Config())
	objs := make([]client.Object, n)
	for i := range n {
		st, _ := s3.Stat(ctx, fmt.Sprintf("f%d", i))
		objs[i] = client.Object{Source: s3.Source(), Key: st.Key, Version: st.Version, Size: st.Size}
	}
	t := s3Target(m, "scratch")
	readers, _ := strconv.Atoi(os.Getenv("R"))
	if readers == 0 {
		readers = 1
	}
	for round := 0; round < 2; round++ {
		func() {
			dropCaches()
			c0 := cpuSeconds(m.Pid())
			nb, d, err := parallel(readers, readers, func(i int) (int64, error) { return t.readWhole(objs[i].Key) })
			fmt.Printf("direct x%d: %.0f MiB/s cpu %.2f s/GiB %v\n", readers, float64(nb)/MiB/d.Seconds(), (cpuSeconds(m.Pid())-c0)/(float64(nb)/(1<<30)), err)
			dropCaches()
			rq, _ := strconv.Atoi(os.Getenv("RQ"))
			ra, _ := strconv.Atoi(os.Getenv("RA"))
			dir := b.TempDir()
			c, err := server.NewClient(ctx, server.ClientConfig{CacheDir: dir, Capacity: 4 << 30, S3: m.S3Config(),
				Client: client.Config{RequestBytes: int64(rq) << 20, ReadaheadBytes: int64(ra) << 20}})
			if err != nil {
				b.Fatal(err)
			}
			c.Open(ctx, ufs.Location{Scheme: "s3", Bucket: "scratch"}, m.S3Config())
			c0 = cpuSeconds(m.Pid())
			nb, d, err = parallel(readers, readers, func(i int) (int64, error) { return readObject(ctx, c, objs[i]) })
			ws := c.Embedded.Worker.Stats()
			defer func(dir string) {
				dropCaches()
				c, _ := server.NewClient(ctx, server.ClientConfig{CacheDir: dir, Capacity: 4 << 30, S3: m.S3Config()})
				c.Open(ctx, ufs.Location{Scheme: "s3", Bucket: "scratch"}, m.S3Config())
				c0 := cpuSeconds(m.Pid())
				nb, d, err := parallel(readers, readers, func(i int) (int64, error) { return readObject(ctx, c, objs[i]) })
				fmt.Printf("embedded warm x%d: %.0f MiB/s cpu %.2f s/GiB %v\n", readers, float64(nb)/MiB/d.Seconds(), (cpuSeconds(m.Pid())-c0)/(float64(nb)/(1<<30)), err)
				c.Close()
			}(dir)
			fmt.Printf("embedded cold x%d: %.0f MiB/s cpu %.2f s/GiB %v; %d GETs, %d MiB\n", readers, float64(nb)/MiB/d.Seconds(), (cpuSeconds(m.Pid())-c0)/(float64(nb)/(1<<30)), err, ws.Fetches.Load(), ws.FetchedBytes.Load()>>20)
			c.Close()
		}()
	}
}
