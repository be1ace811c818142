package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTicks = 100

// cpuSeconds is the CPU time (user + system) used so far by this process
// and by the processes pids: the readers, the system under test (FUSE
// server, workers) and the bucket server all share the machine's cores, so
// all of them count.
func cpuSeconds(pids ...int) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := tv(ru.Utime) + tv(ru.Stime)
	for _, pid := range pids {
		total += procCPU(pid)
	}
	return total
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procCPU reads utime+stime of a process from /proc/PID/stat (0 if gone).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64) // field 14, utime
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

// profiler takes CPU and blocking profiles of one workload from a hoard
// process started with --debug-addr, into dir (HOARD_BENCH_PROFILE).
type profiler struct {
	dir  string
	addr string // the process's --debug-addr; "" profiles nothing
}

// start begins a CPU profile and saves the blocking and mutex profiles so
// far (pprof -diff_base of the ones stop saves gives the workload's).
func (p profiler) start(name string) {
	if p.dir == "" || p.addr == "" {
		return
	}
	p.save(name+".block-before.pb.gz", "GET", "/debug/pprof/block")
	p.save(name+".mutex-before.pb.gz", "GET", "/debug/pprof/mutex")
	p.save("", "POST", "/debug/cpu/start")
}

func (p profiler) stop(name string) {
	if p.dir == "" || p.addr == "" {
		return
	}
	p.save(name+".cpu.pb.gz", "POST", "/debug/cpu/stop")
	p.save(name+".block.pb.gz", "GET", "/debug/pprof/block")
	p.save(name+".mutex.pb.gz", "GET", "/debug/pprof/mutex")
}

func (p profiler) save(file, method, path string) {
	req, _ := http.NewRequest(method, "http://"+p.addr+path, nil)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profile %s: %v\n", path, err)
		return
	}
	defer resp.Body.Close()
	if file == "" {
		io.Copy(io.Discard, resp.Body)
		return
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// profileName is a file name for one system, temperature and workload.
func profileName(parts ...string) string {
	r := strings.NewReplacer(" ", "-", "(", "", ")", "", "/", "-", ",", "")
	return r.Replace(strings.Join(parts, "_"))
}
