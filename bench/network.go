package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"golang.org/x/net/dns/dnsmessage"
)

// The network group measures the VM's only way out, the userspace stack
// with its egress policy (netstack/), against the same stack with the
// policy reduced to an address rule, in one VM and one run.
//
// Nothing leaves the machine: the bench's acp-sandbox is built with
// -tags acpsandbox_testhooks, and this group's sandbox gets
// ACP_SANDBOX_TEST_NET (sandbox.TestNet): a fake resolver that knows
// netName → netNameIP only, and a dialer that maps netNameIP:80 and
// netAddrIP:80 to one HTTP server in this process on 127.0.0.1. The VM runs
// with `--allow api.example.com --allow 203.0.113.11:80`:
//
//	name arm     http://api.example.com/…: the guest's lookup goes to the
//	             stack's DNS (policy check, host lookup, rebinding check,
//	             pin), the SYN to 203.0.113.10:80 is allowed through the pin,
//	             the stack accepts, peeks the HTTP Host and checks it, then
//	             dials and splices
//	address arm  http://203.0.113.11/…: allowed by the address pattern:
//	             no DNS, no peek; dial and splice. The closest to "policy
//	             disabled" the stack offers without a hidden knob.
//
// The figures: a bulk download (curl in the VM), new connections per
// second (one node process in the VM, bench/netbench.js) and DNS query
// latency (node's dns.promises.Resolver against 192.168.127.1), each with
// host-side and guest-loopback rows for scale. See README.md.

//go:embed netbench.js
var netbenchJS []byte

const (
	netName        = "api.example.com"    // allowed by name
	netNameIP      = "203.0.113.10"       // its address (fake resolver)
	netAddrIP      = "203.0.113.11"       // allowed by an address rule
	netDenied      = "denied.example.com" // not allowed: NXDOMAIN, no lookup
	netWarmConns   = 5                    // untimed connections per arm first
	netWarmLookups = 10                   // untimed lookups per name first
)

// netGuestDNS is the stack's DNS server as the guest sees it.
var netGuestDNS = netstack.GatewayIP.String()

// netState is the network group's fixtures.
type netState struct {
	e      env // b.e with ACP_SANDBOX_TEST_NET for this group's sandbox
	ws     string
	script string // netbench.js in the workspace
	blob   []byte
	srv    *http.Server
	port   int
	hosts  sync.Map // Host header → *atomic.Int64, requests served
	dns    *dnsServer
	st     *sandbox.Status
}

func (b *bench) networkPhases() []phase {
	return []phase{
		{"network setup", b.netSetup},
		{"network download", b.netDownload},
		{"network connections", b.netConns},
		{"network dns", b.netDNS},
		{"network stop", b.netStop},
	}
}

// served is how many requests the loopback server answered with Host h.
func (n *netState) served(h string) int64 {
	if v, ok := n.hosts.Load(h); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (n *netState) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := n.hosts.LoadOrStore(r.Host, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	switch r.URL.Path {
	case "/blob":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(n.blob)))
		_, _ = w.Write(n.blob)
	case "/":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n")) // netbench.js checks the length
	default:
		http.NotFound(w, r)
	}
}

// hasTestHooks reports whether the binary was built with the
// acpsandbox_testhooks tag; without it ACP_SANDBOX_TEST_NET is ignored and
// the VM would resolve and dial for real.
func hasTestHooks(bin string) error {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return err
	}
	for _, s := range bi.Settings {
		if s.Key == "-tags" && slices.Contains(strings.Split(s.Value, ","), "acpsandbox_testhooks") {
			return nil
		}
	}
	return fmt.Errorf("%s was not built with -tags acpsandbox_testhooks: the network group would reach the real network", bin)
}

