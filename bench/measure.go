package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/bench/internal/walk"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"github.com/acp-sandbox/acp-sandbox/vmm/kernel"
)

// guestModules are the modules the sandbox's PID 1 loads, in the order
// sandbox/supervisor.go asks for them; the bare VM loads the same.
var guestModules = []string{"virtio_mmio", "virtio_console", "9pnet_virtio", "9p"}

// bareModulesList mirrors bareinit's ModulesList.
const bareModulesList = "/bench/modules.list"

// bench holds one run's state; each phase appends its rows.
type bench struct {
	e   *env
	vms *bareVMs
	o   options
	rep *Report

	kernel *kernel.Kernel
	base   vmm.Config // bare VMs: the product's QEMU argv inputs
	ws     string     // the workspace of phases 2–4
	files  string     // its walked tree

	walkCfg vmm.Config // the bare walk VM: bareinit, the workspace share

	bws string // the bridge group's workspace

	net *netState // the network group's fixtures
}

type phase struct {
	name string
	fn   func(context.Context) error
}

func (b *bench) all(ctx context.Context) error {
	progress("building acp-sandbox and the bench helpers (static) in %s", b.e.root)
	if err := b.e.build(ctx); err != nil {
		return err
	}
	b.rep.Host.QEMU = qemuVersion(ctx)
	var phases []phase
	if b.o.runtime {
		phases = append(phases,
			phase{"warm-up", b.warmUp},
			phase{"cold start", b.coldStart},
			phase{"workspace", b.prepareWorkspace},
			phase{"bare walk initramfs", b.bareInitramfs},
			phase{"running sandbox", b.running},
		)
	}
	if b.o.bridge {
		phases = append(phases, b.bridgePhases()...)
	}
	if b.o.network {
		phases = append(phases, b.networkPhases()...)
	}
	for _, phase := range phases {
		if err := phase.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", phase.name, err)
		}
	}
	return nil
}

// coldRun is one timed `acp-sandbox run -q -- true` from nothing running,
// cut into spans by host clocks: the CLI's start and exit (ours), the
// supervisor's start of its boot steps and its boot time (`ls --json`), and
// the time it logged the accelerator verdict, the step before QEMU starts
// (its log, millisecond stamps).
type coldRun struct {
	total time.Duration
	// spawn: CLI start to the supervisor's first boot step; steps: kernel,
	// initramfs and accelerator steps; boot: QEMU start to a set-up guest;
	// exec: supervisor ready to CLI exit.
	spawn, steps, boot, exec time.Duration
	timeline                 bool // the four spans were found
	stop                     time.Duration
	guest                    guestSpans
}

func (b *bench) sandboxCold(ctx context.Context, name string) (*coldRun, *sandbox.Status, error) {
	ws, err := b.e.mkdir(name)
	if err != nil {
		return nil, nil, err
	}
	r, err := b.e.mustCLI(ctx, 0, ws, "run", "-q", "--", "true")
	if err != nil {
		return nil, nil, err
	}
	st, err := b.e.status(ctx, ws)
	if err != nil {
		return nil, nil, err
	}
	c := &coldRun{total: r.elapsed}
	if c.stop, err = b.e.stop(ctx, ws, st); err != nil {
		return nil, nil, err
	}
	sb, err := b.e.dirs().ForWorkspace(ws)
	if err != nil {
		return nil, nil, err
	}
	c.guest = parseGuestLog(sb.ConsoleLog())
	if accel, ok := logTime(sb.Log(), "msg=accelerator "); ok {
		ready := st.Started.Add(time.Duration(st.BootMillis) * time.Millisecond)
		c.spawn, c.steps = st.Started.Sub(r.start), accel.Sub(st.Started)
		c.boot, c.exec = ready.Sub(accel), r.start.Add(r.elapsed).Sub(ready)
		c.timeline = true
	}
	return c, st, nil
}

