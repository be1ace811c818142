package mounter

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/internal/buildinfo"
)

// Config configures a mounter.
type Config struct {
	// Etcd, if it has endpoints, is the cache cluster's membership: every
	// backend reads through the cluster Etcd.Cluster names (or the one a
	// volume names). Without endpoints the mounter runs one embedded cache
	// worker in CacheDir, bounded by Capacity, shared by every backend.
	Etcd membership.EtcdConfig
	// TLS is the client side of mutual TLS to the cluster's workers; with
	// Etcd it is required unless InsecureDev.
	TLS         *tls.Config
	InsecureDev bool
	// TLSFiles are the files TLS was loaded from, which list reports to
	// hoard status (paths only).
	TLSFiles TLSFiles
	CacheDir string
	Capacity int64
	// ListingDir keeps complete directory listings on disk, so that a
	// volume staged again (a pod restarted, the mounter upgraded) lists
	// nothing the bucket was asked for within its metadata TTL (default
	// CacheDir/listings; "-" keeps them in memory only). Listings are kept
	// apart per endpoint and credentials: a tenant reads back only what it
	// listed itself.
	ListingDir string
	// HotBytes bounds each backend's in-memory hot tier (default 128 MiB);
	// HotTotalBytes bounds all of them together (default 256 MiB), however
	// many backends volumes make.
	HotBytes, HotTotalBytes int64
	// OwnCredentialsFor are the sources that volumes without a Secret may
	// read with this process's own identity (its ambient chain); a volume
	// without a Secret of any other source is refused. Empty: none.
	OwnCredentialsFor []sources.Pattern
	// S3 holds node-wide S3 defaults: Region (when a volume names none) and
	// CABundle (extra CAs to trust). Endpoints and credentials come from
	// each volume; without credentials the process's ambient chain is used.
	S3 ufs.S3Config
	// ProbeTimeout bounds the listing that checks a bucket before it is
	// served (default 30 s); OpenTimeout bounds opening a backend (default
	// 30 s).
	ProbeTimeout, OpenTimeout time.Duration
	// DropWait is how long a drop waits for the volume's sessions to end
	// (default 5 s).
	DropWait time.Duration
	Logger   *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.HotBytes == 0 {
		c.HotBytes = 128 << 20
	}
	if c.HotTotalBytes <= 0 {
		c.HotTotalBytes = max(256<<20, c.HotBytes)
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 30 * time.Second
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 30 * time.Second
	}
	if c.DropWait <= 0 {
		c.DropWait = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.ListingDir == "-":
		c.ListingDir = ""
	case c.ListingDir == "" && c.CacheDir != "":
		c.ListingDir = filepath.Join(c.CacheDir, "listings")
	}
	return c
}

// Mounter serves staged volumes: one FUSE session per volume, one backend
// per (endpoint, bucket, credentials, cache cluster). See the package
// comment.
type Mounter struct {
	cfg      Config
	log      *slog.Logger
	embedded *server.Worker // nil in cluster mode
	hot      *client.HotBudget

	mu       sync.Mutex
	backends map[backendKey]*backend
	sessions map[uint64]*session
	nextID   uint64
	// ended is closed (and replaced) whenever a session ends.
	ended chan struct{}
}

// session is one volume served on one /dev/fuse connection.
type session struct {
	info    SessionInfo
	backend *backend
	root    *fuseview.Root
	srv     *fuse.Server
	reads   *client.ReadStats // what the volume's readers read
}

// New starts a mounter: with no etcd endpoints it opens the embedded cache
// first (its page index is read once, here). Serve it on a listener.
func New(ctx context.Context, cfg Config) (*Mounter, error) {
	cfg = cfg.withDefaults()
	m := &Mounter{
		cfg: cfg, log: cfg.Logger, hot: client.NewHotBudget(cfg.HotTotalBytes),
		backends: make(map[backendKey]*backend),
		sessions: make(map[uint64]*session),
		ended:    make(chan struct{}),
	}
	if len(cfg.Etcd.Endpoints) == 0 {
		if cfg.CacheDir == "" {
			return nil, errors.New("mounter: no --etcd cache cluster and no --cache-dir for an embedded cache")
		}
		// Volumes of many tenants share this worker's store: it opens
		// nothing on request (each backend adds its bucket, opened with
		// its volume's credentials) and authorizes every request, those
		// of volumes without a Secret (the node's identity) too.
		w, err := server.StartWorker(ctx, server.WorkerConfig{
			ID: "node-local", CacheDir: cfg.CacheDir, Capacity: cfg.Capacity, Logger: cfg.Logger,
			Policy: &sources.Policy{}, AuthorizeOwn: true,
		})
		if err != nil {
			return nil, fmt.Errorf("mounter: embedded cache: %w", err)
		}
		m.embedded = w
	}
	return m, nil
}

