package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// BenchmarkWarmTrust measures what the trust work costs warm reads (issue
// 11): one worker process... in this process, serving over loopback, its page
// store full and the kernel page cache dropped before each round; a client
// with no hot tier reads the files with 4 readers. Three transports, rounds
// back to back: plain HTTP (--insecure-dev), mutual TLS, and mutual TLS with
// the tenant's credentials (a HEAD per object and minute before a hit).
func BenchmarkWarmTrust(b *testing.B) {
	const readers = 4
	files := 8
	size := int64(64*MiB) / max(scale()/8, 1)
	rounds := 3
	if r, err := strconv.Atoi(os.Getenv("HOARD_BENCH_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	m := testenv.StartMinIO(b)
	m.MakeBucket(b, "bench")
	for i := 0; i < files; i++ {
		m.PutRandom(b, "bench", fmt.Sprintf("f%02d", i), size, uint64(i))
	}
	sts, err := credentials.NewSTSAssumeRole(m.URL(), credentials.STSAssumeRoleOptions{AccessKey: m.AccessKey(), SecretKey: m.SecretKey(),
		Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::bench","arn:aws:s3:::bench/*"]}]}`})
	if err != nil {
		b.Fatal(err)
	}
	v, err := sts.GetWithContext(nil)
	if err != nil {
		b.Fatal(err)
	}
	tenant := ufs.Credentials{AccessKey: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken}
	s3, err := ufs.NewS3(ctx, "bench", m.S3Config())
	if err != nil {
		b.Fatal(err)
	}
	objs := make([]client.Object, files)
	for i := range objs {
		st, err := s3.Stat(ctx, fmt.Sprintf("f%02d", i))
		if err != nil {
			b.Fatal(err)
		}
		objs[i] = client.Object{Source: s3.Source(), Key: st.Key, Version: st.Version, Size: st.Size}
	}
	certs := testenv.Certs(b)
	serverTLS, err := mtls.WorkerFiles(certs).ServerConfig()
	if err != nil {
		b.Fatal(err)
	}
	clientTLS := testenv.ClientTLS(b)
	all, _ := sources.ParsePattern("*")
	// One page store, filled once, served by each transport in turn.
	cacheDir := b.TempDir()
	start := func(secure bool) *server.Worker {
		cfg := server.WorkerConfig{ID: "w", Listen: "127.0.0.1:0", CacheDir: cacheDir, Capacity: 4 << 30, S3: m.S3Config(),
			Policy: &sources.Policy{Allow: []sources.Pattern{all}, Own: []sources.Pattern{all}}, Logger: quiet}
		if secure {
			cfg.TLS = serverTLS
		} else {
			cfg.InsecureDev = true
		}
		w, err := server.StartWorker(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	read := func(w *server.Worker, tlsConfig bool, creds *ufs.Credentials) (float64, float64) {
		members, err := membership.Static(membership.Member{ID: "w", Addr: w.Addr, Weight: 1})
		if err != nil {
			b.Fatal(err)
		}
		reg := sources.New(m.S3Config(), true)
		cfg := client.Config{Members: members, Sources: reg, HotBytes: -1, Credentials: creds, Logger: quiet}
		if tlsConfig {
			cfg.TLS = clientTLS
		}
		c, err := client.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		dropCaches()
		cpu0 := cpuSeconds()
		n, d, err := parallel(files, readers, func(i int) (int64, error) {
			r := c.NewReader(objs[i])
			buf := make([]byte, MiB)
			var off int64
			for off < objs[i].Size {
				k, err := r.ReadAt(ctx, buf, off)
				off += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					return off, err
				}
			}
			return off, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if bs := c.Stats().BucketReads.Load(); bs != 0 {
			b.Fatalf("%d reads went to the bucket: not warm", bs)
		}
		return float64(n) / MiB / d.Seconds(), (cpuSeconds() - cpu0) / (float64(n) / (1 << 30))
	}
	w := start(false)
	read(w, false, nil) // fill the cache
	w.Close()

	type sample struct{ mibps, cpu float64 }
	samples := map[string][]sample{}
	names := []string{"plain HTTP (--insecure-dev)", "mutual TLS", "mutual TLS + tenant credentials"}
	for round := 0; round < rounds; round++ {
		for i, name := range names {
			w := start(i > 0)
			mibps, cpu := read(w, i > 0, map[bool]*ufs.Credentials{true: &tenant}[i == 2])
			w.Close()
			samples[name] = append(samples[name], sample{mibps, cpu})
			b.Logf("round %d, %s: %.0f MiB/s, %.2f CPU-s/GiB", round, name, mibps, cpu)
		}
	}
	fmt.Printf("\n## Warm reads by transport: %d files x %d MiB, %d readers, median of %d rounds (page cache dropped)\n\n", files, size/MiB, readers, rounds)
	fmt.Printf("| transport | MiB/s | ratio | CPU-s/GiB (both ends) | rounds (MiB/s) |\n|---|---:|---|---:|---|\n")
	var base float64
	for i, name := range names {
		s := samples[name]
		sort.Slice(s, func(a, c int) bool { return s[a].mibps < s[c].mibps })
		med := s[len(s)/2]
		var all []string
		for _, x := range samples[name] {
			all = append(all, fmt.Sprintf("%.0f", x.mibps))
		}
		if i == 0 {
			base = med.mibps
		}
		fmt.Printf("| %s | %.0f | %.2fx plain | %.2f | %s |\n", name, med.mibps, med.mibps/base, med.cpu, strings.Join(all, ", "))
	}
	_ = time.Second
}