// logTime is the time of the first line of a supervisor log (slog text)
// containing s.
func logTime(path, s string) (time.Time, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		stamp, ok := strings.CutPrefix(l, "time=")
		if !ok || !strings.Contains(l, s) {
			continue
		}
		stamp, _, _ = strings.Cut(stamp, " ")
		if t, err := time.Parse(time.RFC3339Nano, stamp); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// warmUp fills the caches with one untimed sandbox run, then prepares and
// runs once (untimed) the bare boot of the same kernel and initramfs.
func (b *bench) warmUp(ctx context.Context) error {
	progress("warm-up: one untimed run caches the kernel and this binary's initramfs")
	_, st, err := b.sandboxCold(ctx, "warmup")
	if err != nil {
		return err
	}
	b.rep.Host.Accel, b.rep.Host.AccelReason, b.rep.Host.Kernel = string(st.Accel), st.AccelReason, st.Kernel
	cacheDir := filepath.Join(b.e.cache, "acp-sandbox")
	if b.kernel, err = kernel.Ensure(ctx, kernel.Options{CacheDir: filepath.Join(cacheDir, "kernel")}); err != nil {
		return err
	}
	if b.kernel.Version != st.Kernel {
		return fmt.Errorf("kernel cache resolves %s but the sandbox booted %s", b.kernel.Version, st.Kernel)
	}
	// The supervisor's cache name for this binary's initramfs
	// (sandbox/supervisor.go ensureInitramfs).
	initrd := filepath.Join(cacheDir, "initramfs", st.Version+"-"+st.Kernel+".cpio")
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("the sandbox's initramfs is not where expected: %w", err)
	}
	home, err := b.e.mkdir("bare-home")
	if err != nil {
		return err
	}
	ws, err := b.e.mkdir("bare-ws")
	if err != nil {
		return err
	}
	// The CLI's defaults (--cpus 2 --memory 2048) and the supervisor's shares.
	b.base = vmm.Config{
		Kernel: b.kernel.Vmlinux, Initrd: initrd, Accel: st.Accel, CPUs: 2, MemoryMiB: 2048,
		Shares: []vmm.Share{
			{Tag: "usr", HostPath: "/usr", ReadOnly: true},
			{Tag: "home", HostPath: home},
			{Tag: "ws", HostPath: ws},
		},
	}
	_, _, err = b.e.bareCanary(ctx, b.vms, b.base)
	if err == nil {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("caches were warm for every timed run: kernel %s and the initramfs of this binary (%s) "+
			"were cached by an untimed `acp-sandbox run` first, and one untimed bare boot preceded the timed ones", st.Kernel, st.Version))
	}
	return err
}