func (m *Mounter) cacheName(cluster string) string {
	if m.embedded != nil {
		return "embedded " + m.cfg.CacheDir
	}
	return "cluster " + cluster
}

// Close stops the embedded cache and closes idle backends. Sessions cannot
// be ended from here (the mounter never touches mounts): Close is for a
// process that exits next, which aborts every FUSE connection it serves.
func (m *Mounter) Close() error {
	if m.embedded != nil {
		return m.embedded.Close()
	}
	return nil
}

// Serve accepts requests on l until ctx is done, then closes l. Requests in
// flight are abandoned with the process.
func (m *Mounter) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	m.log.Info("mounter: serving", "socket", l.Addr().String(), "cache", m.cacheName(m.cfg.Etcd.Cluster),
		"version", buildinfo.Version)
	// EMFILE and friends: back off rather than spin (5 ms doubling to 1 s).
	delay := &backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			m.log.Warn("mounter: accept", "error", err)
			t := time.NewTimer(delay.NextBackOff())
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		delay.Reset()
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		go m.handle(ctx, uc)
	}
}

// handle answers one request on its own connection.
func (m *Mounter) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := readFrame(conn, &req); err != nil {
		m.log.Warn("mounter: bad request", "error", err)
		return
	}
	var resp *Response
	switch req.Op {
	case OpServe:
		start := time.Now()
		defer func() { m.logServeFailure(req, resp, start) }()
		// The descriptor follows the request; the reply may take until
		// the bucket probe and the backend's opening are done.
		conn.SetDeadline(time.Now().Add(m.cfg.OpenTimeout + m.cfg.ProbeTimeout + 30*time.Second))
		f, meta, err := fusefd.Receive(conn)
		switch {
		case err != nil:
			resp = errResponse(&Error{Code: codes.Unavailable, Msg: "receiving the /dev/fuse descriptor: " + err.Error()})
		case string(meta) != req.VolumeID:
			f.Close()
			resp = errResponse(&Error{Code: codes.Internal, Msg: fmt.Sprintf("descriptor sent for volume %q, request is for %q", meta, req.VolumeID)})
		default:
			resp = m.serve(ctx, req, f)
		}
	case OpList:
		resp = m.list()
	case OpPing:
		resp = &Response{OK: true, Version: buildinfo.Version, PID: os.Getpid()}
	case OpDrop:
		resp = m.drop(ctx, req.VolumeID)
	default:
		resp = errResponse(&Error{Code: codes.InvalidArgument, Msg: fmt.Sprintf("unknown op %q", req.Op)})
	}
	if err := writeFrame(conn, resp); err != nil {
		m.log.Warn("mounter: writing the answer", "op", req.Op, "volume", req.VolumeID, "error", err)
	}
}

