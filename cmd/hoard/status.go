package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"hoard.dev/hoard/internal/status"
)

func newStatusCmd() *cobra.Command {
	var (
		etcd   etcdFlags
		tlsf   tlsFlags
		socket string
		output string
		window time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cache cluster's workers, this node's volumes, and whether the cache is caching",
		Long: `Show the state of the cache cluster and of this node:

  - the coordinator (etcd) and whether it has a leader;
  - every registered worker: alive, reachable, fill, page hit ratio, and its
    share of the ring (the fraction of chunks it owns);
  - the volumes the node's mounter serves (--mounter-socket, found by
    default where the mounter puts it): bytes read by source (memory,
    worker, bucket) and bytes that bypassed the cache, with the cause.

The verdict is ok, degraded (a worker down or unreachable, the coordinator
unhealthy, the mounter not answering, or a volume that bypassed the cache
within --bypass-window) or down (no live worker: every read goes to the
buckets). Without --etcd the cluster is the one the mounter reads through.

In Kubernetes, from the mounter's pod of a node:
  kubectl -n hoard-system exec ds/hoard-mounter -- hoard status -o json

There it needs no flag: the mounter names the cluster it reads through and
the client certificate it uses for the workers' mutual TLS (--tls-* override it).`,
		Example: `  hoard status --etcd http://127.0.0.1:2379
  hoard status -o json | jq '.state, .problems'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			ecfg, err := etcd.config()
			if err != nil {
				return err
			}
			opt := status.Options{Etcd: ecfg, MounterSocket: socket, BypassWindow: window}
			if len(opt.Etcd.Endpoints) == 0 && opt.MounterSocket == "" {
				return errors.New("nothing to report on: give --etcd, or run where the mounter's socket is (--mounter-socket)")
			}
			tlsConfig, err := tlsf.client()
			if err != nil {
				return err
			}
			opt.TLS = tlsConfig
			r := status.Gather(cmd.Context(), opt)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printStatus(cmd.OutOrStdout(), r)
			return nil
		},
	}
	fs := cmd.Flags()
	etcd.add(fs)
	tlsf.add(fs)
	fs.StringVar(&socket, "mounter-socket", status.DefaultSocket(), "the node mounter's socket (\"\" to skip; default: the mounter's, if it exists)")
	fs.StringVarP(&output, "output", "o", "text", "output format: text or json")
	fs.DurationVar(&window, "bypass-window", 5*time.Minute, "a volume that bypassed the cache this recently makes the state degraded")
	return cmd
}

// printStatus writes r as tables.
func printStatus(w io.Writer, r *status.Report) {
	fmt.Fprintf(w, "STATE %s\n", strings.ToUpper(r.State))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	if c := r.Coordinator; c != nil {
		fmt.Fprintf(w, "\nCOORDINATOR (cluster %q)\n", c.Cluster)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tHEALTHY\tLEADER\tDB\tERROR")
		for _, ep := range c.Endpoints {
			fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\n", ep.Endpoint, ep.Healthy, ep.HasLeader,
				humanize.IBytes(uint64(ep.DBBytes)), dash(ep.Error))
		}
		tw.Flush()
	}
	if len(r.Workers) > 0 {
		fmt.Fprintln(w, "\nWORKERS")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tADDRESS\tALIVE\tRING SHARE\tUSED\tCAPACITY\tHIT RATIO\tFETCHED\tERRORS")
		for _, wk := range r.Workers {
			hit := "-"
			if wk.HitRatio != nil {
				hit = fmt.Sprintf("%.1f%%", 100**wk.HitRatio)
			}
			if !wk.Reachable {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%.1f%%\t-\t%s\t-\t-\t%s\n", wk.ID, wk.Addr, wk.Alive, 100*wk.RingShare,
					humanize.IBytes(uint64(wk.CapacityBytes)), wk.Error)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%.1f%%\t%s\t%s\t%s\t%s\t%d\n", wk.ID, wk.Addr, wk.Alive, 100*wk.RingShare,
				humanize.IBytes(uint64(wk.UsedBytes)), humanize.IBytes(uint64(wk.CapacityBytes)), hit,
				humanize.IBytes(uint64(wk.FetchedBytes)), wk.Errors)
		}
		tw.Flush()
		fmt.Fprintln(w, workersSummary(r.Workers))
	}
	if n := r.Node; n != nil {
		fmt.Fprintf(w, "\nNODE (mounter %s, %s)\n", n.MounterSocket, n.Cache)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VOLUME\tSOURCE\tMEMORY\tWORKER\tBUCKET\tBYPASSED\tERRORS")
		for _, v := range n.Volumes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", v.VolumeID, v.Source,
				humanize.IBytes(uint64(v.ReadBytes["memory"])), humanize.IBytes(uint64(v.ReadBytes["worker"])),
				humanize.IBytes(uint64(v.ReadBytes["bucket"])), humanize.IBytes(uint64(v.BypassedBytes)), v.Errors)
		}
		tw.Flush()
	}
}

// workersSummary is one line: how many workers are alive, how full the
// cache is, and its hit ratio.
func workersSummary(ws []status.Worker) string {
	var alive int
	var used, capacity int64
	var hits, misses int64
	for _, w := range ws {
		if w.Alive {
			alive++
		}
		used, capacity = used+w.UsedBytes, capacity+w.CapacityBytes
		hits, misses = hits+w.PageHits, misses+w.PageMisses
	}
	hit := "-"
	if hits+misses > 0 {
		hit = fmt.Sprintf("%.1f%%", 100*float64(hits)/float64(hits+misses))
	}
	return fmt.Sprintf("%d workers registered, %d alive; %s of %s used; hit ratio %s",
		len(ws), alive, humanize.IBytes(uint64(used)), humanize.IBytes(uint64(capacity)), hit)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
