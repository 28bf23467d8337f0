package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/acp"
	"github.com/acp-sandbox/acp-sandbox/internal/acpclient"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
)

// The bridge group measures `acp-sandbox -- AGENT` (the ACP bridge) with
// the scripted agent built into the binary (`demo-agent`, /init demo-agent
// in the VM), against the same agent as a plain host process and against
// the raw control channel (`acp-sandbox exec -i`, no bridge), in one run.
//
// Arms, each a long-lived process the bench talks to over pipes:
//
//	host agent      acp-sandbox demo-agent on the host: no VM, no bridge
//	bridge          acp-sandbox --workspace WS -- /init demo-agent
//	exec -i agent   acp-sandbox exec -i -- /init demo-agent: the same
//	                agent in the same VM, ACP straight over the control
//	                channel; bridge − this is the bridge's own cost
//	exec -i lines   acp-sandbox exec -i -- WS/lines (bench/lines): writes
//	                the host agent's captured notification lines on
//	                request, one write per line or in bulk; echoes a line
//	exec -i cat     acp-sandbox exec -i -- cat: an echo
//
// Then fresh bridges carry one huge line for the memory figure, and fresh
// processes of the agent arms see the agent crash and QEMU killed for the
// fault figures. See README.md for what each figure counts.
func (b *bench) bridgePhases() []phase {
	return []phase{
		{"bridge workspace", b.bridgeWorkspace},
		{"bridge throughput and latency", b.bridgeFlow},
		{"bridge memory", b.bridgeMemory},
		{"bridge faults", b.bridgeFaults},
	}
}

// Arm names.
const (
	armHost   = "host agent"
	armBridge = "bridge"
	armVM     = "exec -i agent"
	armLines  = "exec -i lines"
	armBulk   = "exec -i lines, bulk"
	armEcho   = "exec -i cat"
	armGoEcho = "exec -i lines, echo"
)

func (b *bench) hostAgentArgv() []string { return []string{b.e.bin, "demo-agent"} }

func (b *bench) bridgeArgv() []string {
	return []string{b.e.bin, "--workspace", b.bws, "--", "/init", "demo-agent"}
}

func (b *bench) vmAgentArgv() []string {
	return []string{b.e.bin, "exec", "-i", "--", "/init", "demo-agent"}
}

// bridgeWorkspace creates the group's workspace with the lines helper in it
// and starts its sandbox (untimed; the first start also caches the kernel
// and this binary's initramfs).
func (b *bench) bridgeWorkspace(ctx context.Context) error {
	ws, err := b.e.mkdir("bridge")
	if err != nil {
		return err
	}
	b.bws = ws
	bin, err := os.ReadFile(b.e.lines)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ws, "lines"), bin, 0o755); err != nil {
		return err
	}
	progress("bridge: starting the bridge workspace's sandbox (untimed)")
	st, err := b.startVM(ctx)
	if err != nil {
		return err
	}
	if b.rep.Host.Accel == "" {
		b.rep.Host.Accel, b.rep.Host.AccelReason, b.rep.Host.Kernel = string(st.Accel), st.AccelReason, st.Kernel
	}
	return nil
}

// startVM starts (or finds) the bridge workspace's sandbox.
func (b *bench) startVM(ctx context.Context) (*sandbox.Status, error) {
	if _, err := b.e.mustCLI(ctx, 0, b.bws, "start", "-q"); err != nil {
		return nil, err
	}
	return b.e.status(ctx, b.bws)
}

// stamped keeps a process's stderr with the time each write arrived, so
// the host-side arrival of a line can be timed.
type stamped struct {
	mu     sync.Mutex
	buf    []byte
	writes []stampedWrite
}

type stampedWrite struct {
	end int // offset in buf after this write
	at  time.Time
}

const stampedMax = 4 << 20

func (s *stamped) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf)+len(p) <= stampedMax {
		s.buf = append(s.buf, p...)
		s.writes = append(s.writes, stampedWrite{len(s.buf), now})
	}
	return len(p), nil
}

// size is how many bytes were kept so far: an offset for at and since.
func (s *stamped) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// at is when the first text at or after offset from had arrived in full.
func (s *stamped) at(from int, text string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := bytes.Index(s.buf[from:], []byte(text))
	if i < 0 {
		return time.Time{}, false
	}
	end := from + i + len(text)
	for _, w := range s.writes {
		if w.end >= end {
			return w.at, true
		}
	}
	return time.Time{}, false
}

func (s *stamped) since(from int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf[from:])
}

