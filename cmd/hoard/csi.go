package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/spf13/cobra"

	"hoard.dev/hoard/controller"
	"hoard.dev/hoard/driver"
)

// csiFlags configure `hoard csi`.
type csiFlags struct {
	mode     string
	endpoint string
	nodeID   string

	acceptSingleNodeWriter bool
	caBundle               string
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
pod. See 'go doc hoard.dev/hoard/controller' for the details.`,
		Example: `  hoard csi --mode controller --endpoint unix:///csi/csi.sock`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := f.services()
			if err != nil {
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
	fs.StringVar(&f.endpoint, "endpoint", endpoint, "CSI endpoint: unix:///path.sock, or tcp://127.0.0.1:port for tests (default: $CSI_ENDPOINT)")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's ID, as NodeGetInfo reports it (node mode; usually the Kubernetes node name)")
	fs.BoolVar(&f.acceptSingleNodeWriter, "accept-single-node-writer", false,
		"controller: also accept SINGLE_NODE_WRITER (ReadWriteOnce) claims; the volumes stay read-only")
	fs.StringVar(&f.caBundle, "s3-ca-bundle", "", "PEM file of extra CAs to trust for S3 endpoints (default: $AWS_CA_BUNDLE)")
	cmd.MarkFlagRequired("mode")
	return cmd
}

// services builds the services the mode asks for. Each service is optional
// in driver.Services; adding one is adding its builder here.
func (f *csiFlags) services() (driver.Services, error) {
	svc := driver.Services{Logger: slog.Default()}
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
		svc.Controller = controller.New(controller.Config{
			AcceptSingleNodeWriter: f.acceptSingleNodeWriter,
			CABundle:               f.caBundle,
			Logger:                 svc.Logger,
		})
	}
	if nodeMode {
		node, health, err := f.nodeService()
		if err != nil {
			return driver.Services{}, err
		}
		svc.Node, identity.Health = node, health
	}
	return svc, nil
}

// errNodeNotImplemented is what node mode says until the node service lands.
var errNodeNotImplemented = errors.New("--mode node/all: the CSI node service is not implemented yet; run --mode controller")

// nodeService builds the Node service and the health check its Probe runs
// (the mounter and the cache client must be usable).
func (f *csiFlags) nodeService() (node csi.NodeServer, health func(context.Context) error, err error) {
	return nil, nil, errNodeNotImplemented
}
