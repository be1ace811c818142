package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

// byteSize is a flag value like 10GiB, 512MiB or 1073741824.
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }
func (b *byteSize) Type() string   { return "size" }
func (b *byteSize) Set(s string) error {
	v, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("want a size such as 10GiB, 512MiB or 1048576")
	}
	*b = byteSize(v)
	return nil
}

// s3Flags say how to reach S3. Credentials are deliberately not flags.
type s3Flags struct {
	endpoint, region string
	pathStyle        bool
	insecure         bool
	caBundle         string
}

func (f *s3Flags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint, host:port or http(s)://host:port (default: AWS)")
	fs.StringVar(&f.region, "s3-region", "", "S3 region (default: asked from the store)")
	fs.BoolVar(&f.pathStyle, "s3-path-style", false, "use path-style requests (http://host/bucket/key)")
	fs.BoolVar(&f.insecure, "s3-insecure", false, "use plain HTTP when the endpoint has no scheme")
	fs.StringVar(&f.caBundle, "s3-ca-bundle", "", "PEM file of extra CAs to trust (default: $AWS_CA_BUNDLE)")
}

func (f *s3Flags) config() ufs.S3Config {
	return ufs.S3Config{
		Endpoint: f.endpoint, Region: f.region, PathStyle: f.pathStyle, Insecure: f.insecure, CABundle: f.caBundle,
	}
}

// etcdFlags say where the cluster's membership lives and how to reach it.
type etcdFlags struct {
	endpoints string
	cluster   string
	ttl       time.Duration
	tls       mtls.Files
	username  string
}

func (f *etcdFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoints, "etcd", "", "comma-separated etcd endpoints of the cache cluster (e.g. https://10.0.0.1:2379)")
	fs.StringVar(&f.cluster, "cluster", "default", "name of the cache cluster in etcd")
	fs.DurationVar(&f.ttl, "liveness-ttl", membership.DefaultTTL, "TTL of a worker's liveness lease")
	fs.StringVar(&f.tls.CA, "etcd-ca", "", "PEM file of the CA of etcd's https endpoints")
	fs.StringVar(&f.tls.Cert, "etcd-cert", "", "PEM client certificate for etcd (with --etcd-key)")
	fs.StringVar(&f.tls.Key, "etcd-key", "", "PEM private key of --etcd-cert")
	fs.StringVar(&f.username, "etcd-username", "", "etcd user (RBAC); the password comes from $HOARD_ETCD_PASSWORD, never a flag")
}

// config is the etcd configuration the flags describe.
func (f *etcdFlags) config() (membership.EtcdConfig, error) {
	var eps []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	cfg := membership.EtcdConfig{Endpoints: eps, Cluster: f.cluster, TTL: f.ttl,
		Username: f.username, Password: os.Getenv("HOARD_ETCD_PASSWORD")}
	if f.username == "" && cfg.Password != "" {
		return cfg, errors.New("$HOARD_ETCD_PASSWORD is set but --etcd-username is not")
	}
	if f.tls.IsZero() {
		return cfg, nil
	}
	tlsConfig, err := f.tls.EtcdConfig()
	if err != nil {
		return cfg, fmt.Errorf("etcd TLS: %w", err)
	}
	cfg.TLS = tlsConfig
	return cfg, nil
}

// sourcePolicy parses a worker's --allow-source and --own-credentials-for.
func sourcePolicy(allow, own []string) (sources.Policy, error) {
	a, err := sources.ParsePatterns(allow)
	if err != nil {
		return sources.Policy{}, fmt.Errorf("--allow-source: %w", err)
	}
	o, err := sources.ParsePatterns(own)
	if err != nil {
		return sources.Policy{}, fmt.Errorf("--own-credentials-for: %w", err)
	}
	return sources.Policy{Allow: a, Own: o}, nil
}

// tlsFlags say how the data path between clients and workers is secured:
// mutual TLS with certificates of the cluster's CA, or (--insecure-dev, for
// a local test cluster only) plain HTTP.
type tlsFlags struct {
	files       mtls.Files
	insecureDev bool
}

func (f *tlsFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.files.CA, "tls-ca", "", "PEM file of the cache cluster's CA (mutual TLS between clients and workers)")
	fs.StringVar(&f.files.Cert, "tls-cert", "", "PEM certificate of this process, signed by --tls-ca")
	fs.StringVar(&f.files.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&f.insecureDev, "insecure-dev", false, "plain HTTP between clients and workers, no authentication: for a local test cluster (hoard dev) only")
}

// server is a worker's TLS configuration, nil with --insecure-dev.
func (f *tlsFlags) server() (*tls.Config, error) {
	if f.files.IsZero() {
		return nil, nil // the worker refuses this unless --insecure-dev
	}
	return f.files.ServerConfig()
}

// client is a client's TLS configuration, nil with --insecure-dev.
func (f *tlsFlags) client() (*tls.Config, error) {
	if f.files.IsZero() {
		return nil, nil
	}
	return f.files.ClientConfig()
}

// cacheFlags say which cache a command reads through: a cache cluster
// (--etcd), or a cache embedded in the process (--cache-dir, --cache-size).
type cacheFlags struct {
	dir  string
	size byteSize
	s3   s3Flags
	etcd etcdFlags
	tls  tlsFlags
}

func (f *cacheFlags) add(fs *pflag.FlagSet) {
	f.size = byteSize(10 << 30)
	fs.StringVar(&f.dir, "cache-dir", "", "embedded cache directory, without --etcd (default ~/.cache/hoard; one process at a time)")
	fs.Var(&f.size, "cache-size", "embedded cache capacity on disk")
	f.s3.add(fs)
	f.etcd.add(fs)
	f.tls.add(fs)
}

// config is the client configuration the flags describe.
func (f *cacheFlags) config() (server.ClientConfig, error) {
	dir := f.dir
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = server.DefaultCacheDir(home)
	}
	tlsConfig, err := f.tls.client()
	if err != nil {
		return server.ClientConfig{}, err
	}
	etcd, err := f.etcd.config()
	if err != nil {
		return server.ClientConfig{}, err
	}
	return server.ClientConfig{Etcd: etcd, CacheDir: dir, Capacity: int64(f.size), S3: f.s3.config(),
		TLS: tlsConfig, InsecureDev: f.tls.insecureDev, Credentials: envCredentials()}, nil
}

// envCredentials are static credentials in the environment, passed to
// workers so that they read with the user's rights (nil if none).
func envCredentials() *ufs.Credentials {
	c := ufs.Credentials{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil
	}
	return &c
}
