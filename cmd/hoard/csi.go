package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"hoard.dev/hoard/controller"
	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/driver/registration"
	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/node"
	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/volume"
)

// csiFlags configure `hoard csi`.
type csiFlags struct {
	mode     string
	endpoint string
	nodeID   string

	acceptSingleNodeWriter bool
	caBundle               string
	volumeIDKeyFile        string

	// Node mode.
	mounterSocket    string
	stateDir         string
	restoreInterval  time.Duration
	registrationPath string
	registryDir      string
	kubeletDir       string
	inlineAllow      []string

	health opsFlag
}

func newCSICmd() *cobra.Command {
	f := &csiFlags{}
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "Run the CSI driver (csi.hoard.dev): controller, node, or both",
		Long: `Run hoard's CSI driver on --endpoint. --mode controller serves the Identity
and Controller services (run it with the external-provisioner sidecar),
--mode node the Identity and Node services (one per node, as a DaemonSet),
--mode all all three.

The controller provisions volumes backed by S3 buckets from StorageClass
parameters (bucket, prefix, endpoint, region, pathStyle, insecure,
provisioning, deletePolicy, uid, gid, fileMode, dirMode, metadataTTL,
cacheCluster) and takes S3 credentials only from the provisioner Secret
(keys accessKeyID, secretAccessKey, sessionToken) or the ambient chain of its
pod. See 'go doc hoard.dev/hoard/controller' for the details.

The node service mounts each staged volume itself (it needs root and
/dev/fuse) and hands the FUSE connection to the node's mounter ('hoard
mounter', --mounter-socket), which serves it: restarting or upgrading the
node plugin leaves every mount alone. Volumes are recorded in --state-dir
(tmpfs: the records hold node-stage secrets), from which a restarted plugin
takes them over and its restore loop mounts them again when the mounter
restarts. With --kubelet-registration-path the plugin registers itself with
the kubelet (no node-driver-registrar sidecar needed). See 'go doc
hoard.dev/hoard/node' for what pods see when either process restarts.`,
		Example: `  hoard csi --mode controller --endpoint unix:///csi/csi.sock
  hoard csi --mode node --node-id "$KUBE_NODE_NAME" --endpoint unix:///csi/csi.sock \
      --kubelet-registration-path /var/lib/kubelet/plugins/csi.hoard.dev/csi.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := processMetrics("csi-" + f.mode)
			if err != nil {
				return err
			}
			svc, err := f.services(cmd.Context(), reg)
			if err != nil {
				return err
			}
			if err := f.health.serve(cmd.Context(), reg, probe(svc)); err != nil {
				return err
			}
			return driver.Serve(cmd.Context(), f.endpoint, svc)
		},
	}
	endpoint := os.Getenv("CSI_ENDPOINT")
	if endpoint == "" {
		endpoint = "unix:///csi/csi.sock"
	}
	fs := cmd.Flags()
	fs.StringVar(&f.mode, "mode", "", "services to run: controller, node or all (required)")
	fs.StringVar(&f.endpoint, "endpoint", endpoint, "CSI endpoint: unix:///path.sock, or tcp://127.0.0.1:port for tests ($CSI_ENDPOINT when set)")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's ID, as NodeGetInfo reports it (node mode; usually the Kubernetes node name)")
	fs.BoolVar(&f.acceptSingleNodeWriter, "accept-single-node-writer", false,
		"also accept SINGLE_NODE_WRITER (ReadWriteOnce) claims (controller) and stages (node); the volumes stay read-only")
	fs.StringVar(&f.caBundle, "s3-ca-bundle", "", "PEM file of extra CAs to trust for S3 endpoints (default: $AWS_CA_BUNDLE)")
	fs.StringVar(&f.volumeIDKeyFile, "volume-id-key-file", "",
		"controller: file of the key(s) that sign volume IDs (from a Secret; one key of at least 32 bytes per line, the first signs); required for deletePolicy=delete")
	fs.StringVar(&f.mounterSocket, "mounter-socket", mounter.DefaultSocket, "node: the mounter's socket")
	fs.StringVar(&f.stateDir, "state-dir", node.DefaultStateDir, "node: where staged volumes are recorded (keep it on tmpfs: records hold node-stage secrets)")
	fs.DurationVar(&f.restoreInterval, "restore-interval", node.DefaultRestoreInterval, "node: how often to look for volumes whose FUSE server is gone")
	fs.StringVar(&f.registrationPath, "kubelet-registration-path", "",
		"node: the CSI socket's path as the kubelet sees it; when set, register with the kubelet's plugin watcher")
	f.health.addHealth(fs, "what Probe checks", ":9808")
	fs.StringVar(&f.kubeletDir, "kubelet-dir", node.DefaultKubeletDir,
		"node: the kubelet's root directory; staging and target paths outside it are refused")
	fs.StringSliceVar(&f.inlineAllow, "inline-volume-allow", nil,
		"node: allow CSI inline ephemeral volumes of ENDPOINT/BUCKET (repeatable; ENDPOINT host[:port], http://host[:port] or aws; BUCKET a name or *); "+
			"none: inline volumes are off. They always need a nodePublishSecretRef")
	fs.StringVar(&f.registryDir, "plugin-registration-dir", registration.DefaultRegistryDir, "node: the kubelet's plugin watcher directory")
	cmd.MarkFlagRequired("mode")
	return cmd
}

// services builds the services the mode asks for and starts what they run
// in the background (the node's restore loop and kubelet registration) for
// as long as ctx lasts. Each service is optional in driver.Services; adding
// one is adding its builder here.
func (f *csiFlags) services(ctx context.Context, reg *prometheus.Registry) (driver.Services, error) {
	svc := driver.Services{Logger: slog.Default(), Metrics: reg}
	identity := &driver.Identity{Logger: svc.Logger}
	svc.Identity = identity
	var controllerMode, nodeMode bool
	switch f.mode {
	case "controller":
		controllerMode = true
	case "node":
		nodeMode = true
	case "all":
		controllerMode, nodeMode = true, true
	default:
		return driver.Services{}, fmt.Errorf("--mode %q: want controller, node or all", f.mode)
	}
	if controllerMode {
		keys, err := f.idKeys()
		if err != nil {
			return driver.Services{}, err
		}
		svc.Controller = controller.New(controller.Config{
			AcceptSingleNodeWriter: f.acceptSingleNodeWriter,
			CABundle:               f.caBundle,
			IDKeys:                 keys,
			Logger:                 svc.Logger,
		})
	}
	if nodeMode {
		ns, health, err := f.nodeService(ctx, svc.Logger)
		if err != nil {
			return driver.Services{}, err
		}
		svc.Node, identity.Health = ns, health
		reg.MustRegister(metrics.NewGaugeFunc(metrics.CSINodeStagedVolumes,
			func() float64 { return float64(ns.StagedVolumes()) }))
	}
	return svc, nil
}

// nodeService builds the Node service, starts its restore loop and, with
// --kubelet-registration-path, the kubelet registration, and returns the
// health check Probe runs: the mounter answers, and the registration socket
// is in place.
func (f *csiFlags) nodeService(ctx context.Context, log *slog.Logger) (*node.Server, func(context.Context) error, error) {
	if f.nodeID == "" {
		return nil, nil, errors.New("--node-id is required in node mode (in Kubernetes, the node name: --node-id=$(KUBE_NODE_NAME))")
	}
	var inline []node.InlineRule
	for _, s := range f.inlineAllow {
		r, err := node.ParseInlineRule(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--inline-volume-allow: %w", err)
		}
		inline = append(inline, r)
	}
	ns, err := node.New(node.Config{
		NodeID: f.nodeID, StateDir: f.stateDir, MounterSocket: f.mounterSocket,
		AcceptSingleNodeWriter: f.acceptSingleNodeWriter, RestoreInterval: f.restoreInterval,
		KubeletDir: f.kubeletDir, InlineAllow: inline, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	go ns.Run(ctx)
	var reg *registration.Server
	if f.registrationPath != "" {
		reg, err = registration.Serve(ctx, registration.Config{
			DriverName: driver.DriverName, Endpoint: f.registrationPath, RegistryDir: f.registryDir, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	health := func(ctx context.Context) error {
		if reg != nil {
			if err := reg.Healthy(); err != nil {
				return err
			}
		}
		return ns.Health(ctx)
	}
	if _, err := os.Stat(f.mounterSocket); err != nil {
		log.Warn("the mounter's socket is missing; volumes cannot be staged until 'hoard mounter' runs",
			"socket", f.mounterSocket, "error", err)
	}
	return ns, health, nil
}

// probe is the readiness check of --health-addr's /readyz: what the CSI Probe call
// checks (the node: its mounter answers and the kubelet registration is in
// place; the controller: nothing beyond serving).
func probe(svc driver.Services) func(context.Context) error {
	return func(ctx context.Context) error {
		if id, ok := svc.Identity.(*driver.Identity); ok && id.Health != nil {
			return id.Health(ctx)
		}
		return nil
	}
}

// idKeys reads --volume-id-key-file; without it the controller refuses
// deletePolicy=delete volumes (and says so in the log once).
func (f *csiFlags) idKeys() (*volume.IDKeys, error) {
	if f.volumeIDKeyFile == "" {
		slog.Warn("no --volume-id-key-file: volumes with deletePolicy=delete cannot be created or deleted")
		return nil, nil
	}
	b, err := os.ReadFile(f.volumeIDKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		// An optional Secret volume that was not created.
		slog.Warn("--volume-id-key-file does not exist: volumes with deletePolicy=delete cannot be created or deleted",
			"file", f.volumeIDKeyFile)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--volume-id-key-file: %w", err)
	}
	keys, err := volume.ParseIDKeys(b)
	if err != nil {
		return nil, fmt.Errorf("--volume-id-key-file %s: %w", f.volumeIDKeyFile, err)
	}
	return keys, nil
}