func (s *stamped) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf[max(0, len(s.buf)-2000):])
}

// agentPeer is an ACP agent command (any arm that speaks ACP) seen from the
// editor's side, initialized and with one session.
type agentPeer struct {
	name    string
	c       *acpclient.Client
	stderr  *stamped
	session string
}

func (b *bench) startAgent(ctx context.Context, name string, argv []string, env ...string) (*agentPeer, error) {
	p := &agentPeer{name: name, stderr: &stamped{}}
	c, err := acpclient.Start(argv, append(slices.Clone(b.e.vars), env...), b.bws, p.stderr, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.c = c
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute) // the bridge may boot the VM
	defer cancel()
	_, err = c.Call(cctx, "initialize", map[string]any{"protocolVersion": 1, "clientCapabilities": map[string]any{}})
	var res json.RawMessage
	if err == nil {
		res, err = c.Call(cctx, "session/new", map[string]any{"cwd": b.bws, "mcpServers": []any{}})
	}
	var sr struct {
		SessionID string `json:"sessionId"`
	}
	if err == nil {
		if err = json.Unmarshal(res, &sr); err == nil && sr.SessionID == "" {
			err = fmt.Errorf("session/new returned %s", res)
		}
	}
	if err != nil {
		p.close()
		return nil, p.fail("initialize and session/new", err)
	}
	p.session = sr.SessionID
	return p, nil
}

func (p *agentPeer) fail(what string, err error) error {
	return fmt.Errorf("%s: %s: %w\nits stderr ends:\n%s", p.name, what, err, p.stderr.tail())
}

func (p *agentPeer) prompt(ctx context.Context, text string) (json.RawMessage, error) {
	return p.c.Call(ctx, "session/prompt", map[string]any{
		"sessionId": p.session,
		"prompt":    []any{map[string]any{"type": "text", "text": text}},
	})
}

// stream times one prompt `stream n`: from sending it to its response, all
// n notifications received before.
func (p *agentPeer) stream(ctx context.Context, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	before := len(p.c.Updates())
	start := time.Now()
	res, err := p.prompt(ctx, "stream "+strconv.Itoa(n))
	d := time.Since(start)
	if err != nil {
		return 0, p.fail("stream", err)
	}
	if got := len(p.c.Updates()) - before; got != n || !bytes.Contains(res, []byte("end_turn")) {
		return 0, fmt.Errorf("%s: stream %d: %d notifications, response %s", p.name, n, got, res)
	}
	return d, nil
}

// roundTrip times one request the agent answers at once, without work.
func (p *agentPeer) roundTrip(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := p.c.Call(ctx, "authenticate", map[string]any{"methodId": "demo-login"})
	d := time.Since(start)
	if err != nil {
		return 0, p.fail("authenticate", err)
	}
	return d, nil
}

// close ends the agent as an editor does (stdin EOF) and waits for it.
func (p *agentPeer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.c.Close(ctx)
}

// rawPeer is an `acp-sandbox exec -i` process spoken to line by line.
type rawPeer struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	r      *acp.Reader
	stderr *stamped
}

func (b *bench) startRaw(name string, argv ...string) (*rawPeer, error) {
	p := &rawPeer{name: name, stderr: &stamped{}}
	p.cmd = exec.Command(b.e.bin, argv...)
	p.cmd.Dir, p.cmd.Env, p.cmd.Stderr = b.bws, b.e.vars, p.stderr
	in, err := p.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.in, p.r = in, acp.NewReader(out, 0)
	return p, nil
}

// exchange writes req and reads n lines back, each parsed as the ACP client
// parses what it reads, and returns the time from the write to the last
// line.
func (p *rawPeer) exchange(ctx context.Context, req []byte, n int) (time.Duration, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.cmd.Process.Kill() })
	defer stop()
	start := time.Now()
	if _, err := p.in.Write(req); err != nil {
		return 0, fmt.Errorf("%s: %w\nits stderr ends:\n%s", p.name, err, p.stderr.tail())
	}
	for range n {
		line, err := p.r.ReadLine()
		if err != nil {
			return 0, fmt.Errorf("%s: %w\nits stderr ends:\n%s", p.name, err, p.stderr.tail())
		}
		if _, err := acp.Parse(line); err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return time.Since(start), nil
}

func (p *rawPeer) close() {
	p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpuTime is the user+system CPU time a process has used, all threads
// (USER_HZ ticks: 10 ms resolution).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0
	}
	f := strings.Fields(s[i+2:]) // from field 3, state
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// cpu is the CPU time of the processes an arm involves: its own host
// process, the supervisor and QEMU.
type cpu struct{ own, sup, qemu time.Duration }

