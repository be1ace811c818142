package registration

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"hoard.dev/hoard/tests/testenv"
)

func slogText(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The whole handshake, as the kubelet runs it: GetInfo, then the verdict.
func TestKubeletRegistersDriver(t *testing.T) {
	cfg, logs := testConfig(t)
	s, _ := startServer(t, cfg)

	if got, want := s.Path(), filepath.Join(cfg.RegistryDir, "csi.hoard.dev-reg.sock"); got != want {
		t.Fatalf("Path() = %q, want %q", got, want)
	}
	if st := s.Status(); st != (Status{}) {
		t.Fatalf("Status before the kubelet reported = %+v, want zero (pending)", st)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy() = %v", err)
	}

	kubelet := dialKubelet(t, s.Path())
	info, err := kubelet.getInfo()
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	if info.Type != "CSIPlugin" { // the literal the kubelet's CSI handler is keyed on
		t.Errorf("Type = %q, want CSIPlugin", info.Type)
	}
	if info.Name != testDriver {
		t.Errorf("Name = %q, want %q", info.Name, testDriver)
	}
	if info.Endpoint != testEndpoint {
		t.Errorf("Endpoint = %q, want %q", info.Endpoint, testEndpoint)
	}
	if !slices.Equal(info.SupportedVersions, []string{"1.0.0"}) {
		t.Errorf("SupportedVersions = %q, want [1.0.0]", info.SupportedVersions)
	}

	before := time.Now()
	if err := kubelet.register(func(*registerapi.PluginInfo) error { return nil }); err != nil {
		t.Fatalf("kubelet registration: %v", err)
	}
	st := s.Status()
	if !st.Registered || st.Error != "" || st.Updated.Before(before) {
		t.Fatalf("Status after success = %+v, want registered, no error, updated after %v", st, before)
	}
	if n := logs.Count("kubelet registered the driver"); n != 1 {
		t.Errorf("success logged %d times, want 1; logs:\n%s", n, logs)
	}
}

func TestKubeletRefusesDriver(t *testing.T) {
	cfg, logs := testConfig(t)
	s, _ := startServer(t, cfg)
	kubelet := dialKubelet(t, s.Path())

	err := kubelet.register(func(*registerapi.PluginInfo) error {
		return errors.New("highest supported version reported by driver is v2.0.0, must be v1.x")
	})
	if err != nil {
		t.Fatalf("kubelet registration: %v", err)
	}
	st := s.Status()
	if st.Registered {
		t.Fatalf("Status after refusal = %+v, want not registered", st)
	}
	if !strings.Contains(st.Error, "must be v1.x") {
		t.Fatalf("Status.Error = %q, want the kubelet's message", st.Error)
	}
	if n := logs.Count("kubelet refused to register the driver"); n != 1 {
		t.Errorf("refusal logged %d times, want 1; logs:\n%s", n, logs)
	}
	if n := logs.Count("level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want 1; logs:\n%s", n, logs)
	}
}

// The kubelet retries a failed registration with backoff and re-registers
// after its own restart: status follows the last report, the log each change.
func TestStatusFollowsNotifications(t *testing.T) {
	type note struct {
		ok  bool
		msg string
	}
	tests := []struct {
		name          string
		notes         []note
		want          Status // Updated is checked separately
		wantSuccesses int
		wantFailures  int
	}{
		{"success", []note{{true, ""}}, Status{Registered: true}, 1, 0},
		{"success repeated", []note{{true, ""}, {true, ""}, {true, ""}}, Status{Registered: true}, 1, 0},
		{"failure repeated", []note{{false, "boom"}, {false, "boom"}, {false, "boom"}}, Status{Error: "boom"}, 0, 1},
		{"failure without message", []note{{false, ""}}, Status{}, 0, 1},
		{"failure then success", []note{{false, "boom"}, {true, ""}}, Status{Registered: true}, 1, 1},
		{"success then failure", []note{{true, ""}, {false, "gone"}}, Status{Error: "gone"}, 1, 1},
		{"failure changes message", []note{{false, "a"}, {false, "b"}}, Status{Error: "b"}, 0, 2},
		{"flapping", []note{{true, ""}, {false, "x"}, {true, ""}}, Status{Registered: true}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, logs := testConfig(t)
			s, _ := startServer(t, cfg)
			kubelet := dialKubelet(t, s.Path())
			for _, n := range tt.notes {
				if err := kubelet.notify(n.ok, n.msg); err != nil {
					t.Fatalf("NotifyRegistrationStatus: %v", err)
				}
			}
			got := s.Status()
			if got.Updated.IsZero() {
				t.Errorf("Status.Updated is zero after %d notifications", len(tt.notes))
			}
			got.Updated = time.Time{}
			if got != tt.want {
				t.Errorf("Status = %+v, want %+v", got, tt.want)
			}
			if n := logs.Count("kubelet registered the driver"); n != tt.wantSuccesses {
				t.Errorf("success logged %d times, want %d; logs:\n%s", n, tt.wantSuccesses, logs)
			}
			if n := logs.Count("kubelet refused to register the driver"); n != tt.wantFailures {
				t.Errorf("failure logged %d times, want %d; logs:\n%s", n, tt.wantFailures, logs)
			}
		})
	}
}

