// Command bench measures acp-sandbox against baselines taken in the same run
// on the same machine, and prints each figure as a ratio next to its goal.
// The machine is noisy (TCG, two cores, other work), so nothing is asserted
// and the exit status does not depend on the goals: compare ratios, which
// cancel most of the machine's speed and load, not absolute times.
//
//	go run ./bench [-only runtime|bridge|network] [-n 5] [-execs 50] [-files 2000]
//	    [-notifications 10000] [-rtts 1000] [-line 64] [-faults 3]
//	    [-download 64] [-conns 200] [-lookups 200] [-json] [-keep]
//
// Three groups of figures: runtime (below; -n, -execs, -files), bridge
// (bridge.go; -n, -notifications, -rtts, -line, -faults) and network
// (network.go; -n, -download, -conns, -lookups), all by default.
//
// Everything runs with a private HOME, XDG_STATE_HOME and XDG_RUNTIME_DIR
// in a temp dir; XDG_CACHE_HOME is ~/.cache/acp-sandbox-bench, shared by
// runs so the kernel is fetched (with apt) only once. Before anything is
// timed, one untimed `acp-sandbox run` fills the caches (kernel, and the
// initramfs of the freshly built binary) and one untimed bare boot warms
// the page cache: every timed start is a cold VM with warm caches. Every
// VM is stopped at the end, also after an error or Ctrl-C, and the run
// checks that no QEMU of its own is left.
//
// The runtime group's four measurements:
//
//  1. Cold start. `acp-sandbox run -q -- true` in a fresh workspace with no
//     sandbox running: CLI, supervisor spawn, VM boot, PID 1's module
//     loading and mounts, handshake, setup, the exec and its exit status.
//     Baseline: a bare QEMU boot of the same vmlinux and the same initramfs
//     (our binary as /init), with the product's own QEMU argv
//     (vmm.Config.Args: same machine, accelerator, CPUs, memory, devices and
//     shares), in canary mode, where /init logs one line and powers off. The
//     baseline is QEMU start to that line — the kernel's boot up to user
//     space, which the sandbox cannot avoid — so the ratio charges the
//     sandbox for everything it adds after that. (Start to QEMU's exit is
//     shown too; it includes the poweroff the cold run does not pay.)
//     Sandbox and bare runs alternate; medians of N each. Between runs the
//     sandbox is stopped and its supervisor and QEMU are waited out.
//
//  2. Warm exec. `acp-sandbox exec -- true` on a running VM, p50 and p90
//     over -execs runs. Baseline: the host's /bin/true spawned the same way,
//     the floor of any subprocess. Interleaved with it, to show where the
//     time goes: `acp-sandbox --help` (CLI process, no socket),
//     `acp-sandbox ls --json` (CLI plus a supervisor round trip, no guest),
//     `exec -- /nonexistent` (the guest looks the command up and fails, no
//     guest process), and the same two execs from inside this process
//     through the sandbox package's client (Dial + Exec, as the CLI does),
//     which leaves out the CLI process. Last, bash inside the guest times
//     fork+exec of /usr/bin/true: what any process costs there, whoever
//     starts it.
//
//  3. Workspace metadata. A tree of -files files (100 per directory) in the
//     workspace is walked with an lstat of every entry by one piece of code
//     (bench/internal/walk), which times itself, so boot and exec overhead
//     are excluded. In the sandbox it is the static bench/walker, copied
//     into the workspace and run with `acp-sandbox exec`. The baseline is a
//     bare VM (same kernel, same QEMU argv) whose initramfs holds only
//     bench/bareinit and the modules the sandbox loads, resolved from the
//     same kernel: it mounts the same directory over 9p with the sandbox's
//     exact workspace options and flags, and walks in-process whenever the
//     bench asks on the control port. Both VMs are up together and take
//     turns (one idles while the other walks, who goes first alternates),
//     one untimed warm-up walk each, then N; medians.
//
//  4. Supervisor memory. VmRSS of the supervisor process (the pid in
//     `ls --json`, QEMU excluded) after the exec and walk runs, against a
//     goal of 40 MiB; QEMU's RSS is shown as the baseline for scale.
//
// The bridge group measures `acp-sandbox -- /init demo-agent` (the ACP
// bridge, with the scripted agent) against the same agent on the host and
// against the raw control channel (`acp-sandbox exec -i`): the rate of
// session/update notifications, request round trips, the bridge's peak RSS
// for one huge line, and how fast a prompt fails when the agent crashes or
// QEMU is killed. See bridge.go and README.md.
//
// The network group measures the VM's userspace network stack with its
// egress policy against the same stack with the policy reduced to an
// address rule: bulk download, new connections per second and DNS query
// latency, with a fake internet on loopback (the acpsandbox_testhooks
// build tag). See network.go and README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/vmm"
)