// netSetup starts the loopback HTTP and DNS servers, writes the fake
// internet's file, and starts the group's sandbox (untimed) with the name
// and the address rule allowed.
func (b *bench) netSetup(ctx context.Context) error {
	if err := hasTestHooks(b.e.bin); err != nil {
		return err
	}
	n := &netState{e: *b.e}
	b.net = n
	ws, err := b.e.mkdir("net")
	if err != nil {
		return err
	}
	n.ws, n.script = ws, filepath.Join(ws, "netbench.js")
	if err := os.WriteFile(n.script, netbenchJS, 0o644); err != nil {
		return err
	}
	// Incompressible: nothing on the path may shrink it.
	n.blob = make([]byte, b.o.downloadMiB<<20)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(n.blob)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	n.port = ln.Addr().(*net.TCPAddr).Port
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: time.Minute}
	go func() { _ = n.srv.Serve(ln) }()
	if n.dns, err = newDNSServer(map[string]netip.Addr{netName: netip.MustParseAddr(netNameIP)}); err != nil {
		return err
	}
	srv := ln.Addr().String()
	tn := sandbox.TestNet{
		Hosts:  map[string][]string{netName: {netNameIP}},
		Routes: map[string]string{netNameIP + ":80": srv, netAddrIP + ":80": srv},
	}
	j, err := json.Marshal(tn)
	if err != nil {
		return err
	}
	file := filepath.Join(b.e.root, "net.json")
	if err := os.WriteFile(file, j, 0o644); err != nil {
		return err
	}
	n.e.vars = append(slices.Clone(b.e.vars), sandbox.TestNetEnv+"="+file)
	progress("network: starting the network workspace's sandbox (untimed) with --allow %s --allow %s:80", netName, netAddrIP)
	if _, err := n.e.mustCLI(ctx, 0, ws, "start", "-q", "--allow", netName, "--allow", netAddrIP+":80"); err != nil {
		return err
	}
	if n.st, err = n.e.status(ctx, ws); err != nil {
		return err
	}
	if b.rep.Host.Accel == "" {
		b.rep.Host.Accel, b.rep.Host.AccelReason, b.rep.Host.Kernel = string(n.st.Accel), n.st.AccelReason, n.st.Kernel
	}
	// The guest's first node start reads node from the /usr share; later
	// ones find it in the page cache. Pay that once, untimed.
	if _, err := n.e.mustCLI(ctx, 0, ws, "exec", "--", "node", n.script, "dns", netGuestDNS, "0", "0"); err != nil {
		return err
	}
	b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("network: the bench's acp-sandbox is built with -tags acpsandbox_testhooks; "+
		"the network sandbox runs with %s: a fake resolver (%s → %s, other names do not exist, answers at once) and a dialer that maps "+
		"%s:80 and %s:80 to the bench's HTTP server on %s; nothing leaves the machine. Rules: --allow %s --allow %s:80",
		sandbox.TestNetEnv, netName, netNameIP, netNameIP, netAddrIP, srv, netName, netAddrIP))
	return nil
}

// netStop stops the group's sandbox and the loopback servers.
func (b *bench) netStop(ctx context.Context) error {
	n := b.net
	_ = n.srv.Close()
	n.dns.close()
	_, err := n.e.stop(ctx, n.ws, n.st)
	return err
}

// cpu is the CPU time the supervisor (netstack, policy, splice) and
// QEMU (under TCG: the guest's work) used.
func (n *netState) cpu() cpu { return cpuOf(0, n.st) }

// download is one curl: its speed (bytes/s), total time and what it cost
// the supervisor and QEMU.
type download struct {
	speed, total float64
	cpu          cpu
}

// curlOut parses `-w '%{http_code} %{size_download} %{speed_download}
// %{time_total}'` and checks the transfer.
func curlOut(out string, want int) (speed, total float64, err error) {
	var code, size int
	if _, err := fmt.Sscan(out, &code, &size, &speed, &total); err != nil {
		return 0, 0, fmt.Errorf("curl printed %q: %v", out, err)
	}
	if code != 200 || size != want {
		return 0, 0, fmt.Errorf("curl: HTTP %d, %d bytes, want 200 and %d", code, size, want)
	}
	return speed, total, nil
}

var curlArgs = []string{"-sS", "-m", "600", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download} %{time_total}"}

