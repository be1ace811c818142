package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/worker"
)

func newStatusCmd() *cobra.Command {
	var etcd etcdFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cache cluster's workers, their fill and hit ratios",
		Long: `Show every worker registered in the cache cluster (--etcd, --cluster): whether
it is alive, its address, how full its page store is, and its page hit ratio.`,
		Example: `  hoard status --etcd http://127.0.0.1:2379`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := etcd.config()
			if len(cfg.Endpoints) == 0 {
				return errors.New("--etcd is required: status shows a cache cluster")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			w, err := membership.Watch(ctx, cfg)
			if err != nil {
				return fmt.Errorf("read the cluster from etcd: %w", err)
			}
			defer w.Close()
			view := w.Current()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKER\tADDRESS\tALIVE\tUSED\tCAPACITY\tPAGES\tHIT RATIO\tFETCHED\tERRORS")
			var used, budget, hits, misses int64
			for _, m := range view.Registered {
				st, err := workerStatus(ctx, m)
				if err != nil || !view.Alive[m.ID] {
					fmt.Fprintf(tw, "%s\t%s\t%v\t-\t%s\t-\t-\t-\t%v\n", m.ID, m.Addr, view.Alive[m.ID],
						humanize.IBytes(uint64(m.Capacity)), errOrDash(err))
					continue
				}
				used, budget, hits, misses = used+st.UsedBytes, budget+st.BudgetBytes, hits+st.PageHits, misses+st.PageMisses
				fmt.Fprintf(tw, "%s\t%s\ttrue\t%s\t%s\t%d\t%s\t%s\t%d\n", m.ID, m.Addr,
					humanize.IBytes(uint64(st.UsedBytes)), humanize.IBytes(uint64(st.BudgetBytes)), st.Pages,
					ratio(st.PageHits, st.PageMisses), humanize.IBytes(uint64(st.FetchedBytes)), st.FetchErrors+st.Corrupt)
			}
			tw.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "\n%d workers registered, %d alive; %s of %s used; hit ratio %s\n",
				len(view.Registered), len(view.Alive), humanize.IBytes(uint64(used)), humanize.IBytes(uint64(budget)),
				ratio(hits, misses))
			return nil
		},
	}
	etcd.add(cmd.Flags())
	return cmd
}

func workerStatus(ctx context.Context, m membership.Member) (worker.Status, error) {
	var st worker.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Addr+worker.StatusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func ratio(hits, misses int64) string {
	if hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(hits)/float64(hits+misses))
}

func errOrDash(err error) string {
	if err == nil {
		return "-"
	}
	return "unreachable"
}