type options struct {
	runs, execs, files int
	json, keep         bool
	// The bridge group's.
	rtts, notifs, lineMiB, faults int
	// The network group's.
	downloadMiB, conns, lookups int
	runtime, bridge, network    bool // the groups to run
}

func main() {
	var o options
	flag.IntVar(&o.runs, "n", 5, "cold starts and walks per arm")
	flag.IntVar(&o.execs, "execs", 50, "warm exec runs per variant")
	flag.IntVar(&o.files, "files", 2000, "files in the walked workspace tree")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (logs, workspaces) for inspection")
	flag.IntVar(&o.notifs, "notifications", 10000, "session/update notifications per throughput round (bridge)")
	flag.IntVar(&o.rtts, "rtts", 1000, "request round trips per arm (bridge)")
	flag.IntVar(&o.lineMiB, "line", 64, "size of the line of the memory figure, MiB (bridge)")
	flag.IntVar(&o.faults, "faults", 3, "agent crashes and QEMU kills per arm (bridge)")
	flag.IntVar(&o.downloadMiB, "download", 64, "size of the bulk download, MiB (network)")
	flag.IntVar(&o.conns, "conns", 200, "new connections per arm (network)")
	flag.IntVar(&o.lookups, "lookups", 200, "DNS lookups per name (network)")
	only := flag.String("only", "", "run one group of figures: runtime, bridge or network (default all)")
	flag.Parse()
	if o.runs < 1 || o.execs < 1 || o.files < 1 || o.notifs < 1 || o.rtts < 1 || o.lineMiB < 1 || o.faults < 1 ||
		o.downloadMiB < 1 || o.conns < 1 || o.lookups < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n, -execs, -files, -notifications, -rtts, -line, -faults, -download, -conns and -lookups must be positive")
		os.Exit(2)
	}
	switch *only {
	case "":
		o.runtime, o.bridge, o.network = true, true, true
	case "runtime":
		o.runtime = true
	case "bridge":
		o.bridge = true
	case "network":
		o.network = true
	default:
		fmt.Fprintf(os.Stderr, "bench: -only %q: want runtime, bridge or network\n", *only)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := run(ctx, o)
	if o.json {
		_ = rep.writeJSON(os.Stdout)
	} else {
		rep.writeText(os.Stdout)
	}
	if rep.Error != "" || len(rep.LeftoverQEMU) > 0 {
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// run does the whole benchmark; failures end up in the report's Error.
func run(ctx context.Context, o options) (rep *Report) {
	rep = &Report{Started: time.Now(), Runs: o.runs, Execs: o.execs, Files: o.files,
		Notifications: o.notifs, RTTs: o.rtts, LineMiB: o.lineMiB, Faults: o.faults,
		DownloadMiB: o.downloadMiB, Conns: o.conns, Lookups: o.lookups}
	if o.runtime {
		rep.Groups = append(rep.Groups, "runtime")
	}
	if o.bridge {
		rep.Groups = append(rep.Groups, "bridge")
	}
	if o.network {
		rep.Groups = append(rep.Groups, "network")
	}
	rep.Host.CPUs = runtime.NumCPU()
	rep.Host.LoadBefore = loadavg()
	ucache, err := os.UserCacheDir()
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	e, err := newEnv(filepath.Join(ucache, "acp-sandbox-bench"))
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	vms := &bareVMs{}
	defer func() {
		killed, err := e.cleanup(vms)
		rep.LeftoverQEMU = append([]int{}, killed...) // [] rather than null in JSON
		if err != nil && rep.Error == "" {
			rep.Error = "cleanup: " + err.Error()
		}
		if o.keep {
			progress("kept %s", e.root)
		} else {
			_ = os.RemoveAll(e.root)
		}
		rep.Host.LoadAfter = loadavg()
		rep.Seconds = time.Since(rep.Started).Seconds()
	}()
	if err := (&bench{e: e, vms: vms, o: o, rep: rep}).all(ctx); err != nil {
		rep.Error = err.Error()
	}
	return rep
}

func loadavg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func qemuVersion(ctx context.Context) string {
	v, err := vmm.Version(ctx, "")
	if err != nil {
		if _, lerr := exec.LookPath("qemu-system-x86_64"); lerr != nil {
			return "not installed"
		}
		return "unknown"
	}
	return v
}
