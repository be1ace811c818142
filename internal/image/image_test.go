package image

import (
	"archive/tar"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"hoard.dev/hoard/tests/testenv"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestDockerfileIsTheRecipe: the Dockerfile's build stage runs `make rootfs`
// into the directory its final stage copies, and the final stage's config
// is what the manifests rely on (non-root user, hoard as entrypoint).
func TestDockerfileIsTheRecipe(t *testing.T) {
	path := filepath.Join(repoRoot(t), "Dockerfile")
	fin, err := ParseDockerfile(path, map[string]string{"VERSION": "v9.9.9", "REVISION": "abc"})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(path)
	if fin.CopyFrom != "build" || !strings.Contains(string(text), "RUN make rootfs ROOTFS="+fin.CopySrc+" ") {
		t.Fatalf("the final stage copies %s from %s; the build stage must produce it with `make rootfs ROOTFS=%s`",
			fin.CopySrc, fin.CopyFrom, fin.CopySrc)
	}
	c := fin.Config
	if c.User != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (the roles without privilege run as it)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/hoard"}) {
		t.Errorf("ENTRYPOINT %q", c.Entrypoint)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "v9.9.9",
		"org.opencontainers.image.revision": "abc",
		"org.opencontainers.image.title":    "hoard",
	} {
		if c.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], want)
		}
	}
}

func TestParseDockerfileRefusesWhatItCannotFollow(t *testing.T) {
	cases := map[string]string{
		"RUN in the final stage": "FROM scratch\nCOPY --from=b /r /\nRUN true\n",
		"a base image":           "FROM debian\nCOPY --from=b /r /\n",
		"no rootfs":              "FROM scratch\nUSER 1\n",
		"two copies":             "FROM scratch\nCOPY --from=b /r /\nCOPY --from=b /s /\n",
		"shell-form entrypoint":  "FROM scratch\nCOPY --from=b /r /\nENTRYPOINT hoard\n",
		"bad label":              "FROM scratch\nCOPY --from=b /r /\nLABEL a=\"b\n",
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "Dockerfile")
			os.WriteFile(p, []byte(text), 0o644)
			if _, err := ParseDockerfile(p, nil); err == nil {
				t.Fatalf("parsed %q without error", text)
			}
		})
	}
}

// TestLayerFromDirIsDeterministic: the same tree gives the same digest,
// whatever the files' owners and times; modes and links are kept.
func TestLayerFromDirIsDeterministic(t *testing.T) {
	mk := func() string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "bin"), 0o755)
		os.WriteFile(filepath.Join(d, "bin", "tool"), []byte("#!x"), 0o755)
		os.Symlink("tool", filepath.Join(d, "bin", "alias"))
		os.Mkdir(filepath.Join(d, "tmp"), 0o755)
		os.Chmod(filepath.Join(d, "tmp"), 0o777|os.ModeSticky)
		return d
	}
	a, b := mk(), mk()
	os.Chtimes(filepath.Join(b, "bin", "tool"), time.Now(), time.Now().Add(-time.Hour))
	da, db := layerDigest(t, a), layerDigest(t, b)
	if da != db {
		t.Fatalf("same tree, two digests: %s %s", da, db)
	}
	files := layerFiles(t, a)
	if h := files["bin/alias"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("bin/alias: %+v", h)
	}
	if h := files["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/: %+v, want mode 1777", h)
	}
	if h := files["bin/tool"]; h == nil || h.Mode != 0o755 || h.Uid != 0 || !h.ModTime.Equal(Epoch) {
		t.Errorf("bin/tool: %+v", h)
	}
}

