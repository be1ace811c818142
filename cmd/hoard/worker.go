package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/worker"
)

func newWorkerCmd() *cobra.Command {
	var (
		cfg      server.WorkerConfig
		capacity = byteSize(10 << 30)
		pageSize = byteSize(pagestore.DefaultPageSize)
		s3       s3Flags
		etcd     etcdFlags
		health   opsFlag
		tlsf     tlsFlags
		allow    []string
		own      []string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a cache worker: serve cached pages of buckets from local disk",
		Long: `Run a cache worker. It keeps pages of objects in --cache-dir, at most
--capacity bytes on disk, serves them to clients over HTTP on --listen, and
fetches misses from the bucket once, however many clients ask.

With --etcd it registers in the cluster's membership so clients route to it;
its ID is kept in the cache dir and is stable across restarts. --health-addr
serves /healthz, /readyz and /metrics over plain HTTP, for probes and
Prometheus; /metrics is on --listen too, for clients with a certificate.

Clients and workers authenticate each other with mutual TLS: --tls-ca is the
cluster's CA, --tls-cert and --tls-key this worker's certificate (its name
must be hoard-worker; 'hoard certs DIR' makes a CA and certificates for a
test cluster). Without them the worker refuses to start, unless
--insecure-dev (plain HTTP, anyone who can connect is served: a local test
cluster only).`,
		Example: `  hoard worker --cache-dir /var/cache/hoard --capacity 100GiB --listen :7070 \
      --etcd http://10.0.0.1:2379 --s3-endpoint https://s3.example.com \
      --tls-ca /etc/hoard/tls/ca.crt --tls-cert /etc/hoard/tls/tls.crt --tls-key /etc/hoard/tls/tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Capacity, cfg.PageSize = int64(capacity), int(pageSize)
			ecfg, err := etcd.config()
			if err != nil {
				return err
			}
			cfg.S3, cfg.Etcd = s3.config(), ecfg
			tlsConfig, err := tlsf.server()
			if err != nil {
				return err
			}
			cfg.TLS, cfg.InsecureDev = tlsConfig, tlsf.insecureDev
			policy, err := sourcePolicy(allow, own)
			if err != nil {
				return err
			}
			cfg.Policy = &policy
			if err := checkAuthTimes(cfg.AuthTTL, cfg.AuthGrace); err != nil {
				return err
			}
			if err := checkFetchTimes(cfg.FetchStall, cfg.FetchTimeout); err != nil {
				return err
			}
			if cfg.AuthGrace == 0 {
				cfg.AuthGrace = -1 // none, as asked (0 in the worker's Config is its default)
			}
			if cfg.HealthAddr, err = health.address(); err != nil {
				return err
			}
			w, err := server.StartWorker(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			return w.Close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.CacheDir, "cache-dir", "", "directory of the page store (required)")
	fs.Var(&capacity, "capacity", "most bytes the page store may take on disk")
	fs.Var(&pageSize, "page-size", "page size, fixed for the life of the cache dir")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "address to serve clients on")
	fs.StringVar(&cfg.Advertise, "advertise", "", "address clients should use (default: the listen address)")
	health.addHealth(fs, "ok once serving", ":7071")
	fs.StringVar(&cfg.ID, "id", "", "stable worker ID (default: generated once and kept in the cache dir)")
	fs.Float64Var(&cfg.Weight, "weight", 1, "relative share of chunks this worker owns")
	fs.StringSliceVar(&cfg.Files, "serve-file", nil, "file:///dir sources this worker may read (repeatable)")
	fs.BoolVar(&cfg.VerifyStoreChecksum, "verify-store-checksum", false,
		"check an object fetched whole (at most 16 MiB) against the store's MD5 ETag before serving or caching it (single-part uploads; pages are then handed out when the object is complete)")
	fs.DurationVar(&cfg.AuthTTL, "auth-ttl", worker.DefaultAuthTTL,
		"how long the store's yes to a reader's credentials (a HEAD, or a cold read's own GET) lets it read an object's cached pages: longer costs the store fewer HEADs and delays a revocation as long")
	fs.DurationVar(&cfg.AuthGrace, "auth-grace", worker.DefaultAuthGrace,
		"how long past --auth-ttl that yes still counts while the store cannot answer, so cached data stays readable through a bucket outage")
	fs.DurationVar(&cfg.FetchStall, "fetch-stall", worker.DefaultFetchStall,
		"give up a GET from the bucket that sends nothing this long (before its first byte or between any two): its readers get 502 with the bucket as cause. Keep it below the clients' 30s wait for a worker, or they take this worker for hung")
	fs.DurationVar(&cfg.FetchTimeout, "fetch-timeout", worker.DefaultFetchTimeout,
		"give up a GET from the bucket that has not finished this long after it was sent, however many bytes came (one GET reads at most a 64 MiB chunk)")
	fs.StringArrayVar(&allow, "allow-source", nil, "S3 sources clients may ask for, s3+https://HOST[:PORT]/BUCKET with * for any host or bucket, or * for all (repeatable); nothing else is ever opened")
	fs.StringArrayVar(&own, "own-credentials-for", nil, "allowed sources this worker reads with its own credentials when a client sends none (same patterns; default: none)")
	s3.add(fs)
	etcd.add(fs)
	tlsf.add(fs)
	cmd.MarkFlagRequired("cache-dir")
	return cmd
}

// maxFetchTime bounds --fetch-stall and --fetch-timeout: a GET held longer
// holds its readers and a connection to the store as long.
const maxFetchTime = time.Hour

// checkFetchTimes says what to fix in --fetch-stall and --fetch-timeout.
func checkFetchTimes(stall, timeout time.Duration) error {
	switch {
	case timeout < time.Second || timeout > maxFetchTime:
		return fmt.Errorf("--fetch-timeout %v: give a duration from 1s to %v (e.g. 2m)", timeout, maxFetchTime)
	case stall < 100*time.Millisecond || stall > timeout:
		return fmt.Errorf("--fetch-stall %v: give a duration from 100ms to --fetch-timeout (%v), e.g. 20s", stall, timeout)
	}
	return nil
}

// maxAuthTime bounds --auth-ttl and --auth-grace: a revoked reader must not
// keep reading cached data for days.
const maxAuthTime = 24 * time.Hour

// checkAuthTimes says what to fix in --auth-ttl and --auth-grace.
func checkAuthTimes(ttl, grace time.Duration) error {
	switch {
	case ttl <= 0 || ttl > maxAuthTime:
		return fmt.Errorf("--auth-ttl %v: give a duration above 0 and at most %v (e.g. 1m)", ttl, maxAuthTime)
	case grace < 0 || grace > maxAuthTime:
		return fmt.Errorf("--auth-grace %v: give a duration from 0 to %v (e.g. 10m)", grace, maxAuthTime)
	}
	return nil
}