// netDownload times curl downloads of the blob: by name and by the address
// rule in the VM, and on the host straight from the server, taking turns.
func (b *bench) netDownload(ctx context.Context) error {
	n := b.net
	size := len(n.blob)
	inVM := func(url string) func() (download, error) {
		return func() (download, error) {
			c0 := n.cpu()
			r, err := n.e.mustCLI(ctx, 0, n.ws, append([]string{"exec", "--", "curl"}, append(curlArgs, url)...)...)
			if err != nil {
				return download{}, err
			}
			d := download{cpu: n.cpu().sub(c0)}
			d.speed, d.total, err = curlOut(r.stdout, size)
			return d, err
		}
	}
	onHost := func() (download, error) {
		cmd := exec.CommandContext(ctx, "curl", append(curlArgs, fmt.Sprintf("http://127.0.0.1:%d/blob", n.port))...)
		out, err := cmd.Output()
		if err != nil {
			return download{}, fmt.Errorf("host curl: %w", err)
		}
		var d download
		d.speed, d.total, err = curlOut(string(out), size)
		return d, err
	}
	type dlArm struct {
		name, note string
		vm         bool
		fn         func() (download, error)
		runs       []download
	}
	arms := []*dlArm{
		{name: "VM, by name", note: "the figure above: DNS, pin, Host peek, then the splice", vm: true, fn: inVM("http://" + netName + "/blob")},
		{name: "VM, address rule", note: "the baseline above: no DNS, no peek, the same splice", vm: true, fn: inVM("http://" + netAddrIP + "/blob")},
		{name: "host curl, loopback", note: "no VM, no stack: what loopback gives", fn: onHost},
	}
	if _, err := exec.LookPath("curl"); err != nil {
		arms = arms[:2]
		b.rep.Notes = append(b.rep.Notes, "network: no curl on the host, no loopback download row")
	}
	before := n.served(netName)
	for i := range b.o.runs + 1 { // round 0 is the warm-up
		progress("network download: round %d/%d, %d MiB per arm", i, b.o.runs, b.o.downloadMiB)
		for _, j := range rotated(len(arms), i) {
			a := arms[j]
			d, err := a.fn()
			if err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			if i > 0 {
				a.runs = append(a.runs, d)
			}
		}
	}
	if got := n.served(netName) - before; got != int64(b.o.runs+1) {
		return fmt.Errorf("the server saw %d requests with Host %s, want %d", got, netName, b.o.runs+1)
	}
	speeds := func(a *dlArm) samples {
		s := make(samples, len(a.runs))
		for i, d := range a.runs {
			s[i] = d.speed
		}
		return s
	}
	totals := func(a *dlArm) samples {
		s := make(samples, len(a.runs))
		for i, d := range a.runs {
			s[i] = d.total
		}
		return s
	}
	byName, byAddr := arms[0], arms[1]
	row := Row{Name: fmt.Sprintf("net: download %d MiB by name (median of %d)", b.o.downloadMiB, len(byName.runs)), Unit: unitByteRate,
		Value: speeds(byName).median(), Samples: speeds(byName)}
	b.rep.Results = append(b.rep.Results, row.withBaseline("address rule", speeds(byAddr).median()).goalRatioMin(0.8))
	paired := make(samples, len(byName.runs))
	for i := range paired {
		paired[i] = byName.runs[i].speed / byAddr.runs[i].speed
	}
	// supPerMiB is the supervisor's CPU seconds per MiB downloaded.
	supPerMiB := func(a *dlArm) float64 {
		var c cpu
		for _, d := range a.runs {
			c = c.add(d.cpu)
		}
		return c.sup.Seconds() / float64(len(a.runs)) / float64(b.o.downloadMiB)
	}
	for _, a := range arms {
		note := a.note
		if a.vm {
			var c cpu
			for _, d := range a.runs {
				c = c.add(d.cpu)
			}
			perMiB := supPerMiB(a)
			note += "; " + c.note(len(a.runs), "download", "") +
				fmt.Sprintf(" (supervisor %s per MiB: one core of it moves ~%.0f MiB/s)", format(unitSeconds, perMiB), 1/perMiB)
		}
		if !a.vm {
			note += fmt.Sprintf("; the name arm gets %.3fx this", speeds(byName).median()/speeds(a).median())
		}
		b.rep.Breakdown = append(b.rep.Breakdown,
			Row{Name: "dl: " + a.name, Unit: unitByteRate, Value: speeds(a).median(), Samples: speeds(a), Note: note},
			Row{Name: "dl: " + a.name + ", curl time_total", Unit: unitSeconds, Value: totals(a).median(), Samples: totals(a)})
	}
	b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "dl: ⇒ by name ÷ address rule, round by round", Unit: unitRatio,
		Value: paired.median(), Samples: paired,
		Note: fmt.Sprintf("median of each round's ratio (%.2f to %.2f): load that drifts between rounds cancels", slices.Min(paired), slices.Max(paired))})
	if cpuAddr := supPerMiB(byAddr); cpuAddr > 0 {
		b.rep.Breakdown = append(b.rep.Breakdown, Row{Name: "dl: ⇒ supervisor CPU per MiB, by name ÷ address rule", Unit: unitRatio,
			Value: supPerMiB(byName) / cpuAddr, Note: "the stack's own cost; CPU time, so less swayed by load than speed (10 ms ticks)"})
	}
	return nil
}

