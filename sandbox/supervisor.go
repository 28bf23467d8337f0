package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/internal/version"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"github.com/acp-sandbox/acp-sandbox/vmm/kernel"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// Options configure a supervisor. Zero values are documented per field.
type Options struct {
	Accel     vmm.Accel // "" = detect (KVM only when it truly works)
	Kernel    string    // user vmlinux (or bzImage); "" = Debian's, cached
	Modules   string    // user modules dir, with Kernel
	CPUs      int       // 0 = the configuration's ([sandbox] cpus; default 2)
	MemoryMiB int       // 0 = the configuration's ([sandbox] memory; default 2 GiB)
	// IdleTimeout: nil = the configuration's ([sandbox] idle_timeout;
	// default 30m); 0 = never stop when idle.
	IdleTimeout *time.Duration
	// Network is the clients' extra egress rules, in force together with
	// the configuration's. Clients replace them while the VM runs
	// (Client.SetNetwork).
	Network Network
	Logger  *slog.Logger // nil = discard
	// Progress receives human progress lines while the VM starts.
	Progress func(format string, args ...any)
}

// Guest user facts. The guest user is never root. It has the host user's
// uid and gid, except when the host user is root: then it is uid 1000, gid 0,
// with CAP_DAC_OVERRIDE and CAP_FOWNER as ambient capabilities, so it can
// edit the root-owned workspace, and the files it creates (group from gid 0,
// owner left alone by QEMU) belong to root on the host.
const (
	GuestUser     = "agent"
	GuestHome     = "/home/agent"
	rootGuestUID  = 1000
	bootModuleDir = "/.acp-sandbox/modules"
)

// guestModules are loaded at boot, dependencies resolved from the kernel.
var guestModules = []string{"virtio_mmio", "virtio_console", "9pnet_virtio", "9p", "virtio_net"}

type supervisor struct {
	sb      *Sandbox
	opt     Options
	log     *slog.Logger
	version string

	kernel    *kernel.Kernel
	initrd    string
	verdict   vmm.Verdict
	machine   *vmm.QEMU
	sess      *yamux.Session
	net       *netstack.Stack
	audit     *netAudit
	approvals *approvals
	creds     *creds
	started   time.Time
	booted    time.Duration

	mu          sync.Mutex
	cfg         *config.Config // the workspace's effective configuration
	eff         Network        // the rules in force: cfg's and opt.Network
	applied     bool           // eff has been given to the current stack
	seenSHA     string         // sandbox.toml content last looked at
	acp         []*acpSession  // what editors gave over ACP, oldest first
	lastLoadErr string
	idle        time.Duration
	clients     int
	lastActive  time.Time
	stopOnce    sync.Once
	stopc       chan string // reason
}