func cpuOf(own int, st *sandbox.Status) cpu {
	return cpu{cpuTime(own), cpuTime(st.Pid), cpuTime(st.QEMUPid)}
}

func (c cpu) sub(d cpu) cpu { return cpu{c.own - d.own, c.sup - d.sup, c.qemu - d.qemu} }
func (c cpu) add(d cpu) cpu { return cpu{c.own + d.own, c.sup + d.sup, c.qemu + d.qemu} }

// note shows the CPU per unit of work (one round, one round trip).
func (c cpu) note(per int, unit, own string) string {
	f := func(d time.Duration) string { return format(unitSeconds, d.Seconds()/float64(per)) }
	s := "CPU per " + unit + ": "
	if own != "" {
		s += own + " " + f(c.own) + ", "
	}
	return s + "supervisor " + f(c.sup) + ", QEMU " + f(c.qemu)
}

// arm is one way of doing a figure's unit of work, with what it measured.
type arm struct {
	name, note string
	pid        int // its own host process, for CPU (0: none)
	fn         func(context.Context) (time.Duration, error)
	ds         []time.Duration
	cpu        cpu
}

// rotated is 0..n-1 starting at round%n: each arm goes first in turn, so a
// drift in load hits every arm alike.
func rotated(n, round int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = (round + i) % n
	}
	return idx
}

// flowArms are the long-lived processes of the throughput and round-trip
// figures.
type flowArms struct {
	host, bridged, vm *agentPeer
	lines, echo       *rawPeer
}

// bridgeFlow measures notification throughput and request round trips,
// all arms up together and taking turns.
func (b *bench) bridgeFlow(ctx context.Context) error {
	st, err := b.e.status(ctx, b.bws)
	if err != nil {
		return err
	}
	progress("bridge: starting the arms (host agent, bridge, exec -i agent, exec -i lines, exec -i cat)")
	var fa flowArms
	if fa.host, err = b.startAgent(ctx, armHost, b.hostAgentArgv()); err != nil {
		return err
	}
	defer fa.host.close()
	if fa.bridged, err = b.startAgent(ctx, armBridge, b.bridgeArgv()); err != nil {
		return err
	}
	defer fa.bridged.close()
	if fa.vm, err = b.startAgent(ctx, armVM, b.vmAgentArgv()); err != nil {
		return err
	}
	defer fa.vm.close()
	if fa.lines, err = b.startRaw(armLines, "exec", "-i", "--", filepath.Join(b.bws, "lines")); err != nil {
		return err
	}
	defer fa.lines.close()
	if fa.echo, err = b.startRaw(armEcho, "exec", "-i", "--", "cat"); err != nil {
		return err
	}
	defer fa.echo.close()
	if err := b.throughput(ctx, st, &fa); err != nil {
		return err
	}
	return b.roundTrips(ctx, st, &fa)
}

// armNamed finds an arm by name.
func armNamed(arms []*arm, name string) *arm {
	for _, a := range arms {
		if a.name == name {
			return a
		}
	}
	panic("bench: no arm " + name)
}

// ownName names an arm's own host process in its CPU note.
func ownName(arm string) string {
	switch arm {
	case armHost:
		return "agent"
	case armBridge:
		return "bridge"
	}
	return "exec CLI"
}

