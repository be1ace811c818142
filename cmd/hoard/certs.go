package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/mtls"
)

func newCertsCmd() *cobra.Command {
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "certs DIR",
		Short: "Make a CA and worker and client certificates for a test cache cluster",
		Long: `Make a new CA and two certificates signed by it in DIR, for the mutual TLS
between cache clients and workers of a test or local cluster:

  ca.crt, ca.key          the CA (keep ca.key away from every node)
  worker.crt, worker.key  for 'hoard worker --tls-cert --tls-key' (name hoard-worker)
  client.crt, client.key  for clients: hoard read/load/mount/status, the mounter

Every process also gets --tls-ca DIR/ca.crt. Keys are written 0600. In
Kubernetes the Helm chart makes a CA when you bring none; production
clusters should use their own PKI (for example cert-manager).`,
		Example: `  hoard certs /etc/hoard/tls
  hoard worker --tls-ca /etc/hoard/tls/ca.crt --tls-cert /etc/hoard/tls/worker.crt \
      --tls-key /etc/hoard/tls/worker.key ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := mtls.Generate(args[0], validFor); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote a CA and worker and client certificates to %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().DurationVar(&validFor, "valid-for", 365*24*time.Hour, "validity of the worker and client certificates")
	return cmd
}
