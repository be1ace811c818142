// Command hoard is the one binary of hoard, every role a subcommand: the
// FUSE mount (mount, umount), the cache cluster (worker, coordinator, dev),
// the CSI driver (csi) and its per-node FUSE server (mounter), and tools
// (read, load, status, version). Each subcommand only parses flags and wires
// packages together; see docs/architecture.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hoard:", err)
		os.Exit(1)
	}
}