func layerDigest(t *testing.T, dir string) v1.Hash {
	l, err := LayerFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func layerFiles(t *testing.T, dir string) map[string]*tar.Header {
	l, err := LayerFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return tarHeaders(t, rc)
}

func tarHeaders(t *testing.T, r io.Reader) map[string]*tar.Header {
	out := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// TestImageReachesHTTPSWithItsTrustStore builds the image as `make image`
// does (make rootfs, then the Dockerfile's config), checks what it holds,
// and runs its hoard, chrooted into the unpacked image as the image's user,
// against a MinIO serving HTTPS with a certificate this test made. A user
// trusts a private CA the way images do: a layer adding it under
// /etc/ssl/certs (FROM hoard / COPY ca.crt /etc/ssl/certs/), no
// AWS_CA_BUNDLE. Without that layer the same read fails on the certificate.
func TestImageReachesHTTPSWithItsTrustStore(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.RequireOrSkip(t, "root (chroot into the unpacked image)", errors.New("not root"))
	}
	root := repoRoot(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	mk := exec.Command("make", "-s", "rootfs", "ROOTFS="+rootfs, "VERSION=image-test")
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make rootfs: %v\n%s", err, out)
	}
	fin, err := ParseDockerfile(filepath.Join(root, "Dockerfile"), map[string]string{"VERSION": "image-test"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(rootfs, fin.Config)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img)

	ca, serverCert, serverKey := makeCerts(t)
	m := testenv.StartMinIOTLS(t, testenv.MinIOTLS{CertPEM: serverCert, KeyPEM: serverKey, Roots: pool(t, ca)})
	m.MakeBucket(t, "images")
	want := testenv.RandomBytes(3<<20|777, 9)
	m.Put(t, "images", "blob", want)

	userDir := t.TempDir()
	os.MkdirAll(filepath.Join(userDir, "etc", "ssl", "certs"), 0o755)
	os.WriteFile(filepath.Join(userDir, "etc", "ssl", "certs", "test-ca.crt"), ca, 0o644)
	caLayer, err := LayerFromDir(userDir)
	if err != nil {
		t.Fatal(err)
	}
	withCA, err := mutate.AppendLayers(img, caLayer)
	if err != nil {
		t.Fatal(err)
	}

	got, stderr, err := readInImage(t, withCA, fin.Config.User, m)
	if err != nil {
		t.Fatalf("hoard read in the image with the test CA: %v\n%s", err, stderr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the object's %d", len(got), len(want))
	}
	_, stderr, err = readInImage(t, img, fin.Config.User, m)
	if err == nil || !strings.Contains(stderr, "certificate") {
		t.Fatalf("without the CA layer the read must fail on the certificate; got %v\n%s", err, stderr)
	}
}

// checkImage: the CA bundle is there and holds many CAs; the config says
// the non-root user; /etc/passwd names it; hoard is executable.
func checkImage(t *testing.T, img v1.Image) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config: user %q, %s/%s", cf.Config.User, cf.OS, cf.Architecture)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string][]byte{}
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[strings.TrimSuffix(h.Name, "/")] = h.Mode
		if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
			files[h.Name], _ = io.ReadAll(tr)
		}
	}
	bundle := files["etc/ssl/certs/ca-certificates.crt"]
	if n := bytes.Count(bundle, []byte("-----BEGIN CERTIFICATE-----")); n < 50 || !x509.NewCertPool().AppendCertsFromPEM(bundle) {
		t.Errorf("etc/ssl/certs/ca-certificates.crt holds %d certificates; want the CA bundle", n)
	}
	if !bytes.Contains(files["etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("etc/passwd: %q", files["etc/passwd"])
	}
	if modes["usr/local/bin/hoard"]&0o111 == 0 {
		t.Errorf("usr/local/bin/hoard mode %o", modes["usr/local/bin/hoard"])
	}
	if modes["tmp"] != 0o1777 {
		t.Errorf("tmp mode %o, want 1777", modes["tmp"])
	}
}

// readInImage unpacks img and runs its hoard read of s3://images/blob
// chrooted into it as user (UID:GID), with credentials and nothing else in
// the environment (no AWS_CA_BUNDLE, no SSL_CERT_FILE).
func readInImage(t *testing.T, img v1.Image, user string, m *testenv.MinIO) ([]byte, string, error) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	untar := exec.Command("tar", "-x", "-C", dir)
	rc := mutate.Extract(img)
	defer rc.Close()
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack the image: %v\n%s", err, out)
	}
	uid, gid := ids(t, user)
	cmd := exec.Command("/usr/local/bin/hoard", "read", "--s3-endpoint", m.URL(), "--s3-path-style",
		"--s3-region", "us-east-1", "--cache-dir", "/tmp/cache", "--cache-size", "64MiB", "s3://images/blob")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin", "HOME=/tmp",
		"AWS_ACCESS_KEY_ID=" + m.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + m.SecretKey()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir, Credential: &syscall.Credential{Uid: uid, Gid: gid},
		Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.Bytes(), stderr.String(), err
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hoard read in the image did not finish in 2 minutes:\n%s", stderr.String())
		return nil, "", nil
	}
}

func ids(t *testing.T, user string) (uint32, uint32) {
	u, g, _ := strings.Cut(user, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("image user %q: want a numeric non-root UID:GID", user)
	}
	return uint32(uid), uint32(gid)
}

// makeCerts returns a CA certificate and a server certificate and key for
// 127.0.0.1 it signed, all PEM.
func makeCerts(t *testing.T) (ca, cert, key []byte) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hoard image test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func pool(t *testing.T, pemCA []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemCA) {
		t.Fatal("bad CA PEM")
	}
	return p
}