func TestGetInfoVersions(t *testing.T) {
	cfg, _ := testConfig(t)
	versions := []string{"1.0.0", "1.11.0"}
	cfg.Versions = versions
	s, _ := startServer(t, cfg)
	versions[0] = "9.9.9" // the Server keeps its own copy

	kubelet := dialKubelet(t, s.Path())
	for range 2 {
		info, err := kubelet.getInfo()
		if err != nil {
			t.Fatalf("GetInfo: %v", err)
		}
		if !slices.Equal(info.SupportedVersions, []string{"1.0.0", "1.11.0"}) {
			t.Fatalf("SupportedVersions = %q, want [1.0.0 1.11.0]", info.SupportedVersions)
		}
		info.SupportedVersions[0] = "mutated" // nor does a reply alias it
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	cfg, logs := testConfig(t)
	path := cfg.SocketPath()
	staleSocket(t, path)

	s, _ := startServer(t, cfg)
	if _, err := dialKubelet(t, s.Path()).getInfo(); err != nil {
		t.Fatalf("GetInfo on the replacing socket: %v; logs:\n%s", err, logs)
	}
	if n := logs.Count("removed a stale registration socket"); n != 1 {
		t.Errorf("stale removal logged %d times, want 1; logs:\n%s", n, logs)
	}
}

func TestRefusesToRemoveNonSocket(t *testing.T) {
	for _, kind := range []string{"regular file", "directory"} {
		t.Run(kind, func(t *testing.T) {
			cfg, _ := testConfig(t)
			path := cfg.SocketPath()
			if kind == "directory" {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, []byte("not a socket"), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Serve(context.Background(), cfg)
			if err == nil {
				t.Fatalf("Serve over a %s succeeded (socket %s)", kind, s.Path())
			}
			if !strings.Contains(err.Error(), "not a socket") {
				t.Errorf("Serve error = %v, want it to say the path is not a socket", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("the %s at the socket path was removed: %v", kind, err)
			}
		})
	}
}

func TestCancelRemovesSocket(t *testing.T) {
	cfg, _ := testConfig(t)
	s, cancel := startServer(t, cfg)
	kubelet := dialKubelet(t, s.Path())
	if err := kubelet.notify(true, ""); err != nil {
		t.Fatal(err)
	}

	cancel()
	waitDone(t, s)
	if _, err := os.Lstat(s.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket after cancel: Lstat = %v, want not exist", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrStopped) {
		t.Fatalf("Healthy() after stop = %v, want ErrStopped", err)
	}
	if _, err := kubelet.getInfo(); err == nil {
		t.Fatal("GetInfo succeeded after the server stopped")
	}
	if !s.Status().Registered {
		t.Error("Status lost after stop; want the last report kept")
	}
}

// A second instance of the driver (rolling update) took the path over: the
// first one must neither report healthy nor delete the newcomer's socket.
func TestAnotherInstanceSocketLeftAlone(t *testing.T) {
	cfg, _ := testConfig(t)
	s, cancel := startServer(t, cfg)
	otherInstance(t, s.Path())
	other, err := os.Lstat(s.Path())
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Healthy(); !errors.Is(err, ErrSocketReplaced) {
		t.Fatalf("Healthy() = %v, want ErrSocketReplaced", err)
	}
	cancel()
	waitDone(t, s)
	now, err := os.Lstat(s.Path())
	if err != nil || !os.SameFile(now, other) {
		t.Fatalf("the other instance's socket was touched at shutdown (Lstat err %v)", err)
	}
}

func TestHealthyReportsMissingSocket(t *testing.T) {
	cfg, _ := testConfig(t) // watchdog interval: an hour, so nothing repairs it
	s, _ := startServer(t, cfg)
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrSocketMissing) {
		t.Fatalf("Healthy() = %v, want ErrSocketMissing", err)
	}
}

// The socket is deleted under the running server (the kubelet's directory
// wiped): the watchdog re-creates it, the kubelet can register the driver
// again, and Status starts over as pending.
func TestSocketRecreated(t *testing.T) {
	for _, what := range []string{"socket", "directory"} {
		t.Run(what, func(t *testing.T) {
			cfg, logs := testConfig(t)
			cfg.RegistryDir = filepath.Join(cfg.RegistryDir, "plugins_registry")
			cfg.CheckInterval = 10 * time.Millisecond
			s, _ := startServer(t, cfg)
			if err := dialKubelet(t, s.Path()).notify(true, ""); err != nil {
				t.Fatal(err)
			}
			first, err := os.Lstat(s.Path())
			if err != nil {
				t.Fatal(err)
			}

			if what == "directory" {
				err = os.RemoveAll(cfg.RegistryDir)
			} else {
				err = os.Remove(s.Path())
			}
			if err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 5*time.Second, "the socket to be re-created", func() bool {
				fi, err := os.Lstat(s.Path())
				return err == nil && !os.SameFile(fi, first) && s.Healthy() == nil
			})
			if st := s.Status(); st != (Status{}) {
				t.Errorf("Status after re-creation = %+v, want zero (pending)", st)
			}

			kubelet := dialKubelet(t, s.Path())
			if err := kubelet.register(func(*registerapi.PluginInfo) error { return nil }); err != nil {
				t.Fatalf("registration on the re-created socket: %v", err)
			}
			if !s.Status().Registered {
				t.Fatal("not registered after the kubelet re-registered")
			}
			if n := logs.Count("re-creating it"); n != 1 {
				t.Errorf("re-creation logged %d times, want 1; logs:\n%s", n, logs)
			}
			if n := logs.Count("kubelet registered the driver"); n != 2 {
				t.Errorf("success logged %d times, want 2 (once per socket); logs:\n%s", n, logs)
			}
			checkMode(t, s.Path())
		})
	}
}

// While the socket cannot be re-created, the watchdog retries every tick but
// logs the failure once, Healthy says the socket is missing, and the socket
// comes back as soon as the way is clear.
func TestSocketRecreationRetries(t *testing.T) {
	cfg, logs := testConfig(t)
	cfg.RegistryDir = filepath.Join(cfg.RegistryDir, "plugins_registry")
	cfg.CheckInterval = 5 * time.Millisecond
	s, _ := startServer(t, cfg)

	if err := os.RemoveAll(cfg.RegistryDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.RegistryDir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the failure to be logged", func() bool {
		return logs.Count("cannot re-create the registration socket") > 0
	})
	time.Sleep(20 * cfg.CheckInterval) // many more failing ticks
	if err := s.Healthy(); !errors.Is(err, ErrSocketMissing) {
		t.Errorf("Healthy() while blocked = %v, want ErrSocketMissing", err)
	}
	if n := logs.Count("cannot re-create the registration socket"); n != 1 {
		t.Errorf("failure logged %d times over many ticks, want 1; logs:\n%s", n, logs)
	}

	if err := os.Remove(cfg.RegistryDir); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the socket to be re-created", func() bool { return s.Healthy() == nil })
	if _, err := dialKubelet(t, s.Path()).getInfo(); err != nil {
		t.Fatalf("GetInfo on the re-created socket: %v", err)
	}
	if n := logs.Count("re-creating it"); n != 1 {
		t.Errorf("removal logged %d times, want 1; logs:\n%s", n, logs)
	}
}