// throughput times `stream N` in the agent arms against the same lines
// from bench/lines.
func (b *bench) throughput(ctx context.Context, st *sandbox.Status, fa *flowArms) error {
	// The raw arms' bytes: the host agent's notification lines, as read.
	n := b.o.notifs
	before := len(fa.host.c.Updates())
	if _, err := fa.host.stream(ctx, n); err != nil {
		return err
	}
	var capture bytes.Buffer
	for _, m := range fa.host.c.Updates()[before:] {
		capture.Write(m.Raw)
		capture.WriteByte('\n')
	}
	notesPath := filepath.Join(b.bws, "notifications.jsonl")
	if err := os.WriteFile(notesPath, capture.Bytes(), 0o644); err != nil {
		return err
	}
	stream := func(p *agentPeer) func(context.Context) (time.Duration, error) {
		return func(ctx context.Context) (time.Duration, error) { return p.stream(ctx, n) }
	}
	emit := func(mode string) func(context.Context) (time.Duration, error) {
		return func(ctx context.Context) (time.Duration, error) {
			return fa.lines.exchange(ctx, []byte(mode+" "+notesPath+"\n"), n)
		}
	}
	flow := []*arm{
		{name: armHost, pid: fa.host.c.Process().Pid, note: "the agent's own speed, no VM", fn: stream(fa.host)},
		{name: armBridge, pid: fa.bridged.c.Process().Pid, note: "the figure above", fn: stream(fa.bridged)},
		{name: armVM, pid: fa.vm.c.Process().Pid, note: "same agent and VM, no bridge", fn: stream(fa.vm)},
		{name: armLines, pid: fa.lines.cmd.Process.Pid, note: "the baseline above: same lines, one write each", fn: emit("lines")},
		{name: armBulk, pid: fa.lines.cmd.Process.Pid, note: "same bytes in 64 KiB writes, as cat writes", fn: emit("bulk")},
	}
	for i := range b.o.runs + 1 { // round 0 is the warm-up
		progress("bridge throughput: round %d/%d, %d notifications per arm", i, b.o.runs, n)
		for _, j := range rotated(len(flow), i) {
			a := flow[j]
			c0 := cpuOf(a.pid, st)
			d, err := a.fn(ctx)
			if err != nil {
				return err
			}
			if i > 0 {
				a.ds = append(a.ds, d)
				a.cpu = a.cpu.add(cpuOf(a.pid, st).sub(c0))
			}
		}
	}
	med := func(a *arm) float64 { return durs(a.ds).median() }
	rate := func(a *arm) float64 { return float64(n) / med(a) }
	fb, fv, fl := armNamed(flow, armBridge), armNamed(flow, armVM), armNamed(flow, armLines)
	tput := Row{Name: fmt.Sprintf("bridge: %d notifications, rate (median of %d)", n, len(fb.ds)), Unit: unitRate, Value: rate(fb), Samples: durs(fb.ds)}
	same := Row{Name: "bridge: notification rate, same agent without bridge", Unit: unitRate, Value: rate(fb)}
	b.rep.Results = append(b.rep.Results,
		tput.withBaseline("exec -i, same lines", rate(fl)).goalRatioMin(0.5),
		same.withBaseline("exec -i agent", rate(fv)))
	for _, a := range flow {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "flow: " + a.name, Unit: unitSeconds, Value: med(a), Samples: durs(a.ds),
			Note: fmt.Sprintf("%.0f /s; %s; %s", rate(a), a.note, a.cpu.note(len(a.ds), "round", ownName(a.name)))})
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "flow: ⇒ bridge's share of a round", Unit: unitSeconds, Value: med(fb) - med(fv), Note: "median bridge − exec -i agent"},
		Row{Name: "flow: ⇒ agent's share over raw lines", Unit: unitSeconds, Value: med(fv) - med(fl),
			Note: fmt.Sprintf("median exec -i agent − exec -i lines; %d lines, %.2f MB a round", n, float64(capture.Len())/1e6)},
	)
	return nil
}

