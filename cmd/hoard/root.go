package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/internal/buildinfo"
)

// globals are the flags every command has.
type globals struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "hoard",
		Short: "A cluster-wide read cache that serves buckets as fast local files",
		Long: `hoard serves S3 buckets (and local directories) through a cluster-wide,
consistent-hashed read cache: each chunk of each object is fetched from the
bucket once and then served from the cache workers' local disks.

Start a local cache cluster with 'hoard dev', run workers with 'hoard worker',
and read through the cache with 'hoard read'.

S3 credentials come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), ~/.aws/credentials, or the
instance/pod role; they are never taken as flags, which other users can see.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setupLogging()
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newWorkerCmd(), newDevCmd(), newReadCmd(), newLoadCmd(), newStatusCmd(), newMountCmd(), newUmountCmd(), newCSICmd())
	return root
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