// serve serves req's volume on f, the /dev/fuse descriptor of its staging
// mount. f is consumed in every case: closed on failure (the staging mount
// is then Broken and the plugin unmounts it), owned by go-fuse on success.
func (m *Mounter) serve(ctx context.Context, req Request, f *os.File) *Response {
	start := time.Now()
	consumed := false
	defer func() {
		if !consumed {
			f.Close()
		}
	}()
	if err := checkServe(req); err != nil {
		return errResponse(err)
	}
	cluster := ""
	if m.embedded == nil {
		cluster = req.CacheCluster
		if cluster == "" {
			cluster = m.cfg.Etcd.Cluster
		}
	} else if req.CacheCluster != "" {
		return errResponse(&Error{Code: codes.FailedPrecondition, Msg: fmt.Sprintf(
			"the volume reads through cache cluster %q, but this node's mounter has no --etcd (it runs an embedded cache)", req.CacheCluster)})
	}
	src := req.Source
	key := backendKey{
		endpoint: src.Endpoint, region: src.Region, pathStyle: src.PathStyle, insecure: src.Insecure,
		bucket: src.Bucket, creds: req.Credentials.ID(), cluster: cluster,
	}
	b, err := m.acquire(ctx, key, req)
	if err != nil {
		return errResponse(err)
	}
	keep := false
	defer func() {
		if !keep {
			m.release(b)
		}
	}()
	prefix := src.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if err := probe(ctx, b.bucket, prefix, m.cfg.ProbeTimeout); err != nil {
		if !req.Restore {
			return errResponse(err)
		}
		m.log.Warn("mounter: restoring a volume whose bucket cannot be listed now; serving it anyway",
			"volume", req.VolumeID, "error", err)
	}
	opt := viewOptions(req.View)
	opt.Logger = m.log.With("volume", req.VolumeID)
	if m.cfg.ListingDir != "" {
		opt.ListingDir, opt.ListingScope = m.cfg.ListingDir, listingScope(src, req.Credentials)
	}
	bucket := b.bucket
	if b.shared && opt.MetadataTTL > 0 {
		bucket = b.reader.SharedListing(bucket, opt.MetadataTTL)
	}
	reads := &client.ReadStats{}
	root, err := fuseview.NewRoot(bucket, prefix, b.reader.Counted(reads), opt)
	if err != nil {
		return errResponse(&Error{Code: codes.InvalidArgument, Msg: err.Error()})
	}
	consumed = true
	p, err := fusefd.ServePath(f)
	if err != nil {
		return errResponse(err)
	}
	srv, err := fuseview.Mount(p, root, fuseview.MountOptions{})
	if err != nil {
		root.Close()
		return errResponse(&Error{Code: codes.Internal, Msg: "starting the FUSE session: " + err.Error()})
	}
	keep = true
	s := &session{backend: b, root: root, srv: srv, reads: reads}
	m.mu.Lock()
	m.nextID++
	s.info = SessionInfo{
		ID: m.nextID, VolumeID: req.VolumeID, StagingPath: req.StagingPath, Device: req.Device,
		Source: root.Name(), Backend: b.id, Started: time.Now(),
	}
	m.sessions[s.info.ID] = s
	m.mu.Unlock()
	m.log.Info("mounter: serving volume", "volume", req.VolumeID, "session", s.info.ID, "source", root.Name(),
		"backend", b.id, "device", req.Device, "staging_path", req.StagingPath, "restore", req.Restore,
		"duration", time.Since(start).Round(time.Millisecond))
	go m.wait(s)
	info := s.info
	return &Response{OK: true, Session: &info}
}

// wait runs while s is served: its FUSE connection ends when the staging
// mount is unmounted (and the last file open on it closed) or aborted.
func (m *Mounter) wait(s *session) {
	s.srv.Wait()
	s.root.Close()
	m.mu.Lock()
	delete(m.sessions, s.info.ID)
	close(m.ended)
	m.ended = make(chan struct{})
	m.mu.Unlock()
	t := s.traffic()
	m.log.Info("mounter: session ended", "volume", s.info.VolumeID, "session", s.info.ID, "source", s.info.Source,
		"served_for", time.Since(s.info.Started).Round(time.Second),
		"read_memory_bytes", t.ReadBytes[client.SourceMemory.String()],
		"read_worker_bytes", t.ReadBytes[client.SourceWorker.String()],
		"read_bucket_bytes", t.ReadBytes[client.SourceBucket.String()],
		"bypassed_bytes", t.BypassedBytes, "errors", t.Errors)
	m.release(s.backend)
}

// drop waits (DropWait at most) until volumeID has no session left, and
// reports how many remain.
func (m *Mounter) drop(ctx context.Context, volumeID string) *Response {
	if volumeID == "" {
		return errResponse(&Error{Code: codes.InvalidArgument, Msg: "drop: volume_id is required"})
	}
	deadline := time.NewTimer(m.cfg.DropWait)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		n := 0
		for _, s := range m.sessions {
			if s.info.VolumeID == volumeID {
				n++
			}
		}
		ended := m.ended
		m.mu.Unlock()
		if n == 0 {
			return &Response{OK: true}
		}
		select {
		case <-ended:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		m.log.Info("mounter: dropped volume still has sessions (files open on a lazily unmounted mount?)",
			"volume", volumeID, "sessions", n)
		return &Response{OK: true, Remaining: n}
	}
}

