package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/internal/buildinfo"
)

// globals are the flags every command has.
type globals struct {
	logLevel  string
	logFormat string
	debugAddr string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "hoard",
		Short: "A cluster-wide read cache that serves buckets as fast local files",
		Long: `hoard serves S3 buckets (and local directories) through a cluster-wide,
consistent-hashed read cache: each chunk of each object is fetched from the
bucket once and then served from the cache workers' local disks.

On one machine, 'hoard mount s3://bucket/prefix/ DIR' serves a bucket as a
read-only directory through a cache embedded in the process. On a cluster,
'hoard worker' runs a cache worker per node, 'hoard coordinator' the etcd
they register in ('hoard dev' runs both in one process for development),
'hoard csi' the Kubernetes CSI driver (controller and node plugin) and
'hoard mounter' the per-node process that serves its volumes' FUSE
sessions. 'hoard read', 'hoard load' and 'hoard status' read, preload and
inspect through the cache; 'hoard umount' ends a mount; 'hoard certs' makes
the mutual TLS certificates of a test cluster; 'hoard prepare-dir' (run by
the Helm chart) hands host directories to roles without root; 'hoard
version' says what this binary is.

S3 credentials come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), ~/.aws/credentials, or the
instance/pod role; they are never taken as flags, which other users can see.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.setupLogging(); err != nil {
				return err
			}
			return g.serveDebug()
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&g.debugAddr, "debug-addr", "", "serve Go profiles (/debug/pprof/, with blocking and mutex sampling on; POST /debug/cpu/start and /stop) on this loopback address, e.g. 127.0.0.1:6060")
	root.AddCommand(newWorkerCmd(), newDevCmd(), newReadCmd(), newLoadCmd(), newStatusCmd(), newMountCmd(), newUmountCmd(), newCSICmd(), newMounterCmd(), newVersionCmd(), newCoordinatorCmd(), newPrepareDirCmd(), newCertsCmd())
	return root
}

// serveDebug serves net/http/pprof on a loopback address, for profiling a
// running mount or worker.
func (g *globals) serveDebug() error {
	if g.debugAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(g.debugAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--debug-addr %q: want a loopback address such as 127.0.0.1:6060", g.debugAddr)
	}
	ln, err := net.Listen("tcp", g.debugAddr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	// Blocking and lock contention are sampled only while profiling is
	// served: events of 10 us or longer, one contended lock in 20.
	runtime.SetBlockProfileRate(10_000)
	runtime.SetMutexProfileFraction(20)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	cp := &cpuProfile{}
	mux.HandleFunc("POST /debug/cpu/start", cp.start)
	mux.HandleFunc("POST /debug/cpu/stop", cp.stop)
	go http.Serve(ln, mux)
	return nil
}

// cpuProfile is a CPU profile started and stopped on request, so that a
// benchmark can profile exactly one workload (net/http/pprof's profile runs
// for a fixed time).
type cpuProfile struct {
	mu  sync.Mutex
	buf *bytes.Buffer // nil when not profiling
}

func (p *cpuProfile) start(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf != nil {
		http.Error(w, "a CPU profile is running already", http.StatusConflict)
		return
	}
	buf := &bytes.Buffer{}
	if err := rpprof.StartCPUProfile(buf); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	p.buf = buf
}

func (p *cpuProfile) stop(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf == nil {
		http.Error(w, "no CPU profile is running", http.StatusConflict)
		return
	}
	rpprof.StopCPUProfile()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(p.buf.Bytes())
	p.buf = nil
}

func (g *globals) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	return nil
}