// Supervise boots the sandbox's VM and serves clients until it is stopped,
// idles out, the VM dies or ctx ends. ready is called once clients can
// connect. It always leaves no QEMU behind.
func Supervise(ctx context.Context, sb *Sandbox, opt Options, ready func()) (err error) {
	s := &supervisor{sb: sb, opt: opt, log: opt.Logger, stopc: make(chan string, 1), approvals: newApprovals()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opt.Progress == nil {
		s.opt.Progress = func(string, ...any) {}
	}
	if s.version, err = version.Hash(); err != nil {
		return fmt.Errorf("cannot hash own executable: %w", err)
	}
	if err := sb.Prepare(); err != nil {
		return err
	}
	lock, err := tryLock(sb.supLock())
	if err != nil {
		return err
	}
	if lock == nil {
		return fmt.Errorf("a supervisor for %s is already running", sb.Workspace)
	}
	defer lock.Close()
	defer s.cleanupFiles()
	cfg, err := LoadConfig(sb)
	if err != nil {
		return configError(err)
	}
	s.cfg, s.seenSHA = cfg, cfg.PolicyStatus.SHA256
	if s.opt.CPUs <= 0 {
		s.opt.CPUs = cfg.Sandbox.CPUs
	}
	if s.opt.MemoryMiB <= 0 {
		s.opt.MemoryMiB = cfg.Sandbox.MemoryMiB()
	}
	s.idle = cfg.Sandbox.IdleTimeout
	if s.opt.IdleTimeout != nil {
		s.idle = *s.opt.IdleTimeout
	}
	s.mu.Lock()
	err = s.applyRulesLocked()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("network rules: %w", err)
	}
	if st := cfg.PolicyStatus; st.State == config.PolicyPending {
		s.opt.Progress("%s changed and is not approved: the last approved policy applies; run `acp-sandbox policy approve` to review it", st.File)
	}
	if s.audit, err = openNetAudit(sb); err != nil {
		return err
	}
	defer s.audit.Close()
	if s.creds, err = s.setupCreds(); err != nil {
		return err
	}
	if len(s.creds.active) > 0 {
		s.log.Info("credentials injected on the way out (the VM holds placeholders)", "rules", s.creds.active)
	}

	// Boot as named, ordered steps (after firecracker-go-sdk's handlers):
	// each one's failure names itself.
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"kernel", s.ensureKernel},
		{"initramfs", s.ensureInitramfs},
		{"accelerator", s.detectAccel},
		{"boot", s.boot},
		{"setup", s.setupGuest},
	}
	s.started = time.Now()
	timings := make([]any, 0, 2*len(steps))
	for _, st := range steps {
		t0 := time.Now()
		if err := st.fn(ctx); err != nil {
			s.shutdown()
			return fmt.Errorf("%s: %w", st.name, err)
		}
		timings = append(timings, st.name, time.Since(t0).Round(time.Millisecond))
	}
	s.booted = time.Since(s.started)
	s.log.Info("sandbox ready", append([]any{"workspace", sb.Workspace, "accel", s.verdict.Accel, "total", s.booted.Round(time.Millisecond)}, timings...)...)

	ln, err := listenUnix(sb.SupSocket())
	if err != nil {
		s.shutdown()
		return err
	}
	defer ln.Close()
	s.lastActive = time.Now()
	if ready != nil {
		ready()
	}
	go s.acceptLoop(ln)
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watchPolicy(wctx)
	}()
	reason := s.wait(ctx)
	stopWatch()
	<-watched
	s.log.Info("stopping", "reason", reason)
	ln.Close()
	s.shutdown()
	return nil
}

func (s *supervisor) ensureKernel(ctx context.Context) error {
	kopt := kernel.Options{CacheDir: KernelCacheDir(s.sb.CacheDir), Progress: s.opt.Progress, Logger: s.log}
	var err error
	if s.opt.Kernel != "" {
		s.kernel, err = kernel.FromPaths(ctx, s.opt.Kernel, s.opt.Modules, kopt)
	} else {
		s.kernel, err = kernel.Ensure(ctx, kopt)
	}
	return err
}

// ensureInitramfs builds (once per binary and kernel) the initramfs: this
// very executable as /init plus the kernel modules the guest loads.
func (s *supervisor) ensureInitramfs(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := CheckStatic(exe); err != nil {
		return err
	}
	dir := initramfsCacheDir(s.sb.CacheDir)
	s.initrd = filepath.Join(dir, s.version+"-"+s.kernel.Version+".cpio")
	if _, err := os.Stat(s.initrd); err == nil {
		return nil
	}
	mods, err := s.kernel.ResolveModules(guestModules)
	if err != nil {
		return err
	}
	files := []vmm.InitramfsFile{{Path: "/init", Mode: 0o755, Source: exe}}
	// One line per module: its path, then the names it depends on, so
	// the guest can load independent modules in parallel.
	var list []byte
	for _, m := range mods {
		p := bootModuleDir + "/" + filepath.Base(m.Path)
		files = append(files, vmm.InitramfsFile{Path: p, Mode: 0o644, Source: m.Path})
		list = append(list, strings.Join(append([]string{p}, m.Deps...), " ")+"\n"...)
	}
	files = append(files,
		vmm.InitramfsFile{Path: control.ModulesList, Mode: 0o644, Data: list},
		vmm.InitramfsFile{Path: control.VersionFile, Mode: 0o644, Data: []byte(s.version + "\n")},
	)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "initramfs-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := vmm.WriteInitramfs(tmp, files); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.initrd)
}