// list describes every session and backend, oldest first.
func (m *Mounter) list() *Response {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &Response{OK: true, Version: buildinfo.Version, PID: os.Getpid(),
		Sessions: []SessionInfo{}, Backends: []BackendInfo{}, Cache: &CacheInfo{}}
	if m.embedded != nil {
		st := m.embedded.Worker.Status()
		resp.Cache.Embedded = &st
	} else {
		resp.Cache.Etcd, resp.Cache.Cluster = m.cfg.Etcd.Endpoints, m.cfg.Etcd.Cluster
		if m.cfg.TLSFiles != (TLSFiles{}) {
			f := m.cfg.TLSFiles
			resp.Cache.TLSFiles = &f
		}
	}
	for _, s := range m.sessions {
		info := s.info
		info.Traffic = s.traffic()
		resp.Sessions = append(resp.Sessions, info)
	}
	slices.SortFunc(resp.Sessions, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, b := range m.backends {
		resp.Backends = append(resp.Backends, BackendInfo{
			ID: b.id, Bucket: b.key.bucket, Endpoint: b.key.endpoint, Cluster: b.key.cluster,
			Refs: b.refs, Created: b.created,
		})
	}
	slices.SortFunc(resp.Backends, func(a, b BackendInfo) int { return a.Created.Compare(b.Created) })
	return resp
}

// logServeFailure logs why a volume could not be served (the plugin turns
// the same message into its CSI error).
func (m *Mounter) logServeFailure(req Request, resp *Response, start time.Time) {
	if resp == nil || resp.Error == "" {
		return
	}
	attrs := []any{"volume", req.VolumeID, "staging_path", req.StagingPath, "restore", req.Restore,
		"code", codes.Code(resp.Code).String(), "error", resp.Error, "duration", time.Since(start).Round(time.Millisecond)}
	if req.Source != nil {
		attrs = append(attrs, "bucket", req.Source.Bucket, "prefix", req.Source.Prefix, "endpoint", req.Source.Endpoint)
	}
	m.log.Warn("mounter: serving volume failed", attrs...)
}

// traffic is what s's readers read so far.
func (s *session) traffic() *Traffic {
	t := &Traffic{ReadBytes: map[string]int64{}, BypassedBytes: s.reads.Bypassed.Load(),
		Failovers: s.reads.Failovers.Load(), Errors: s.root.Stats().Errors.Load()}
	for src := client.Source(0); src < client.NumSources; src++ {
		t.ReadBytes[src.String()] = s.reads.Bytes(src)
	}
	if at, cause := s.reads.LastBypass(); !at.IsZero() {
		t.LastBypass, t.BypassCause = &at, cause
	}
	return t
}

// Collectors are the mounter's metrics: every served volume's, and the
// embedded cache worker's when it runs one.
func (m *Mounter) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{fuseview.NewCollector(m.volumes)}
	if m.embedded != nil {
		cs = append(cs, server.NewWorkerCollector(m.embedded))
	}
	return cs
}

// volumes lists the served volumes for metrics.
func (m *Mounter) volumes() []fuseview.Volume {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := make([]fuseview.Volume, 0, len(m.sessions))
	for _, s := range m.sessions {
		vs = append(vs, fuseview.Volume{Name: s.info.VolumeID, View: s.root.Stats(), Reads: s.reads})
	}
	return vs
}

// checkServe validates what the plugin sent.
func checkServe(req Request) error {
	switch {
	case req.VolumeID == "":
		return &Error{Code: codes.InvalidArgument, Msg: "serve: volume_id is required"}
	case req.Source == nil || req.Source.Bucket == "":
		return &Error{Code: codes.InvalidArgument, Msg: "serve: source.bucket is required"}
	case req.View.FileMode > 0o777 || req.View.DirMode > 0o777:
		return &Error{Code: codes.InvalidArgument, Msg: "serve: fileMode and dirMode are permission bits (at most 0777)"}
	case req.View.MetadataTTL != nil && *req.View.MetadataTTL < 0:
		return &Error{Code: codes.InvalidArgument, Msg: "serve: metadataTTL must not be negative"}
	}
	return nil
}

// listingScope tells apart the callers whose listings kept on disk must not
// be shared: a listing is read back only for the same endpoint and the same
// credentials (access key and secret, hashed in full; the session token,
// which rotates, is left out: it does not change whose listing it is).
// Volumes without credentials read with the mounter's own identity and
// share one scope per endpoint.
func listingScope(src *Source, creds *Credentials) string {
	h := sha256.New()
	fields := []string{src.Endpoint, src.Region, "ambient"}
	if creds != nil {
		fields = []string{src.Endpoint, src.Region, "static", creds.AccessKeyID, creds.SecretAccessKey}
	}
	for _, f := range fields {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// viewOptions turns the wire form into fuseview's, where "cache nothing" is
// a negative TTL rather than 0.
func viewOptions(v View) fuseview.Options {
	var o fuseview.Options
	if v.UID != nil {
		o.UID = *v.UID
	}
	if v.GID != nil {
		o.GID = *v.GID
	}
	o.FileMode, o.DirMode = os.FileMode(v.FileMode), os.FileMode(v.DirMode)
	if v.MetadataTTL != nil {
		switch ttl := *v.MetadataTTL; {
		case ttl == 0:
			o.MetadataTTL, o.NegativeTTL = -1, -1
		case ttl < fuseview.DefaultNegativeTTL:
			o.MetadataTTL, o.NegativeTTL = ttl, ttl
		default:
			o.MetadataTTL = ttl
		}
	}
	return o
}