// nodeArm is one arm of a netbench.js run.
type nodeArm struct {
	Label string         `json:"label"`
	NS    []float64      `json:"ns"`
	Codes map[string]int `json:"codes"`
}

func (a nodeArm) seconds() samples {
	s := make(samples, len(a.NS))
	for i, v := range a.NS {
		s[i] = v / 1e9
	}
	return s
}

// rate is operations per second at the median operation's time: one
// stall of the whole VM (seconds, on this shared machine) lands on a single
// operation of one arm and would swing a rate over the summed time.
func (a nodeArm) rate() float64 { return 1 / a.seconds().median() }

// sumRate is operations per second over the arm's summed time.
func (a nodeArm) sumRate() float64 {
	var sum float64
	for _, v := range a.NS {
		sum += v
	}
	return float64(len(a.NS)) / (sum / 1e9)
}

func parseNode(out string, labels ...string) (map[string]nodeArm, error) {
	var r struct {
		Arms []nodeArm `json:"arms"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("netbench.js printed %q: %v", out, err)
	}
	m := map[string]nodeArm{}
	for _, a := range r.Arms {
		m[a.Label] = a
	}
	for _, l := range labels {
		if len(m[l].NS) == 0 {
			return nil, fmt.Errorf("netbench.js printed no samples for %s: %s", l, out)
		}
	}
	return m, nil
}

// nodeInVM runs netbench.js in the VM and returns its arms and what the
// run cost the supervisor and QEMU beyond an idle run of the script (args
// idle: the same set-up, no operations), which is run first: node's start
// under TCG costs far more than the operations.
func (b *bench) nodeInVM(ctx context.Context, idle, labels []string, args ...string) (map[string]nodeArm, cpu, error) {
	n := b.net
	run := func(args []string) (string, cpu, error) {
		c0 := n.cpu()
		r, err := n.e.mustCLI(ctx, 0, n.ws, append([]string{"exec", "--", "node", n.script}, args...)...)
		return r.stdout, n.cpu().sub(c0), err
	}
	_, c0, err := run(idle)
	if err != nil {
		return nil, cpu{}, err
	}
	out, c, err := run(args)
	if err != nil {
		return nil, cpu{}, err
	}
	m, err := parseNode(out, labels...)
	return m, c.sub(c0), err
}

// nodeOnHost runs netbench.js on the host.
func (b *bench) nodeOnHost(ctx context.Context, labels []string, args ...string) (map[string]nodeArm, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{b.net.script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("host node: %w: %s", err, stderr.Bytes())
	}
	return parseNode(string(out), labels...)
}

// Connection arms of netbench.js.
const (
	connName     = "name"
	connPinned   = "pinned"
	connAddr     = "address"
	connLoopback = "loopback"
	connHost     = "host"
)

// netConns times new connections: K fresh connections per arm from one
// node process in the VM, the arms taking turns connection by connection.
func (b *bench) netConns(ctx context.Context) error {
	n := b.net
	k := b.o.conns
	progress("network connections: %d per arm, 4 arms, one node process in the VM", k)
	before := n.served(netName)
	vm, c, err := b.nodeInVM(ctx, []string{"conns", "0", "0", connLoopback + "=local"},
		[]string{connName, connPinned, connAddr, connLoopback},
		"conns", strconv.Itoa(k), strconv.Itoa(netWarmConns),
		connName+"=http://"+netName+"/",
		connPinned+"=http://"+netNameIP+"/,"+netName,
		connAddr+"=http://"+netAddrIP+"/",
		connLoopback+"=local")
	if err != nil {
		return err
	}
	if got, want := n.served(netName)-before, int64(2*(k+netWarmConns)); got != want {
		return fmt.Errorf("the server saw %d requests with Host %s, want %d", got, netName, want)
	}
	progress("network connections: the same loop on the host")
	host, err := b.nodeOnHost(ctx, []string{connHost, connLoopback}, "conns", strconv.Itoa(k), strconv.Itoa(netWarmConns),
		fmt.Sprintf("%s=http://127.0.0.1:%d/", connHost, n.port), connLoopback+"=local")
	if err != nil {
		return err
	}
	nm, ad := vm[connName], vm[connAddr]
	row := Row{Name: fmt.Sprintf("net: new connections/s by name, 1/p50 (of %d)", len(nm.NS)), Unit: unitConnRate, Value: nm.rate(), Samples: nm.seconds()}
	b.rep.Results = append(b.rep.Results, row.withBaseline("address rule", ad.rate()))
	conn := func(name string, a nodeArm, note string) Row {
		s := a.seconds()
		return Row{Name: "conn: " + name, Unit: unitSeconds, Value: s.median(), P90: s.pct(.9), Samples: s,
			Note: fmt.Sprintf("%.1f /s at p50, %.1f /s over the summed time (slowest %s); %s",
				a.rate(), a.sumRate(), format(unitSeconds, slices.Max(s)), note)}
	}
	p50 := func(a nodeArm) float64 { return a.seconds().median() }
	netConns := float64(3 * (k + netWarmConns)) // name, pinned and address go through the stack
	b.rep.Breakdown = append(b.rep.Breakdown,
		conn("VM, by name", nm, "the figure above: lookup (A+AAAA), pin, Host peek, dial, splice"),
		conn("VM, pinned address + Host", vm[connPinned], "no lookup: "+netNameIP+" with Host: "+netName+" (pin, peek, dial, splice)"),
		conn("VM, address rule", ad, "the baseline above: no DNS, no peek"),
		conn("VM, guest loopback", vm[connLoopback], "a node server in the VM on 127.0.0.1: no stack, but the server's work is in the VM too"),
		conn("host, loopback to the bench's server", host[connHost], "no VM: the server the stack dials"),
		conn("host, node server on loopback", host[connLoopback], "no VM"),
		Row{Name: "conn: ⇒ name lookup per connection", Unit: unitSeconds, Value: p50(nm) - p50(vm[connPinned]),
			Note: "p50 by name − pinned address (getaddrinfo through the stack's DNS)"},
		Row{Name: "conn: ⇒ pin check and Host peek per connection", Unit: unitSeconds, Value: p50(vm[connPinned]) - p50(ad),
			Note: "p50 pinned address − address rule"},
		Row{Name: "conn: CPU per connection through the stack", Unit: unitSeconds, Value: c.sup.Seconds() / netConns,
			Note: fmt.Sprintf("supervisor, beyond an idle node run; QEMU %s per connection of any arm",
				format(unitSeconds, c.qemu.Seconds()/float64(4*(k+netWarmConns))))},
	)
	return nil
}

// netDNS times lookups: the allowed name and a denied one through the
// stack's DNS from one node process in the VM, then the same loop on the
// host against the bench's loopback DNS server.
func (b *bench) netDNS(ctx context.Context) error {
	n := b.net
	r := b.o.lookups
	sb, err := n.e.dirs().ForWorkspace(n.ws)
	if err != nil {
		return err
	}
	dnsEvents := func() int { return countDNSEvents(sb.NetworkLog(), netName) }
	before := dnsEvents()
	progress("network dns: %d lookups per name, one node process in the VM", r)
	gai := "gai:" + netName
	vm, c, err := b.nodeInVM(ctx, []string{"dns", netGuestDNS, "0", "0"}, []string{netName, netDenied, gai},
		"dns", netGuestDNS, strconv.Itoa(r), strconv.Itoa(netWarmLookups), netName, netDenied, gai)
	if err != nil {
		return err
	}
	// Every lookup must have reached the stack: a resolver cache in node
	// would time nothing.
	if got, want := dnsEvents()-before, r+netWarmLookups; got < want {
		return fmt.Errorf("the stack logged %d lookups of %s, want %d: node answered from a cache?", got, netName, want)
	}
	progress("network dns: the same loop on the host against a loopback DNS server")
	q0 := n.dns.queries.Load()
	host, err := b.nodeOnHost(ctx, []string{netName, netDenied}, "dns", n.dns.addr(), strconv.Itoa(r), strconv.Itoa(netWarmLookups), netName, netDenied)
	if err != nil {
		return err
	}
	if got, want := n.dns.queries.Load()-q0, int64(2*(r+netWarmLookups)); got < want {
		return fmt.Errorf("the loopback DNS server saw %d queries, want %d: node answered from a cache?", got, want)
	}
	if a := vm[gai]; a.Codes["ok"] != len(a.NS) {
		return fmt.Errorf("VM: lookup(%s): %v", netName, a.Codes)
	}
	for _, chk := range []struct {
		where string
		arms  map[string]nodeArm
	}{{"VM", vm}, {"host", host}} {
		if a := chk.arms[netName]; a.Codes["ok"] != len(a.NS) {
			return fmt.Errorf("%s: resolve4(%s): %v", chk.where, netName, a.Codes)
		}
		if a := chk.arms[netDenied]; a.Codes["ENOTFOUND"] != len(a.NS) {
			return fmt.Errorf("%s: resolve4(%s): %v, want ENOTFOUND", chk.where, netDenied, a.Codes)
		}
	}
	al, dn := vm[netName].seconds(), vm[netDenied].seconds()
	p50 := Row{Name: fmt.Sprintf("net: DNS lookup, allowed name p50 (of %d)", len(al)), Unit: unitSeconds, Value: al.pct(.5), P90: al.pct(.9), Samples: al}
	p90 := Row{Name: "net: DNS lookup, allowed name p90", Unit: unitSeconds, Value: al.pct(.9)}
	b.rep.Results = append(b.rep.Results,
		p50.withBaseline("denied name, NXDOMAIN", dn.pct(.5)),
		p90.withBaseline("denied name p90", dn.pct(.9)))
	row := func(name string, s samples, note string) Row {
		return Row{Name: "dns: " + name, Unit: unitSeconds, Value: s.pct(.5), P90: s.pct(.9), Samples: s, Note: note}
	}
	b.rep.Breakdown = append(b.rep.Breakdown,
		row("VM, "+netName, al, "the figure above: policy, host lookup (fake: instant), rebinding check, pin, audit"),
		row("VM, "+netDenied, dn, "the baseline above: policy says no, NXDOMAIN, audit; no lookup"),
		row("VM, "+netName+" by dns.lookup", vm[gai].seconds(), "getaddrinfo (A and AAAA, libuv thread), as node's http does before each connection"),
		row("host node → loopback DNS, "+netName, host[netName].seconds(), "no VM: node + UDP on the host"),
		row("host node → loopback DNS, "+netDenied, host[netDenied].seconds(), "no VM"),
		Row{Name: "dns: ⇒ lookup and pinning", Unit: unitSeconds, Value: al.pct(.5) - dn.pct(.5), Note: "p50 allowed − denied"},
		Row{Name: "dns: ⇒ the VM over the host", Unit: unitSeconds, Value: dn.pct(.5) - host[netDenied].seconds().pct(.5),
			Note: "p50 denied in the VM − on the host: guest, virtio, stack"},
		Row{Name: "dns: CPU per lookup", Unit: unitSeconds, Value: c.sup.Seconds() / float64(3*(r+netWarmLookups)),
			Note: fmt.Sprintf("supervisor, all three VM arms, beyond an idle node run; QEMU %s", format(unitSeconds, c.qemu.Seconds()/float64(3*(r+netWarmLookups))))},
	)
	b.rep.Notes = append(b.rep.Notes, "network: the fake resolver answers at once, so the DNS rows are the stack's own path (policy, lookup call, pinning, audit), not the internet's")
	return nil
}

// countDNSEvents counts the audit log's DNS events for name.
func countDNSEvents(path, name string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range bytes.Split(raw, []byte("\n")) {
		var ev netstack.Event
		if json.Unmarshal(l, &ev) == nil && ev.Proto == netstack.ProtoDNS && ev.Name == name {
			n++
		}
	}
	return n
}

// dnsServer is a tiny UDP DNS server on 127.0.0.1 answering as the stack
// does: A for the names it knows, an empty answer for their AAAA, NXDOMAIN
// for the rest. It counts the queries it reads.
type dnsServer struct {
	pc      net.PacketConn
	hosts   map[string]netip.Addr
	queries atomic.Int64
}

func newDNSServer(hosts map[string]netip.Addr) (*dnsServer, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &dnsServer{pc: pc, hosts: hosts}
	go d.serve()
	return d, nil
}

func (d *dnsServer) addr() string { return d.pc.LocalAddr().String() }
func (d *dnsServer) close()       { _ = d.pc.Close() }

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, peer, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		d.queries.Add(1)
		if resp, err := d.answer(buf[:n]); err == nil {
			_, _ = d.pc.WriteTo(resp, peer)
		}
	}
}

func (d *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	ip, ok := d.hosts[strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))]
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	bl := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	bl.EnableCompression()
	if err := bl.StartQuestions(); err != nil {
		return nil, err
	}
	if err := bl.Question(q); err != nil {
		return nil, err
	}
	if err := bl.StartAnswers(); err != nil {
		return nil, err
	}
	if ok && q.Type == dnsmessage.TypeA {
		if err := bl.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: ip.As4()}); err != nil {
			return nil, err
		}
	}
	return bl.Finish()
}