// roundTrips times requests the agent answers without work against
// echoes: blocks of rttBlock per arm, arms rotating per block, one untimed
// block first.
func (b *bench) roundTrips(ctx context.Context, st *sandbox.Status, fa *flowArms) error {
	req, err := acp.NewRequest(acp.IntID(1), "authenticate", map[string]any{"methodId": "demo-login"})
	if err != nil {
		return err
	}
	echoLine := append(slices.Clone(req), '\n')
	goEchoLine := append([]byte("echo "), echoLine...)
	echo := func(p *rawPeer, line []byte) func(context.Context) (time.Duration, error) {
		return func(ctx context.Context) (time.Duration, error) { return p.exchange(ctx, line, 1) }
	}
	rtt := []*arm{
		{name: armHost, pid: fa.host.c.Process().Pid, note: "no VM: the client's and agent's floor", fn: fa.host.roundTrip},
		{name: armBridge, pid: fa.bridged.c.Process().Pid, note: "the figure above", fn: fa.bridged.roundTrip},
		{name: armVM, pid: fa.vm.c.Process().Pid, note: "same agent and VM, no bridge", fn: fa.vm.roundTrip},
		{name: armEcho, pid: fa.echo.cmd.Process.Pid, note: "the baseline above: the request's bytes echoed", fn: echo(fa.echo, echoLine)},
		{name: armGoEcho, pid: fa.lines.cmd.Process.Pid, note: "the same echo by a Go process", fn: echo(fa.lines, goEchoLine)},
	}
	const rttBlock = 50
	blocks := (b.o.rtts + rttBlock - 1) / rttBlock
	progress("bridge round trips: %d per arm in blocks of %d", b.o.rtts, rttBlock)
	for i := range blocks + 1 { // block 0 is the warm-up
		for _, j := range rotated(len(rtt), i) {
			a := rtt[j]
			bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			c0 := cpuOf(a.pid, st)
			for range min(rttBlock, b.o.rtts-max(0, i-1)*rttBlock) {
				d, err := a.fn(bctx)
				if err != nil {
					cancel()
					return err
				}
				if i > 0 {
					a.ds = append(a.ds, d)
				}
			}
			if i > 0 {
				a.cpu = a.cpu.add(cpuOf(a.pid, st).sub(c0))
			}
			cancel()
		}
	}
	p := func(a *arm, q float64) float64 { return durs(a.ds).pct(q) }
	rb, re, rv, rg := armNamed(rtt, armBridge), armNamed(rtt, armEcho), armNamed(rtt, armVM), armNamed(rtt, armGoEcho)
	p50 := Row{Name: fmt.Sprintf("bridge: request round trip p50 (of %d)", len(rb.ds)), Unit: unitSeconds, Value: p(rb, .5), P90: p(rb, .9), Samples: durs(rb.ds)}
	p90 := Row{Name: "bridge: request round trip p90", Unit: unitSeconds, Value: p(rb, .9)}
	b.rep.Results = append(b.rep.Results,
		p50.withBaseline("exec -i cat echo", p(re, .5)).goalOver(1e-3),
		p90.withBaseline("exec -i cat echo p90", p(re, .9)))
	for _, a := range rtt {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "rtt: " + a.name, Unit: unitSeconds, Value: p(a, .5), P90: p(a, .9),
			Samples: durs(a.ds), Note: a.note + "; " + a.cpu.note(len(a.ds), "round trip", ownName(a.name))})
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "rtt: ⇒ bridge's share", Unit: unitSeconds, Value: p(rb, .5) - p(rv, .5), Note: "p50 bridge − exec -i agent"},
		Row{Name: "rtt: ⇒ agent's share over an echo", Unit: unitSeconds, Value: p(rv, .5) - p(re, .5), Note: "p50 exec -i agent − exec -i cat"},
		Row{Name: "rtt: ⇒ of which a Go process's", Unit: unitSeconds, Value: p(rg, .5) - p(re, .5), Note: "p50 exec -i lines echo − exec -i cat"},
	)
	return nil
}

