package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the time of every file and of the image: the same inputs give
// the same image digest.
var Epoch = time.Unix(0, 0).UTC()

// Build makes a one-layer linux/amd64 image of the directory rootfs with cfg.
func Build(rootfs string, cfg Config) (v1.Image, error) {
	layer, err := LayerFromDir(rootfs)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Entrypoint, cf.Config.Cmd = cfg.Entrypoint, cfg.Cmd
	cf.Config.User, cf.Config.WorkingDir = cfg.User, cfg.WorkingDir
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, cfg.Env...)
	cf.Config.Labels = cfg.Labels
	return mutate.ConfigFile(img, cf)
}

// WriteTarball writes img as a docker-archive tarball (what `docker save`
// writes and `ctr images import` reads) tagged ref.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// LayerFromDir makes an uncompressed-source layer of the tree at dir:
// entries in name order, owned by root, dated Epoch, with their modes
// (setuid/setgid/sticky bits included) and symbolic links as links.
// Devices, sockets and pipes are refused.
func LayerFromDir(dir string) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTree(&buf, dir); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

func writeTree(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read rootfs %s: %w", dir, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := writeEntry(tw, dir, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, dir, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	h := &tar.Header{
		Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), ModTime: Epoch,
		Uid: 0, Gid: 0, Format: tar.FormatPAX,
	}
	m := fi.Mode()
	if m&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	switch {
	case m.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
	case m&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		if h.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
	case m.IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	default:
		return fmt.Errorf("%s: %v files cannot go into an image", p, m.Type())
	}
	if strings.HasPrefix(h.Name, "../") {
		return fmt.Errorf("%s: outside the rootfs", p)
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, h.Size); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}