func (b *bench) coldStart(ctx context.Context) error {
	var runs []*coldRun
	var bareInit, bareExit []time.Duration
	sandboxArm := func(i int) error {
		c, _, err := b.sandboxCold(ctx, fmt.Sprintf("cold%d", i))
		if err == nil {
			runs = append(runs, c)
		}
		return err
	}
	bareArm := func(int) error {
		toInit, toExit, err := b.e.bareCanary(ctx, b.vms, b.base)
		if err == nil {
			bareInit, bareExit = append(bareInit, toInit), append(bareExit, toExit)
		}
		return err
	}
	for i := range b.o.runs {
		progress("cold start %d/%d", i+1, b.o.runs)
		arms := []func(int) error{sandboxArm, bareArm}
		if i%2 == 1 { // alternate who goes first: drift hits both arms alike
			arms[0], arms[1] = arms[1], arms[0]
		}
		for _, arm := range arms {
			if err := arm(i); err != nil {
				return err
			}
		}
	}
	var total, stop, spawn, steps, boot, finish, g0, g1, g2 []time.Duration
	for _, r := range runs {
		total, stop = append(total, r.total), append(stop, r.stop)
		if r.timeline {
			spawn, steps, boot, finish = append(spawn, r.spawn), append(steps, r.steps), append(boot, r.boot), append(finish, r.exec)
		}
		if r.guest.ok {
			g0, g1, g2 = append(g0, r.guest.prelude), append(g1, r.guest.modules), append(g2, r.guest.mounts)
		}
	}
	med := func(ds []time.Duration) float64 { return durs(ds).median() }
	cold := Row{Name: fmt.Sprintf("cold run -- true (median of %d)", len(runs)), Unit: unitSeconds, Value: med(total), Samples: durs(total)}
	cold = cold.withBaseline("bare boot to init", med(bareInit)).goalRatio(1.25)
	b.rep.Results = append(b.rep.Results, cold)
	exeSize := "its binary"
	if fi, err := os.Stat(b.e.bin); err == nil {
		exeSize = fmt.Sprintf("its %.1f MB binary", float64(fi.Size())/1e6)
	}
	row := func(name string, ds []time.Duration, note string) Row {
		return Row{Name: name, Unit: unitSeconds, Value: med(ds), Samples: durs(ds), Note: note}
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		row("cold: bare QEMU start → canary init logs", bareInit, "kernel boot to user space; the baseline above"),
		row("cold: bare QEMU start → QEMU exit", bareExit, fmt.Sprintf("adds the poweroff; cold run is %.2fx this", med(total)/med(bareExit))),
		row("cold: 1 CLI start → supervisor's boot steps", spawn, "CLI, its version hash, supervisor spawn and hash"),
		row("cold: 2 kernel, initramfs, accel steps", steps, "cache lookups, qemu --version (ms stamps)"),
		row("cold: 3 QEMU start → guest set up", boot, fmt.Sprintf("boot, PID 1, hello, setup; %+.0f ms vs bare to init", (med(boot)-med(bareInit))*1e3)),
		row("cold:     PID 1 start → 1st module", g0, "guest clock; early mounts, hashing "+exeSize+" (canary too)"),
		row("cold:     module loading", g1, "guest clock; 1st → last insmod line"),
		row("cold:     mounts, /etc, control port", g2, "guest clock; last insmod → control port open"),
		row("cold: 4 supervisor ready → CLI exit", finish, "client dial, exec true, exit"),
		row("cold: stop (graceful poweroff, waited out)", stop, "between runs; not part of the figure"),
	)
	return nil
}

// guestSpans are intervals of the sandbox's PID 1 boot, read from the
// timestamps of its console log (guest clock, microseconds).
type guestSpans struct {
	ok                       bool
	prelude, modules, mounts time.Duration
}

func parseGuestLog(path string) guestSpans {
	f, err := os.Open(path)
	if err != nil {
		return guestSpans{}
	}
	defer f.Close()
	var first, firstMod, lastMod, port time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "init: ")
		if !ok {
			continue
		}
		stamp, msg, _ := strings.Cut(rest, " ")
		t, err := time.Parse("15:04:05.000000", stamp)
		if err != nil {
			continue
		}
		if !first.IsZero() && t.Before(first) {
			t = t.Add(24 * time.Hour) // midnight
		}
		switch {
		case first.IsZero():
			first = t
		case strings.HasPrefix(msg, "insmod "):
			if firstMod.IsZero() {
				firstMod = t
			}
			lastMod = t
		case strings.HasPrefix(msg, "control port open"):
			port = t
		}
	}
	if first.IsZero() || firstMod.IsZero() || port.IsZero() {
		return guestSpans{}
	}
	return guestSpans{ok: true, prelude: firstMod.Sub(first), modules: lastMod.Sub(firstMod), mounts: port.Sub(lastMod)}
}

