package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
)

func newReadCmd() *cobra.Command {
	var (
		cache cacheFlags
		out   string
	)
	cmd := &cobra.Command{
		Use:   "read OBJECT...",
		Short: "Read objects through the cache (to stdout, a file, or nowhere to measure)",
		Long: `Read whole objects through the cache. OBJECT is s3://bucket/key or
file:///dir/file. With --etcd the read goes through that cache cluster;
without, through a cache embedded in this process, kept in --cache-dir.
A summary (bytes, rate, where the pages came from) goes to stderr.`,
		Example: `  hoard read --etcd http://127.0.0.1:2379 s3://datasets/train/shard-0000.tar --out /dev/null
  hoard read file:///data/model.bin > model.bin`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := cache.config()
			if err != nil {
				return err
			}
			c, err := server.NewClient(ctx, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			var w io.Writer = cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer f.Close()
				w = f
			}
			start := time.Now()
			var total int64
			for _, a := range args {
				n, err := readObject(ctx, c, cache.s3, a, w)
				total += n
				if err != nil {
					return err
				}
			}
			d := time.Since(start)
			st := c.Stats()
			fmt.Fprintf(cmd.ErrOrStderr(), "read %s in %s (%s/s); pages: %d hot, %d local, %d remote, %d failovers, %d from the bucket\n",
				humanize.IBytes(uint64(total)), d.Round(time.Millisecond), humanize.IBytes(uint64(float64(total)/d.Seconds())),
				st.HotHits.Load(), st.LocalReads.Load(), st.RemoteReads.Load(), st.Failovers.Load(), st.BucketReads.Load())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&out, "out", "o", "", "write to this file instead of stdout")
	cache.add(fs)
	return cmd
}

// splitObject turns s3://bucket/key or file:///dir/file into a source and key.
func splitObject(uri string) (ufs.Location, string, error) {
	if strings.HasPrefix(uri, "file://") {
		dir, file := path.Split(strings.TrimPrefix(uri, "file://"))
		loc, err := ufs.ParseSource("file://" + dir)
		if err != nil || file == "" {
			return ufs.Location{}, "", fmt.Errorf("object %s: want file:///dir/file", uri)
		}
		return loc, file, nil
	}
	loc, err := ufs.ParseSource(uri)
	if err != nil {
		return ufs.Location{}, "", err
	}
	key := strings.TrimSuffix(loc.Prefix, "/")
	if loc.Scheme != "s3" || key == "" {
		return ufs.Location{}, "", fmt.Errorf("object %s: want s3://bucket/key", uri)
	}
	loc.Prefix = ""
	return loc, key, nil
}

func readObject(ctx context.Context, c *server.Client, s3 s3Flags, uri string, w io.Writer) (int64, error) {
	loc, key, err := splitObject(uri)
	if err != nil {
		return 0, err
	}
	u, err := c.Open(ctx, loc, s3.config())
	if err != nil {
		return 0, err
	}
	obj, err := u.Stat(ctx, key)
	if err != nil {
		return 0, err
	}
	r := c.NewReader(client.Object{Source: u.Source(), Key: key, Version: obj.Version, Size: obj.Size})
	buf := make([]byte, 4<<20)
	var off int64
	for off < obj.Size {
		n, err := r.ReadAt(ctx, buf, off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return off, fmt.Errorf("write: %w", werr)
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, fmt.Errorf("read %s at %d: %w", uri, off, err)
		}
	}
	return off, nil
}