func (s *supervisor) detectAccel(ctx context.Context) error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return errors.New("qemu-system-x86_64 not found: install it with `apt-get install --no-install-recommends qemu-system-x86`")
	}
	s.verdict = vmm.DetectAccel(ctx, vmm.AccelOptions{
		Force:     s.opt.Accel,
		CacheFile: accelCacheFile(s.sb.CacheDir),
		CacheKey:  func() (string, error) { return AccelCacheKey(ctx, s.kernel.Version) },
		Probe:     s.canary,
	})
	s.log.Info("accelerator", "accel", s.verdict.Accel, "reason", s.verdict.Reason)
	if s.verdict.Accel == vmm.AccelTCG && s.opt.Accel == "" {
		s.opt.Progress("using TCG (software emulation): %s", s.verdict.Reason)
	}
	return nil
}

// AccelCacheKey keys a canary verdict: it holds for one host boot, kernel
// and QEMU version.
func AccelCacheKey(ctx context.Context, kernelVersion string) (string, error) {
	qv, err := vmm.Version(ctx, "")
	if err != nil {
		return "", err
	}
	return vmm.BootID() + "/" + kernelVersion + "/" + qv, nil
}

// CachedAccel is the canary verdict a start would reuse for this kernel,
// if one is cached (for doctor: no canary boots there).
func CachedAccel(ctx context.Context, cacheRoot, kernelVersion string) (vmm.Verdict, bool) {
	key, err := AccelCacheKey(ctx, kernelVersion)
	if err != nil {
		return vmm.Verdict{}, false
	}
	return vmm.CachedVerdict(accelCacheFile(cacheRoot), key)
}