// prepareWorkspace creates the workspace of phases 2–4: the walked tree (100
// files per directory) and the static walker.
func (b *bench) prepareWorkspace(context.Context) error {
	ws, err := b.e.mkdir("ws")
	if err != nil {
		return err
	}
	b.ws, b.files = ws, filepath.Join(ws, "files")
	for i := range b.o.files {
		d := filepath.Join(b.files, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d.txt", i)), []byte("benchmark file\n"), 0o644); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(b.e.walker)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ws, "walker"), bin, 0o755)
}

// bareInitramfs prepares the metadata baseline's VM: bareinit as /init,
// the modules the sandbox loads, and the workspace shared exactly as the
// sandbox shares it.
func (b *bench) bareInitramfs(context.Context) error {
	mods, err := b.kernel.ResolveModules(guestModules)
	if err != nil {
		return err
	}
	files := []vmm.InitramfsFile{{Path: "/init", Mode: 0o755, Source: b.e.bareinit}}
	var list strings.Builder
	for _, m := range mods {
		p := "/bench/modules/" + filepath.Base(m.Path)
		files = append(files, vmm.InitramfsFile{Path: p, Mode: 0o644, Source: m.Path})
		list.WriteString(p + "\n")
	}
	files = append(files, vmm.InitramfsFile{Path: bareModulesList, Mode: 0o644, Data: []byte(list.String())})
	initrd := filepath.Join(b.e.root, "bare.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	err = vmm.WriteInitramfs(f, files)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	b.walkCfg = b.base
	b.walkCfg.Initrd = initrd
	b.walkCfg.Shares = []vmm.Share{{Tag: "ws", HostPath: b.ws}}
	return err
}

// running starts the workspace's sandbox and measures warm execs, the
// sandbox arm of the walk, and the supervisor's memory; then stops it.
func (b *bench) running(ctx context.Context) error {
	progress("starting the workspace sandbox")
	if _, err := b.e.mustCLI(ctx, 0, b.ws, "start", "-q"); err != nil {
		return err
	}
	st, err := b.e.status(ctx, b.ws)
	if err != nil {
		return err
	}
	rssStart, _, err := rss(st.Pid)
	if err != nil {
		return err
	}
	execs, err := b.warmExec(ctx)
	if err != nil {
		return err
	}
	if err := b.walks(ctx); err != nil {
		return err
	}
	execs += b.o.runs + 1
	supRSS, supPeak, err := rss(st.Pid)
	if err != nil {
		return err
	}
	qemuRSS, _, err := rss(st.QEMUPid)
	if err != nil {
		return err
	}
	if _, err := b.e.stop(ctx, b.ws, st); err != nil {
		return err
	}
	mem := Row{Name: fmt.Sprintf("supervisor RSS after %d execs", execs), Unit: unitBytes, Value: supRSS}
	b.rep.Results = append(b.rep.Results, mem.withBaseline("QEMU", qemuRSS).goalAbs(40<<20))
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "mem: supervisor RSS right after start", Unit: unitBytes, Value: rssStart},
		Row{Name: "mem: supervisor peak RSS (VmHWM)", Unit: unitBytes, Value: supPeak},
		Row{Name: "mem: QEMU RSS", Unit: unitBytes, Value: qemuRSS, Note: "2048 MiB guest; for information"},
	)
	return nil
}

// Names of the exec variants the derived rows use.
const (
	hostTrueName  = "exec: host /bin/true"
	cliTrueName   = "exec: exec -- true"
	inMissingName = "exec: in-process Dial+Exec /nonexistent"
	inTrueName    = "exec: in-process Dial+Exec true"
	inAbsTrueName = "exec: in-process Dial+Exec /usr/bin/true"
)

// warmExec times the exec variants, interleaved round by round, and returns
// how many execs reached the VM.
func (b *bench) warmExec(ctx context.Context) (int, error) {
	sb, err := b.e.dirs().ForWorkspace(b.ws)
	if err != nil {
		return 0, err
	}
	cli := func(code int, args ...string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			r, err := b.e.mustCLI(ctx, code, b.ws, args...)
			return r.elapsed, err
		}
	}
	// The CLI's exec path from inside this process: Dial (a status round
	// trip) and Exec (attach, request, exit status).
	inproc := func(want int, argv ...string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			c, _, err := sandbox.Dial(ctx, sb)
			if err != nil {
				return 0, err
			}
			code, err := c.Exec(ctx, control.Exec{Argv: argv, Dir: b.ws}, sandbox.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
			d := time.Since(start)
			var ee *sandbox.ExecError
			if errors.As(err, &ee) {
				code, err = ee.Code, nil
			}
			if err == nil && code != want {
				err = fmt.Errorf("in-process exec %v: exit %d, want %d", argv, code, want)
			}
			return d, err
		}
	}
	variants := []struct {
		name, note string
		fn         func() (time.Duration, error)
		ds         []time.Duration
	}{
		{name: hostTrueName, note: "subprocess spawn floor; the baseline above", fn: func() (time.Duration, error) {
			start := time.Now()
			err := exec.CommandContext(ctx, "/bin/true").Run()
			return time.Since(start), err
		}},
		{name: "exec: acp-sandbox --help", note: "CLI process alone", fn: cli(0, "--help")},
		{name: "exec: acp-sandbox ls --json", note: "CLI + supervisor status round trip, no guest", fn: cli(0, "ls", "--json")},
		{name: "exec: exec -- /nonexistent", note: "CLI + supervisor + guest lookup fails; no guest process", fn: cli(127, "exec", "--", "/nonexistent")},
		{name: cliTrueName, note: "the figure above", fn: cli(0, "exec", "--", "true")},
		{name: inMissingName, note: "no CLI process", fn: inproc(127, "/nonexistent")},
		{name: inTrueName, note: "no CLI process", fn: inproc(0, "true")},
		{name: inAbsTrueName, note: "no PATH search", fn: inproc(0, "/usr/bin/true")},
	}
	const warmups = 3
	progress("warm exec: %d rounds of %d variants", b.o.execs, len(variants))
	for i := range b.o.execs + warmups {
		for j := range variants {
			v := &variants[j]
			d, err := v.fn()
			if err != nil {
				return 0, fmt.Errorf("%s: %w", v.name, err)
			}
			if i >= warmups {
				v.ds = append(v.ds, d)
			}
		}
	}
	p := func(ds []time.Duration, q float64) float64 { return durs(ds).pct(q) }
	get := func(name string) []time.Duration {
		for _, v := range variants {
			if v.name == name {
				return v.ds
			}
		}
		panic("bench: no exec variant " + name)
	}
	p50 := func(name string) float64 { return p(get(name), .5) }
	hostTrue, cliTrue := get(hostTrueName), get(cliTrueName)
	med := Row{Name: fmt.Sprintf("warm exec -- true p50 (of %d)", len(cliTrue)), Unit: unitSeconds, Value: p(cliTrue, .5), P90: p(cliTrue, .9), Samples: durs(cliTrue)}
	tail := Row{Name: "warm exec -- true p90", Unit: unitSeconds, Value: p(cliTrue, .9)}
	b.rep.Results = append(b.rep.Results,
		med.withBaseline("host /bin/true", p(hostTrue, .5)).goalAbs(0.030),
		tail.withBaseline("host /bin/true p90", p(hostTrue, .9)))
	for _, v := range variants {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: v.name, Unit: unitSeconds, Value: p(v.ds, .5), P90: p(v.ds, .9), Note: v.note, Samples: durs(v.ds)})
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "exec: ⇒ CLI process share of exec true", Unit: unitSeconds, Value: p50(cliTrueName) - p50(inTrueName),
			Note: "p50 exec -- true − p50 in-process"},
		Row{Name: "exec: ⇒ guest process start+reap of true", Unit: unitSeconds, Value: p50(inTrueName) - p50(inMissingName),
			Note: "p50 in-process true − /nonexistent"},
		Row{Name: "exec: ⇒ guest PATH search for true", Unit: unitSeconds, Value: p50(inTrueName) - p50(inAbsTrueName),
			Note: "p50 in-process true − /usr/bin/true"},
	)
	if spawn, err := b.guestSpawn(ctx); err != nil {
		b.rep.Notes = append(b.rep.Notes, "no in-guest spawn timing: "+err.Error())
	} else {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "exec: in-guest fork+exec of /usr/bin/true", Unit: unitSeconds,
			Value: spawn.median(), P90: spawn.pct(.9), Samples: spawn, Note: "bash `time` in the guest: TCG's floor for any process"})
	}
	return (b.o.execs+warmups)*5 + 1, nil
}