// resetPeak resets a process's VmHWM to its current RSS.
func resetPeak(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// gcCycle is one line of GODEBUG=gctrace=1 output: the heap at the
// collection's start, the heap marked live by it, and its goal, in bytes.
// The next collection's goal is about twice live (GOGC=100).
type gcCycle struct{ start, live, goal float64 }

// gcTrace reads the collections out of gctrace output and returns the one
// that started with the largest heap, and how many there were.
func gcTrace(trace string) (largest gcCycle, n int) {
	for _, l := range strings.Split(trace, "\n") {
		_, l, ok := strings.Cut(l, "gc ")
		if !ok {
			continue
		}
		// "... ms cpu, 132->132->64 MB, 132 MB goal, ..."
		_, rest, ok := strings.Cut(l, " ms cpu, ")
		f := strings.Fields(rest)
		if !ok || len(f) < 4 || f[3] != "MB" {
			continue
		}
		h := strings.Split(f[0], "->")
		if len(h) != 3 {
			continue
		}
		var c gcCycle
		var errs [3]error
		c.start, errs[0] = strconv.ParseFloat(h[0], 64)
		c.live, errs[1] = strconv.ParseFloat(h[2], 64)
		c.goal, errs[2] = strconv.ParseFloat(f[2], 64)
		if errors.Join(errs[:]...) != nil {
			continue
		}
		c = gcCycle{c.start * (1 << 20), c.live * (1 << 20), c.goal * (1 << 20)}
		if n++; c.start > largest.start {
			largest = c
		}
	}
	return largest, n
}

// memRun is one big line through a fresh bridge: its RSS before, its peak
// (VmHWM) after, what gctrace said of its heap, and how long it took.
type memRun struct {
	base, peak float64
	gc         gcCycle
	gcs        int
	took       time.Duration
}

func (m memRun) gcNote() string {
	if m.gcs == 0 {
		return "no GC ran"
	}
	return fmt.Sprintf("largest GC (of %d, gctrace): started at %s, left %s live, so the next starts at ~%s",
		m.gcs, format(unitBytes, m.gc.start), format(unitBytes, m.gc.live), format(unitBytes, 2*m.gc.live))
}

// memOnce starts a bridge (with GODEBUG=gctrace=1) and an agent session,
// resets its VmHWM, runs send and reads the peak.
func (b *bench) memOnce(ctx context.Context, send func(context.Context, *agentPeer) error) (memRun, error) {
	var m memRun
	p, err := b.startAgent(ctx, armBridge, b.bridgeArgv(), "GODEBUG=gctrace=1")
	if err != nil {
		return m, err
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	pid := p.c.Process().Pid
	if m.base, _, err = rss(pid); err != nil {
		return m, err
	}
	if err := resetPeak(pid); err != nil {
		return m, fmt.Errorf("reset VmHWM: %w", err)
	}
	from := p.stderr.size()
	start := time.Now()
	if err := send(ctx, p); err != nil {
		return m, err
	}
	m.took = time.Since(start)
	if _, m.peak, err = rss(pid); err != nil {
		return m, err
	}
	m.gc, m.gcs = gcTrace(p.stderr.since(from))
	return m, nil
}

// lineMem runs bench/linemem MODE on line: peak RSS over the base of a
// fresh process doing only part of the bridge's work, and what it
// allocated.
func (b *bench) lineMem(ctx context.Context, mode string, line []byte) (peak, alloc float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.e.linemem, mode)
	cmd.Stdin = io.MultiReader(bytes.NewReader(line), strings.NewReader("\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("linemem %s: %w: %s", mode, err, stderr.Bytes())
	}
	var base, hwm, n, total float64
	if _, err := fmt.Sscanf(string(out), "base=%g peak=%g bytes=%g alloc=%g", &base, &hwm, &n, &total); err != nil || int(n) < len(line) {
		return 0, 0, fmt.Errorf("linemem %s printed %q (%v)", mode, out, err)
	}
	return hwm - base, total, nil
}

// memRuns is how many fresh bridges carry the big line in; the headline
// is the largest peak, as the collector's timing varies it.
const memRuns = 3

// bridgeMemory sends one -line MiB notification through memRuns fresh
// bridges (editor → agent), then a prompt `say` of about that size through
// another (editor → agent, then the agent's update back), and reads each
// bridge process's peak RSS over its RSS before. Then bench/linemem does
// parts of the bridge's work on the same line in fresh processes.
func (b *bench) bridgeMemory(ctx context.Context) error {
	size := b.o.lineMiB << 20
	const prefix, suffix = `{"jsonrpc":"2.0","method":"_acp_sandbox_bench/blob","params":{"data":"`, `"}}`
	line := make([]byte, 0, size)
	line = append(line, prefix...)
	line = append(line, bytes.Repeat([]byte("x"), size-len(prefix)-len(suffix))...)
	line = append(line, suffix...)
	var ins []memRun
	for i := range memRuns {
		progress("bridge memory: one %d MiB notification, %d/%d", b.o.lineMiB, i+1, memRuns)
		in, err := b.memOnce(ctx, func(ctx context.Context, p *agentPeer) error {
			if err := p.c.Send(line); err != nil {
				return p.fail("send", err)
			}
			// Lines keep their order: the answer means the agent has read it.
			if _, err := p.c.Call(ctx, "authenticate", map[string]any{"methodId": "demo-login"}); err != nil {
				return p.fail("authenticate after the big line", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		ins = append(ins, in)
	}
	progress("bridge memory: parts of the path in fresh processes (bench/linemem)")
	type part struct {
		mode, note  string
		peak, alloc float64
	}
	parts := []part{
		{mode: "read", note: "acp.Reader.ReadLine alone"},
		{mode: "relay", note: "bridge.Run, agent's stdin drained"},
		{mode: "frames", note: "bridge.Run, drained through control frames as Exec does"},
	}
	for i := range parts {
		var err error
		if parts[i].peak, parts[i].alloc, err = b.lineMem(ctx, parts[i].mode, line); err != nil {
			return err
		}
	}
	line = nil
	progress("bridge memory: a %d MiB say, in and out", b.o.lineMiB)
	text := strings.Repeat("y", size-200) // the prompt's line is about size
	out, err := b.memOnce(ctx, func(ctx context.Context, p *agentPeer) error {
		before := len(p.c.Updates())
		if _, err := p.prompt(ctx, "say "+text); err != nil {
			return p.fail("say", err)
		}
		if ups := p.c.Updates()[before:]; len(ups) != 1 || len(ups[0].Raw) < len(text) {
			return fmt.Errorf("bridge: say %d bytes: %d updates back", len(text), len(ups))
		}
		return nil
	})
	if err != nil {
		return err
	}
	over := func(m memRun) float64 { return m.peak - m.base }
	worst := slices.MaxFunc(ins, func(x, y memRun) int { return int(over(x) - over(y)) })
	deltas := make(samples, len(ins))
	for i, m := range ins {
		deltas[i] = over(m)
	}
	row := Row{Name: fmt.Sprintf("bridge: peak RSS − RSS before, one %d MiB line in (max of %d)", b.o.lineMiB, len(ins)),
		Unit: unitBytes, Value: over(worst), Samples: deltas}
	b.rep.Results = append(b.rep.Results, row.withBaseline("the line", float64(size)).goalRatio(2))
	mbps := func(m memRun) string { return fmt.Sprintf("%.1f MB/s", float64(size)/1e6/m.took.Seconds()) }
	x := func(v float64) string { return fmt.Sprintf("%.2fx the line", v/float64(size)) }
	for i, m := range ins {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: fmt.Sprintf("mem: line in, bridge %d: peak − before", i+1), Unit: unitBytes, Value: over(m),
			Note: fmt.Sprintf("%s; RSS before %s; %s; %s", x(over(m)), format(unitBytes, m.base), m.gcNote(), mbps(m))})
	}
	for _, pt := range parts {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "mem: line in, fresh process, " + pt.mode + ": peak − before", Unit: unitBytes, Value: pt.peak,
			Note: fmt.Sprintf("%s; %s; allocated %s (%s)", x(pt.peak), pt.note, format(unitBytes, pt.alloc), x(pt.alloc))})
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		Row{Name: "mem: say in and out: peak − before", Unit: unitBytes, Value: over(out),
			Note: fmt.Sprintf("%s; a %d MiB prompt in, its update out; %s", x(over(out)), b.o.lineMiB, out.gcNote())},
		Row{Name: "mem: say in and out: prompt → response", Unit: unitSeconds, Value: out.took.Seconds(), Note: "the guest agent decodes and re-encodes the text"},
	)
	return nil
}

// faultRun is one timed fault: from the prompt's send (crash) or the
// kill (QEMU) to the client's error; for a crash also from the agent's
// last stderr line's arrival on the host (its death as the host sees it)
// to the error, when that line was seen (negative: it came after).
type faultRun struct {
	total, fromLine time.Duration
	lineSeen        bool
	msg             string
}

// crashOnce starts an arm, prompts `crash` and times the error.
func (b *bench) crashOnce(ctx context.Context, name string, argv []string) (faultRun, error) {
	p, err := b.startAgent(ctx, name, argv)
	if err != nil {
		return faultRun{}, err
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	from := p.stderr.size()
	start := time.Now()
	_, err = p.prompt(ctx, "crash")
	end := time.Now()
	switch {
	case err == nil:
		return faultRun{}, fmt.Errorf("%s: prompt `crash` was answered", name)
	case ctx.Err() != nil:
		return faultRun{}, p.fail("no error after the crash", err)
	}
	r := faultRun{total: end.Sub(start), msg: err.Error()}
	p.close() // its stderr is complete once it has exited
	if at, ok := p.stderr.at(from, "crashing on request"); ok {
		r.fromLine, r.lineSeen = end.Sub(at), true
	}
	return r, nil
}

// killOnce starts the VM and an arm, leaves a prompt pending in the agent
// (`sleep`), kills QEMU with SIGKILL and times the error.
func (b *bench) killOnce(ctx context.Context, name string, argv []string) (faultRun, error) {
	st, err := b.startVM(ctx)
	if err != nil {
		return faultRun{}, err
	}
	p, err := b.startAgent(ctx, name, argv)
	if err != nil {
		return faultRun{}, err
	}
	defer p.close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	before := len(p.c.Updates())
	errc := make(chan error, 1)
	go func() {
		_, err := p.prompt(ctx, "say sleeping\nsleep 600000")
		errc <- err
	}()
	for len(p.c.Updates()) == before { // the agent is in its sleep
		select {
		case err := <-errc:
			return faultRun{}, p.fail("sleep prompt", fmt.Errorf("ended early: %v", err))
		case <-time.After(5 * time.Millisecond):
		}
	}
	start := time.Now()
	if err := syscall.Kill(st.QEMUPid, syscall.SIGKILL); err != nil {
		return faultRun{}, fmt.Errorf("kill QEMU %d: %w", st.QEMUPid, err)
	}
	err = <-errc
	r := faultRun{total: time.Since(start)}
	switch {
	case err == nil:
		return faultRun{}, fmt.Errorf("%s: the sleep prompt was answered after QEMU's kill", name)
	case ctx.Err() != nil:
		return faultRun{}, p.fail("no error after QEMU's kill", err)
	}
	r.msg = err.Error()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := waitGone(wctx, st.QEMUPid); err != nil {
		return faultRun{}, err
	}
	if err := waitGone(wctx, st.Pid); err != nil {
		return faultRun{}, fmt.Errorf("the supervisor outlived its QEMU: %w", err)
	}
	return r, nil
}

// bridgeFaults times agent crashes (host agent, exec -i agent, bridge) and
// QEMU kills (exec -i agent, bridge), arms alternating. The kills leave
// no VM.
func (b *bench) bridgeFaults(ctx context.Context) error {
	type faultArm struct {
		name, note string
		argv       []string
		runs       []faultRun
	}
	run := func(what string, arms []*faultArm, once func(context.Context, string, []string) (faultRun, error)) error {
		for i := range b.o.faults {
			progress("bridge faults: %s %d/%d", what, i+1, b.o.faults)
			for _, j := range rotated(len(arms), i) {
				a := arms[j]
				r, err := once(ctx, a.name, a.argv)
				if err != nil {
					return err
				}
				a.runs = append(a.runs, r)
			}
		}
		return nil
	}
	crash := []*faultArm{
		{name: armHost, argv: b.hostAgentArgv(), note: "host process exit → EOF"},
		{name: armVM, argv: b.vmAgentArgv(), note: "the baseline above: exit status over the control channel, CLI exits"},
		{name: armBridge, argv: b.bridgeArgv(), note: "the figure above"},
	}
	if err := run("agent crash", crash, b.crashOnce); err != nil {
		return err
	}
	kill := []*faultArm{
		{name: armVM, argv: b.vmAgentArgv(), note: "the baseline above: the CLI's connection ends"},
		{name: armBridge, argv: b.bridgeArgv(), note: "the figure above"},
	}
	if err := run("QEMU kill -9", kill, b.killOnce); err != nil {
		return err
	}
	total := func(a *faultArm) samples {
		s := make(samples, len(a.runs))
		for i, r := range a.runs {
			s[i] = r.total.Seconds()
		}
		return s
	}
	fromLine := func(a *faultArm) samples {
		var s samples
		for _, r := range a.runs {
			if r.lineSeen {
				s = append(s, r.fromLine.Seconds())
			}
		}
		return s
	}
	cb, cv, kb, kv := crash[2], crash[1], kill[1], kill[0]
	cr := Row{Name: fmt.Sprintf("bridge: prompt `crash` → its error p50 (of %d)", len(cb.runs)), Unit: unitSeconds,
		Value: total(cb).median(), P90: total(cb).pct(.9), Samples: total(cb)}
	kr := Row{Name: fmt.Sprintf("bridge: QEMU kill -9 → pending prompt's error p50 (of %d)", len(kb.runs)), Unit: unitSeconds,
		Value: total(kb).median(), P90: total(kb).pct(.9), Samples: total(kb)}
	b.rep.Results = append(b.rep.Results,
		cr.withBaseline("exec -i agent", total(cv).median()).goalAbs(2),
		kr.withBaseline("exec -i agent", total(kv).median()).goalAbs(2))
	for _, a := range crash {
		b.rep.Breakdown = append(b.rep.Breakdown,
			Row{Name: "fault: crash, " + a.name + ": prompt sent → error", Unit: unitSeconds, Value: total(a).median(), P90: total(a).pct(.9), Samples: total(a), Note: a.note},
			Row{Name: "fault: crash, " + a.name + ": crash line on stderr → error", Unit: unitSeconds, Value: fromLine(a).median(), Samples: fromLine(a),
				Note: fmt.Sprintf("from the agent's last stderr line's arrival: its death as the host sees it (%d of %d runs)", len(fromLine(a)), len(a.runs))})
	}
	for _, a := range kill {
		b.rep.Breakdown = append(b.rep.Breakdown,
			Row{Name: "fault: kill, " + a.name + ": SIGKILL → error", Unit: unitSeconds, Value: total(a).median(), P90: total(a).pct(.9), Samples: total(a), Note: a.note})
	}
	b.rep.Notes = append(b.rep.Notes,
		"the bridge's error after a crash: "+cb.runs[0].msg,
		"the bridge's error after QEMU's kill: "+kb.runs[0].msg)
	return nil
}
