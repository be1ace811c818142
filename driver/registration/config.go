package registration

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const (
	// DefaultRegistryDir is the directory the kubelet's plugin watcher follows.
	DefaultRegistryDir = "/var/lib/kubelet/plugins_registry"

	// DefaultCheckInterval is how often the socket is checked, and re-created
	// if it is gone, when Config.CheckInterval is zero.
	DefaultCheckInterval = 5 * time.Second

	// socketMode is the registration socket's permission bits. The kubelet
	// runs as root and needs no bits; nobody else has any business on it.
	socketMode = 0o600

	// dirMode is used when RegistryDir has to be created.
	dirMode = 0o750

	// maxDriverName is the CSI spec's limit on a plugin name
	// (GetPluginInfoResponse.name: "63 characters or less").
	maxDriverName = 63

	// maxSocketPath is the longest path a unix socket can be bound to on
	// Linux: sun_path is 108 bytes, one of them the terminating NUL.
	maxSocketPath = 107
)

// DefaultVersions is what GetInfo reports when Config.Versions is empty: the
// CSI spec versions hoard implements.
var DefaultVersions = []string{"1.0.0"}

// Config says what to register with the kubelet and where.
type Config struct {
	// DriverName is the CSI driver name, e.g. csi.hoard.dev: a DNS-1123
	// subdomain of at most 63 characters. It names the socket as well.
	DriverName string

	// Endpoint is the CSI socket path as the kubelet sees it on the host, e.g.
	// /var/lib/kubelet/plugins/csi.hoard.dev/csi.sock. An absolute path, no
	// unix:// scheme: the kubelet dials it as a bare unix socket path.
	Endpoint string

	// RegistryDir is where the registration socket is created. Default
	// DefaultRegistryDir; must be absolute.
	RegistryDir string

	// Versions are the CSI versions served on Endpoint. Default
	// DefaultVersions. Each must be a version the kubelet can parse (two or
	// more dot-separated numbers), and at least one must be 1.x: the kubelet
	// uses the highest version up to 1.x and refuses a driver without a 1.x.
	Versions []string

	// CheckInterval is how often the watchdog checks that the socket is still
	// in place and re-creates it if it is gone. Default DefaultCheckInterval.
	CheckInterval time.Duration

	// Logger receives registration events. Default slog.Default().
	Logger *slog.Logger
}

// SocketPath is the registration socket's path: <RegistryDir>/<DriverName>-reg.sock,
// the name node-driver-registrar uses, with RegistryDir defaulted.
func (c Config) SocketPath() string {
	dir := c.RegistryDir
	if dir == "" {
		dir = DefaultRegistryDir
	}
	return filepath.Join(dir, c.DriverName+"-reg.sock")
}

// withDefaults returns c with every zero field that has a default filled in.
// Versions is copied, so the caller may reuse its slice.
func (c Config) withDefaults() Config {
	if c.RegistryDir == "" {
		c.RegistryDir = DefaultRegistryDir
	}
	if len(c.Versions) == 0 {
		c.Versions = DefaultVersions
	}
	c.Versions = append([]string(nil), c.Versions...)
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// dns1123Subdomain is Kubernetes' DNS-1123 subdomain: dot-separated labels of
// lowercase alphanumerics and '-', each starting and ending alphanumeric.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// genericVersion is the prefix the kubelet's version.ParseGeneric accepts:
// two or more dot-separated numbers, the first without leading zeroes,
// optionally after a 'v'. Group 1 is the major version.
var genericVersion = regexp.MustCompile(`^v?(0|[1-9][0-9]*)(\.[0-9]+)+`)

// validate checks a Config that has been through withDefaults. Errors name
// the field.
func (c Config) validate() error {
	var errs []error
	switch {
	case c.DriverName == "":
		errs = append(errs, errors.New("DriverName is required"))
	case len(c.DriverName) > maxDriverName:
		errs = append(errs, fmt.Errorf("DriverName %q is %d characters, the CSI limit is %d", c.DriverName, len(c.DriverName), maxDriverName))
	case !dns1123Subdomain.MatchString(c.DriverName):
		errs = append(errs, fmt.Errorf("DriverName %q is not a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', starting and ending alphanumeric), e.g. csi.hoard.dev", c.DriverName))
	}

	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("Endpoint is required: the CSI socket path as the kubelet sees it"))
	case strings.Contains(c.Endpoint, "://"):
		errs = append(errs, fmt.Errorf("Endpoint %q must be a bare path: the kubelet dials it as a unix socket path, without a scheme", c.Endpoint))
	case !filepath.IsAbs(c.Endpoint):
		errs = append(errs, fmt.Errorf("Endpoint %q must be an absolute path", c.Endpoint))
	}

	if !filepath.IsAbs(c.RegistryDir) {
		errs = append(errs, fmt.Errorf("RegistryDir %q must be an absolute path", c.RegistryDir))
	}
	if p := c.SocketPath(); c.DriverName != "" && len(p) > maxSocketPath {
		errs = append(errs, fmt.Errorf("socket path %q is %d bytes, a unix socket path is at most %d: shorten RegistryDir", p, len(p), maxSocketPath))
	}

	has1x, unparsable := false, false
	for _, v := range c.Versions {
		m := genericVersion.FindStringSubmatch(v)
		if m == nil {
			errs = append(errs, fmt.Errorf("Versions: %q is not a version the kubelet can parse (like 1.0.0)", v))
			unparsable = true
			continue
		}
		if m[1] == "1" {
			has1x = true
		}
	}
	if !has1x && !unparsable {
		errs = append(errs, fmt.Errorf("Versions %q: none is 1.x, and the kubelet requires the highest version up to 1.x to be 1.x", c.Versions))
	}
	return errors.Join(errs...)
}
