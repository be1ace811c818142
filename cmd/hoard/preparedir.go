package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func newPrepareDirCmd() *cobra.Command {
	var owner string
	cmd := &cobra.Command{
		Use:   "prepare-dir DIR...",
		Short: "Create directories for a role that runs without root, owned by --owner",
		Long: `Create each DIR (mode 0700) and give it, and everything in it, to --owner.
Roles that need no privilege (worker, coordinator, controller) run as an
unprivileged user, but the host directories Kubernetes creates for them
(hostPath DirectoryOrCreate) belong to root: the Helm chart runs this as a
root init container with only CAP_CHOWN before such a role starts. A
directory already owned by --owner is left as it is, so restarts cost
nothing; a cache written by an older root-run worker is handed over whole.`,
		Example: `  hoard prepare-dir --owner 65532:65532 /var/lib/hoard/worker`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uid, gid, err := parseOwner(owner)
			if err != nil {
				return err
			}
			for _, dir := range args {
				if err := prepareDir(dir, uid, gid); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "65532:65532", "UID:GID to own the directories")
	return cmd
}

// parseOwner parses UID:GID.
func parseOwner(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 31)
	gid, err2 := strconv.ParseUint(g, 10, 31)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--owner %q: want numeric UID:GID such as 65532:65532", s)
	}
	return int(uid), int(gid), nil
}

// prepareDir creates dir and, unless it already belongs to uid:gid, hands
// it and its contents over. Symbolic links are changed themselves, never
// followed: a link in a cache dir must not give away what it points at.
func prepareDir(dir string, uid, gid int) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s: want an absolute path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	// chmod before chown: root without CAP_FOWNER may not chmod what it
	// has given away.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("give %s to %d:%d: %w", dir, uid, gid, err)
	}
	return nil
}