func TestSocketModeAndDirCreation(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.RegistryDir = filepath.Join(cfg.RegistryDir, "var", "lib", "kubelet", "plugins_registry")
	s, _ := startServer(t, cfg)

	fi, err := os.Stat(cfg.RegistryDir)
	if err != nil {
		t.Fatalf("registry dir not created: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("registry dir mode = %v, want drwxr-x---", fi.Mode())
	}
	checkMode(t, s.Path())
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s is %v, want a socket", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %v, want 0600", perm)
	}
}

// listen alone, without the post-bind chmod, must already create the socket
// with mode 0600: the file never exists with wider permissions.
func TestChmodBeforeBind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	lc := listenConfig()
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkMode(t, path)
}

func TestServeRejectsDoneContext(t *testing.T) {
	cfg, _ := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Serve(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve with a done context = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(cfg.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a socket was created: Lstat = %v", err)
	}
}

func TestInvalidConfig(t *testing.T) {
	long := strings.Repeat("a", 60) + ".dev"
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // a part of the error, naming the field
	}{
		{"no driver name", func(c *Config) { c.DriverName = "" }, "DriverName is required"},
		{"uppercase name", func(c *Config) { c.DriverName = "CSI.hoard.dev" }, "DNS-1123"},
		{"underscore in name", func(c *Config) { c.DriverName = "csi_hoard.dev" }, "DNS-1123"},
		{"leading dot", func(c *Config) { c.DriverName = ".hoard.dev" }, "DNS-1123"},
		{"trailing dash", func(c *Config) { c.DriverName = "csi.hoard-" }, "DNS-1123"},
		{"slash in name", func(c *Config) { c.DriverName = "../evil" }, "DNS-1123"},
		{"name over 63", func(c *Config) { c.DriverName = long }, "CSI limit is 63"},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "Endpoint is required"},
		{"relative endpoint", func(c *Config) { c.Endpoint = "csi.sock" }, "absolute path"},
		{"endpoint with scheme", func(c *Config) { c.Endpoint = "unix:///csi/csi.sock" }, "bare path"},
		{"relative registry dir", func(c *Config) { c.RegistryDir = "plugins_registry" }, "RegistryDir"},
		{"socket path too long", func(c *Config) { c.RegistryDir = "/" + strings.Repeat("d", 100) }, "at most 107"},
		{"unparsable version", func(c *Config) { c.Versions = []string{"one"} }, `"one" is not a version`},
		{"single-number version", func(c *Config) { c.Versions = []string{"1"} }, "not a version"},
		{"no 1.x version", func(c *Config) { c.Versions = []string{"0.3.0", "2.0.0"} }, "none is 1.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			tt.mutate(&cfg)
			s, err := Serve(context.Background(), cfg)
			if err == nil {
				t.Fatalf("Serve succeeded (socket %s), want an error containing %q", s.Path(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve error = %v, want it to contain %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(cfg.RegistryDir); filepath.IsAbs(cfg.RegistryDir) && len(entries) != 0 {
				t.Fatalf("invalid config left files in %s: %v", cfg.RegistryDir, entries)
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"defaults", func(*Config) {}},
		{"single label name", func(c *Config) { c.DriverName = "hoard" }},
		{"63 characters", func(c *Config) { c.DriverName = strings.Repeat("a", 59) + ".dev"; c.RegistryDir = "/r" }},
		{"v-prefixed and mixed versions", func(c *Config) { c.Versions = []string{"0.3.0", "v1.2", "1.9.0-beta"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			tt.mutate(&cfg)
			if err := cfg.withDefaults().validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{DriverName: testDriver, Endpoint: testEndpoint}.withDefaults()
	if cfg.RegistryDir != "/var/lib/kubelet/plugins_registry" {
		t.Errorf("RegistryDir = %q", cfg.RegistryDir)
	}
	if got := cfg.SocketPath(); got != "/var/lib/kubelet/plugins_registry/csi.hoard.dev-reg.sock" {
		t.Errorf("SocketPath() = %q", got)
	}
	if got := (Config{DriverName: testDriver}).SocketPath(); got != "/var/lib/kubelet/plugins_registry/csi.hoard.dev-reg.sock" {
		t.Errorf("SocketPath() before defaults = %q", got)
	}
	if !slices.Equal(cfg.Versions, []string{"1.0.0"}) {
		t.Errorf("Versions = %q", cfg.Versions)
	}
	if cfg.CheckInterval != DefaultCheckInterval || cfg.Logger == nil {
		t.Errorf("CheckInterval = %v, Logger = %v", cfg.CheckInterval, cfg.Logger)
	}
	cfg.Versions[0] = "x"
	if DefaultVersions[0] != "1.0.0" {
		t.Fatal("withDefaults aliased DefaultVersions")
	}
}
