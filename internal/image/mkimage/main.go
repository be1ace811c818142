// Command mkimage packs a root filesystem into a docker-archive image
// tarball (what `ctr images import` and `docker load` read), with the config
// taken from a Dockerfile's final stage (--dockerfile) or from flags. See
// package hoard.dev/hoard/internal/image.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"hoard.dev/hoard/internal/image"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		rootfs     = fs.String("rootfs", "", "directory to pack as the image's filesystem (required)")
		ref        = fs.String("name", "", "image name and tag, e.g. localhost/hoard:e2e (required)")
		out        = fs.String("out", "", "tarball to write (required)")
		dockerfile = fs.String("dockerfile", "", "take the config (USER, ENTRYPOINT, LABEL, ENV) from this Dockerfile's final stage")
		entrypoint = fs.String("entrypoint", "", "entrypoint (without --dockerfile), space-separated")
		cmd        = fs.String("cmd", "", "command (without --dockerfile), space-separated")
		user       = fs.String("user", "", "user (without --dockerfile)")
		buildArgs  list
		labels     list
	)
	fs.Var(&buildArgs, "build-arg", "NAME=VALUE for the Dockerfile's ARGs (repeatable)")
	fs.Var(&labels, "label", "KEY=VALUE label, added to the Dockerfile's (repeatable)")
	if err := fs.Parse(argv); err != nil {
		return err
	}
	if *rootfs == "" || *ref == "" || *out == "" {
		return errors.New("--rootfs, --name and --out are required")
	}
	cfg := image.Config{Labels: map[string]string{}}
	if *dockerfile != "" {
		args := map[string]string{}
		for _, a := range buildArgs {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("--build-arg %q: want NAME=VALUE", a)
			}
			args[k] = v
		}
		fin, err := image.ParseDockerfile(*dockerfile, args)
		if err != nil {
			return err
		}
		cfg = fin.Config
	}
	if *entrypoint != "" {
		cfg.Entrypoint = strings.Fields(*entrypoint)
	}
	if *cmd != "" {
		cfg.Cmd = strings.Fields(*cmd)
	}
	if *user != "" {
		cfg.User = *user
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		cfg.Labels[k] = v
	}
	img, err := image.Build(*rootfs, cfg)
	if err != nil {
		return err
	}
	return image.WriteTarball(*out, *ref, img)
}
