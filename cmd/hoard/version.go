package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print hoard's version, the commit it was built from, and the Go version",
		Long: `Print the version of this binary: its Git tag (make build stamps
'git describe --tags'; 'go install ...@vX.Y.Z' gives the module version;
otherwise "dev"), the commit and its time when the Go toolchain recorded
them, whether the tree had uncommitted changes, and the Go version and
platform. The CSI driver reports the same version in GetPluginInfo, the
mounter in 'ping', workers in the hoard_build_info metric.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), in)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