// canary boots the kernel with KVM and an init that powers off at once.
func (s *supervisor) canary(ctx context.Context) error {
	param, err := control.EncodeBoot(&control.Boot{Canary: true})
	if err != nil {
		return err
	}
	sock := filepath.Join(s.sb.RuntimeDir, "canary.sock")
	_ = os.Remove(sock)
	defer os.Remove(sock)
	q, err := vmm.Start(vmm.Config{
		Kernel: s.kernel.Vmlinux, Initrd: s.initrd, Cmdline: param, Accel: vmm.AccelKVM,
		CPUs: 1, MemoryMiB: 256, ControlSocket: sock, StderrLog: filepath.Join(s.sb.StateDir, "canary.log"),
	})
	if err != nil {
		return err
	}
	defer q.Kill()
	c, err := q.ConnectControl(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case <-q.Done():
		return q.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *supervisor) guestIDs() (uid, gid int, caps bool) {
	if os.Getuid() == 0 {
		return rootGuestUID, 0, true
	}
	return os.Getuid(), os.Getgid(), false
}

func (s *supervisor) boot(ctx context.Context) error {
	uid, gid, caps := s.guestIDs()
	bootCfg := &control.Boot{
		Workspace: s.sb.Workspace, User: GuestUser, UID: uid, GID: gid, Home: GuestHome,
		WorkspaceCaps: caps, Port: vmm.ControlPort,
		Mounts: []control.Mount{
			{Tag: "usr", Path: "/usr", ReadOnly: true, Cache: "loose"},
			{Tag: "home", Path: GuestHome},
			// access=any: one 9p attach for all guest users, so QEMU
			// leaves the owner of new files alone (it would chown them
			// to the guest uid): files the sandbox creates belong to
			// the host user, root included.
			{Tag: "ws", Path: s.sb.Workspace, Options: "access=any"},
			{Tag: "net", Path: control.NetInfoDir, ReadOnly: true},
		},
		Net: true,
	}
	_, extra := configMounts(s.cfg)
	bootCfg.Mounts = append(bootCfg.Mounts, extra...)
	param, err := control.EncodeBoot(bootCfg)
	if err != nil {
		return err
	}
	// The sandbox home is exported alone: the rest of the state dir (logs,
	// later the CA key and approvals) must stay invisible to the guest.
	if err := os.Chown(s.sb.Home(), uid, gid); err != nil && os.Getuid() == 0 {
		return err
	}
	s.opt.Progress("booting the sandbox VM (%s)", s.verdict.Accel)
	// Under TCG on a loaded host an early-boot hang happens now and then
	// (DESIGN.md §4); a second attempt boots. A VM that fails outright
	// (QEMU exits) is not retried: that failure repeats.
	for attempt := 1; attempt <= bootAttempts; attempt++ {
		err = s.bootOnce(ctx, param)
		if err == nil || !errors.Is(err, errBootTimeout) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("the VM did not come up in time; retrying", "attempt", attempt, "err", err)
		if attempt < bootAttempts {
			s.opt.Progress("the VM did not come up within %v; booting it again", bootAttemptTimeout)
		}
		if s.sess != nil {
			s.sess.Close()
		}
		_ = s.machine.Kill()
		<-s.machine.Done()
		s.closeNet()
	}
	return err
}

// Boot deadline per attempt: TCG boots take 2–15 s here even with five
// VMs booting at once.
const (
	bootAttempts       = 2
	bootAttemptTimeout = 90 * time.Second
)

var errBootTimeout = errors.New("timed out")

func (s *supervisor) bootOnce(ctx context.Context, param string) error {
	for _, p := range []string{s.sb.ControlSocket(), s.sb.QMPSocket()} {
		_ = os.Remove(p)
	}
	vmEnd, err := s.startNet()
	if err != nil {
		return err
	}
	// QEMU gets its own copy of the VM end; ours must go, or the stack
	// would not see QEMU's exit as the link closing.
	defer vmEnd.Close()
	s.machine, err = vmm.Start(vmm.Config{
		Kernel: s.kernel.Vmlinux, Initrd: s.initrd, Cmdline: param, Accel: s.verdict.Accel,
		CPUs: s.opt.CPUs, MemoryMiB: s.opt.MemoryMiB,
		Shares: append([]vmm.Share{
			{Tag: "usr", HostPath: "/usr", ReadOnly: true},
			{Tag: "home", HostPath: s.sb.Home()},
			{Tag: "ws", HostPath: s.sb.Workspace},
			{Tag: "net", HostPath: s.sb.NetInfoDir(), ReadOnly: true},
		}, s.configShares()...),
		Net:           vmEnd,
		ControlSocket: s.sb.ControlSocket(), QMPSocket: s.sb.QMPSocket(),
		ConsoleLog: s.sb.ConsoleLog(), StderrLog: s.sb.QEMULog(),
	})
	if err != nil {
		return err
	}
	_ = os.WriteFile(s.sb.QEMUPidFile(), []byte(strconv.Itoa(s.machine.Pid())+"\n"), 0o600)
	bctx, cancel := context.WithTimeout(ctx, bootAttemptTimeout)
	defer cancel()
	conn, err := s.machine.ConnectControl(bctx)
	if err != nil {
		return s.bootFailure(bctx, err)
	}
	s.sess, err = yamux.Client(conn, control.YamuxConfig(io.Discard))
	if err != nil {
		return err
	}
	// The guest answers hello once PID 1 has mounted everything and opened
	// its port: that is "booted".
	var reply control.Reply
	if err := s.call(bctx, control.Request{Op: control.OpHello, Hello: &control.Hello{Version: s.version}}, &reply); err != nil {
		return s.bootFailure(bctx, err)
	}
	if reply.Hello == nil || reply.Hello.Version != s.version {
		return fmt.Errorf("guest runs binary version %v, host %s: stale initramfs cache; remove %s", reply.Hello, s.version, filepath.Dir(s.initrd))
	}
	return nil
}

// bootFailure explains a VM that never answered: QEMU's error or the tail
// of the guest console. A deadline that passed while QEMU still ran wraps
// errBootTimeout.
func (s *supervisor) bootFailure(bctx context.Context, err error) error {
	select {
	case <-s.machine.Done():
		err = s.machine.Err()
	default:
		if bctx.Err() != nil {
			err = fmt.Errorf("%w after %v", errBootTimeout, bootAttemptTimeout)
		}
	}
	return fmt.Errorf("the VM did not come up (%w); console tail:\n%s", err, vmm.Tail(s.sb.ConsoleLog(), 15))
}

func (s *supervisor) setupGuest(ctx context.Context) error {
	setup := &control.Setup{
		Hostname: "sandbox-" + s.sb.ID[:8],
		Files:    append(hostEtcFiles(), s.creds.files...),
		Env:      append(configEnv(s.cfg), s.creds.env...),
	}
	setup.TimeUnixNano = time.Now().UnixNano()
	var reply control.Reply
	send := func(w *control.Writer) error { return control.WriteSetup(w, setup) }
	sctx, cancel := context.WithTimeout(ctx, bootAttemptTimeout)
	defer cancel()
	if err := s.exchange(sctx, send, &reply); err != nil {
		return s.bootFailure(sctx, err)
	}
	if reply.Error != "" {
		return errors.New(reply.Error)
	}
	return nil
}

// call runs one request/reply exchange on a new stream.
func (s *supervisor) call(ctx context.Context, req control.Request, reply *control.Reply) error {
	return s.exchange(ctx, func(w *control.Writer) error { return w.JSON(control.TypeJSON, req) }, reply)
}

// exchange opens a stream, lets send write the request, and reads the reply.
func (s *supervisor) exchange(ctx context.Context, send func(*control.Writer) error, reply *control.Reply) error {
	st, err := s.sess.OpenStream()
	if err != nil {
		return err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	if err := send(control.NewWriter(st)); err != nil {
		return err
	}
	return control.ReadJSON(st, control.TypeJSON, reply)
}

// wait blocks until a reason to stop.
func (s *supervisor) wait(ctx context.Context) string {
	tick := time.NewTicker(idleTick(s.idle))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "signal"
		case r := <-s.stopc:
			return r
		case <-s.machine.Done():
			err := s.machine.Err()
			s.log.Error("VM exited unexpectedly", "err", err, "console", vmm.Tail(s.sb.ConsoleLog(), 10))
			return fmt.Sprintf("VM exited unexpectedly (%v)", err)
		case <-s.sess.CloseChan():
			return "control channel closed"
		case <-tick.C:
			if s.idle <= 0 {
				continue
			}
			s.mu.Lock()
			idle := s.clients == 0 && time.Since(s.lastActive) >= s.idle
			s.mu.Unlock()
			if idle {
				return fmt.Sprintf("idle for %v", s.idle)
			}
		}
	}
}

