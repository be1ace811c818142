package fuse_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/tests/testenv"
)

// TestPyTorchDataLoader: a real reader, PyTorch's DataLoader with four worker
// processes, reads thousands of ~100 KiB files from the mount for two shuffled
// epochs; every sample's digest matches the bucket's bytes.
func TestPyTorchDataLoader(t *testing.T) {
	python := "/usr/bin/python3" // Debian's, where python3-torch installs
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		testenv.RequireOrSkip(t, "PyTorch for /usr/bin/python3 (apt-get install python3-torch)",
			fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)))
	}
	e := newEnv(t)
	const files = 2000
	want := map[string]string{}
	for i := 0; i < files; i++ {
		key := fmt.Sprintf("train/class-%02d/img-%05d.jpg", i%20, i)
		data := testenv.RandomBytes(int64(90<<10+i%20<<10), uint64(i))
		sum := sha256.Sum256(data)
		want[strings.TrimPrefix(key, "train/")] = hex.EncodeToString(sum[:])
		e.put(t, key, data)
	}
	mnt, _ := e.mount(t, "train/", fuseview.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "dataloader.py"), mnt, "4", "2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dataloader: %v\n%s", err, stderr.String())
	}
	seen := map[string]int{}
	var done string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "done" {
			done = sc.Text()
			continue
		}
		if len(f) != 3 {
			t.Fatalf("unexpected output line %q", sc.Text())
		}
		path, digest := f[1], f[2]
		if want[path] != digest {
			t.Fatalf("epoch %s, %s: digest %s, bucket has %s", f[0], path, digest, want[path])
		}
		seen[path]++
	}
	if len(seen) != files {
		t.Fatalf("DataLoader saw %d distinct files, want %d", len(seen), files)
	}
	for p, n := range seen {
		if n != 2 {
			t.Fatalf("%s read %d times in 2 epochs", p, n)
		}
	}
	t.Logf("PyTorch DataLoader, 4 workers, 2 epochs of %d files: %s", files, done)
}