// guestSpawn times, inside the guest, what starting a dynamically linked
// process costs there regardless of acp-sandbox: bash's `time` around
// /usr/bin/true (fork, exec, ld.so and libc from the /usr share, exit,
// wait), millisecond resolution.
func (b *bench) guestSpawn(ctx context.Context) (samples, error) {
	const n = 20
	r, err := b.e.mustCLI(ctx, 0, b.ws, "exec", "--", "bash", "-c",
		fmt.Sprintf("TIMEFORMAT=%%3R; for i in $(seq %d); do time /usr/bin/true; done", n))
	if err != nil {
		return nil, err
	}
	var s samples
	for _, f := range strings.Fields(r.stderr) {
		if v, err := strconv.ParseFloat(f, 64); err == nil {
			s = append(s, v)
		}
	}
	if len(s) != n {
		return nil, fmt.Errorf("bash printed %q", r.stderr)
	}
	return s, nil
}

// walks runs the metadata comparison with the sandbox and a bare walk VM
// both up: one untimed warm-up walk each, then N rounds, alternating which
// goes first, so load from elsewhere on the machine hits both arms alike.
// Each VM idles while the other walks.
func (b *bench) walks(ctx context.Context) error {
	progress("walks: booting the bare walk VM next to the sandbox")
	vm, err := b.e.startWalkVM(ctx, b.vms, b.walkCfg, b.ws, b.files)
	if err != nil {
		return err
	}
	defer vm.close(ctx)
	inSandbox := func() (walk.Result, error) {
		r, err := b.e.mustCLI(ctx, 0, b.ws, "exec", "--", filepath.Join(b.ws, "walker"), b.files)
		if err != nil {
			return walk.Result{}, err
		}
		return walk.Parse(r.stdout)
	}
	inBare := func() (walk.Result, error) { return vm.walk(ctx) }
	var sbx, bare []walk.Result
	for i := range b.o.runs + 1 { // round 0 is the warm-up
		progress("walks: round %d/%d", i, b.o.runs)
		arms := []struct {
			fn  func() (walk.Result, error)
			out *[]walk.Result
		}{{inSandbox, &sbx}, {inBare, &bare}}
		if i%2 == 1 {
			arms[0], arms[1] = arms[1], arms[0]
		}
		for _, a := range arms {
			r, err := a.fn()
			if err != nil {
				return err
			}
			*a.out = append(*a.out, r)
		}
	}
	if err := vm.close(ctx); err != nil {
		return err
	}
	want := b.o.files + (b.o.files+99)/100 + 1 // files, their directories, the root
	for _, r := range append(sbx, bare...) {
		if r.Entries != want {
			return fmt.Errorf("a walk saw %d entries, want %d", r.Entries, want)
		}
	}
	elapsed := func(rs []walk.Result) samples {
		s := make(samples, len(rs))
		for i, r := range rs {
			s[i] = r.Elapsed.Seconds()
		}
		return s
	}
	sw, bw := elapsed(sbx[1:]), elapsed(bare[1:])
	row := Row{Name: fmt.Sprintf("workspace walk, %d entries (median of %d)", want, len(sw)), Unit: unitSeconds, Value: sw.median(), Samples: sw}
	b.rep.Results = append(b.rep.Results, row.withBaseline("bare 9p", bw.median()).goalRatio(1.1))
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "walk: sandbox, per entry", Unit: unitSeconds, Value: sw.median() / float64(want), Note: "lookup + getattr over 9p, cache=none"},
		Row{Name: "walk: bare 9p, per entry", Unit: unitSeconds, Value: bw.median() / float64(want), Samples: bw},
		Row{Name: "walk: sandbox warm-up walk", Unit: unitSeconds, Value: sbx[0].Elapsed.Seconds(), Note: "untimed"},
		Row{Name: "walk: bare warm-up walk", Unit: unitSeconds, Value: bare[0].Elapsed.Seconds(), Note: "untimed"},
	)
	return nil
}