func idleTick(d time.Duration) time.Duration {
	if d <= 0 || d/4 > 30*time.Second {
		return 30 * time.Second
	}
	return max(d/4, 100*time.Millisecond)
}

func (s *supervisor) requestStop(reason string) {
	s.stopOnce.Do(func() { s.stopc <- reason })
}

// shutdown stops the VM: guest poweroff (flushes 9p), then QMP quit, then
// SIGKILL. It returns only when QEMU is gone.
func (s *supervisor) shutdown() {
	defer s.closeNet()
	if s.machine == nil {
		return
	}
	select {
	case <-s.machine.Done():
		return
	default:
	}
	if s.sess != nil && !s.sess.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var r control.Reply
		err := s.call(ctx, control.Request{Op: control.OpPoweroff}, &r)
		cancel()
		if err == nil || errors.Is(err, io.EOF) {
			if waitDone(s.machine, 15*time.Second) {
				return
			}
		}
		s.log.Warn("guest poweroff did not finish; asking QEMU to quit", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = vmm.QMPQuit(ctx, s.sb.QMPSocket())
	cancel()
	if waitDone(s.machine, 5*time.Second) {
		return
	}
	s.log.Warn("QEMU did not quit; killing it")
	_ = s.machine.Kill()
	<-s.machine.Done()
}

func waitDone(m vmm.Machine, d time.Duration) bool {
	select {
	case <-m.Done():
		return true
	case <-time.After(d):
		return false
	}
}

func (s *supervisor) cleanupFiles() {
	for _, p := range []string{s.sb.SupSocket(), s.sb.ControlSocket(), s.sb.QMPSocket(), s.sb.QEMUPidFile()} {
		_ = os.Remove(p)
	}
}

func (s *supervisor) acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

// Client requests to the supervisor.
const (
	opAttach   = "attach" // splice this connection to a new guest stream
	opStatus   = "status"
	opStop     = "stop"
	opNet      = "network"  // replace the egress rules
	opApprover = "approver" // answer approve-on-block questions on this connection
)

type supRequest struct {
	Op      string   `json:"op"`
	Network *Network `json:"network,omitempty"`
}

type supReply struct {
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// Status describes a running sandbox.
type Status struct {
	ID          string    `json:"id"`
	Workspace   string    `json:"workspace"`
	Pid         int       `json:"pid"`
	QEMUPid     int       `json:"qemuPid"`
	Accel       vmm.Accel `json:"accel"`
	AccelReason string    `json:"accelReason"`
	Kernel      string    `json:"kernel"`
	Version     string    `json:"version"`
	Started     time.Time `json:"started"`
	BootMillis  int64     `json:"bootMillis"`
	Clients     int       `json:"clients"`
	IdleTimeout string    `json:"idleTimeout,omitempty"`
	// Network is the rules in force: the configuration's and Extra.
	Network Network `json:"network"`
	// Extra is the rules clients gave (--allow/--deny, agent presets).
	Extra Network `json:"extra"`
	// Credentials are the credential rules in force: name, host and where
	// the secret comes from (never the secret).
	Credentials []string `json:"credentials,omitempty"`
	// Policy is the state of the workspace's sandbox.toml: "approved",
	// "pending" (changed, not applied) or "none".
	Policy string `json:"policy"`
}

func (s *supervisor) status() *Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &Status{
		ID: s.sb.ID, Workspace: s.sb.Workspace, Pid: os.Getpid(), QEMUPid: s.machine.Pid(),
		Accel: s.verdict.Accel, AccelReason: s.verdict.Reason, Kernel: s.kernel.Version,
		Version: s.version, Started: s.started, BootMillis: s.booted.Milliseconds(), Clients: s.clients,
		Network: s.eff, Extra: s.opt.Network, Policy: string(s.cfg.PolicyStatus.State),
		Credentials: s.creds.active,
	}
	if s.idle > 0 {
		st.IdleTimeout = s.idle.String()
	}
	return st
}

func (s *supervisor) handle(c net.Conn) {
	defer c.Close()
	w := control.NewWriter(c)
	var req supRequest
	if err := control.ReadJSON(c, control.TypeJSON, &req); err != nil {
		return
	}
	switch req.Op {
	case opStatus:
		_ = w.JSON(control.TypeJSON, supReply{Status: s.status()})
	case opStop:
		_ = w.JSON(control.TypeJSON, supReply{})
		s.requestStop("stop requested")
	case opApprover:
		if err := w.JSON(control.TypeJSON, supReply{}); err != nil {
			return
		}
		s.serveApprover(c, w)
	case opNet:
		var r supReply
		if req.Network == nil {
			r.Error = "network request without rules"
		} else if err := s.setNetwork(*req.Network); err != nil {
			r.Error = err.Error()
		}
		_ = w.JSON(control.TypeJSON, r)
	case opAttach:
		s.mu.Lock()
		s.clients++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.clients--
			s.lastActive = time.Now()
			s.mu.Unlock()
		}()
		st, err := s.sess.OpenStream()
		if err != nil {
			_ = w.JSON(control.TypeJSON, supReply{Error: "the sandbox VM is not reachable: " + err.Error()})
			return
		}
		defer st.Close()
		if err := w.JSON(control.TypeJSON, supReply{}); err != nil {
			return
		}
		splice(c, st)
	default:
		_ = w.JSON(control.TypeJSON, supReply{Error: fmt.Sprintf("unknown request %q", req.Op)})
	}
}

// splice copies both ways until either side ends, then closes both.
func splice(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}

func listenUnix(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	return ln, nil
}

// tryLock takes an exclusive flock without blocking; nil file means held
// elsewhere.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}
