package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/atomicfile"
	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Network is a sandbox's egress rules as the user wrote them: allow and
// deny host patterns (see package policy) and the host loopback ports the
// VM may reach at host.acp-sandbox.internal. The zero Network denies
// everything.
type Network struct {
	Allow     []string `json:"allow,omitempty"`
	Deny      []string `json:"deny,omitempty"`
	HostPorts []int    `json:"hostPorts,omitempty"`
}

// ParseNetwork builds a Network from --allow and --deny values. An allow
// of host.acp-sandbox.internal:PORT shares the host's 127.0.0.1:PORT; every
// other value must be a valid pattern. All problems are reported.
func ParseNetwork(allow, deny []string) (Network, error) {
	var n Network
	var errs []error
	for _, a := range allow {
		if host, port, ok := strings.Cut(a, ":"); ok && strings.EqualFold(host, netstack.HostServiceName) {
			p, err := strconv.Atoi(port)
			if err != nil || p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("--allow %q: the port must be a number from 1 to 65535", a))
				continue
			}
			n.HostPorts = append(n.HostPorts, p)
			continue
		}
		if strings.EqualFold(a, netstack.HostServiceName) {
			errs = append(errs, fmt.Errorf("--allow %q: name the host port to share, as in --allow %s:8080", a, netstack.HostServiceName))
			continue
		}
		if _, err := policy.ParsePattern(a); err != nil {
			errs = append(errs, fmt.Errorf("--allow %w", err))
			continue
		}
		n.Allow = append(n.Allow, a)
	}
	for _, d := range deny {
		if _, err := policy.ParsePattern(d); err != nil {
			errs = append(errs, fmt.Errorf("--deny %w", err))
			continue
		}
		n.Deny = append(n.Deny, d)
	}
	slices.Sort(n.HostPorts)
	n.HostPorts = slices.Compact(n.HostPorts)
	return n, errors.Join(errs...)
}

// Rules compiles n for the network stack.
func (n Network) Rules() (netstack.Rules, error) {
	p, err := policy.New(n.Allow, n.Deny)
	if err != nil {
		return netstack.Rules{}, err
	}
	return netstack.Rules{Policy: p, HostPorts: slices.Clone(n.HostPorts)}, nil
}

// Equal reports whether n and o allow the same flows as written.
func (n Network) Equal(o Network) bool {
	return slices.Equal(n.Allow, o.Allow) && slices.Equal(n.Deny, o.Deny) && slices.Equal(n.HostPorts, o.HostPorts)
}

// String is the rules as the flags that give them.
func (n Network) String() string {
	var parts []string
	for _, a := range n.Allow {
		parts = append(parts, "--allow "+a)
	}
	for _, p := range n.HostPorts {
		parts = append(parts, fmt.Sprintf("--allow %s:%d", netstack.HostServiceName, p))
	}
	for _, d := range n.Deny {
		parts = append(parts, "--deny "+d)
	}
	if len(parts) == 0 {
		return "(no network: everything denied)"
	}
	return strings.Join(parts, " ")
}

// Args are the supervise flags for n.
func (n Network) Args() []string {
	var a []string
	for _, s := range n.Allow {
		a = append(a, "--allow", s)
	}
	for _, p := range n.HostPorts {
		a = append(a, "--allow", fmt.Sprintf("%s:%d", netstack.HostServiceName, p))
	}
	for _, s := range n.Deny {
		a = append(a, "--deny", s)
	}
	return a
}

// socketpair returns the host end (for the stack) and the VM end (for
// QEMU) of a stream socketpair.
func socketpair() (host net.Conn, vm *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create the VM's network socketpair: %w", err)
	}
	hf := os.NewFile(uintptr(fds[0]), "net-host")
	defer hf.Close()
	host, err = net.FileConn(hf)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("cannot use the network socketpair: %w", err)
	}
	return host, os.NewFile(uintptr(fds[1]), "net-vm"), nil
}

// Audit files.
const (
	auditRotateSize = 32 << 20 // network.jsonl is rotated to .1 beyond this
	blockedKeep     = 50       // recent blocks the guest can read
	blockedFlush    = 50 * time.Millisecond
)

// netAudit is the sandbox's audit sink: every decision as a JSON line in
// network.jsonl (rotated once at auditRotateSize), and the recent denials
// in net/blocked.jsonl, the only network file the guest can read (for
// `acp-sandbox why`). It must not block the stack for long: the blocked
// file is rewritten at most every blockedFlush.
type netAudit struct {
	id          string
	path        string
	blockedPath string

	flushMu sync.Mutex // orders rewrites of the blocked file
	mu      sync.Mutex
	f       *os.File
	size    int64
	blocked []netstack.Event
	timer   *time.Timer
	closed  bool
}

func openNetAudit(sb *Sandbox) (*netAudit, error) {
	if err := os.MkdirAll(sb.NetInfoDir(), 0o755); err != nil {
		return nil, err
	}
	// World-readable: the guest user reads it over 9p as itself.
	if err := os.Chmod(sb.NetInfoDir(), 0o755); err != nil {
		return nil, err
	}
	a := &netAudit{id: sb.ID, path: sb.NetworkLog(), blockedPath: filepath.Join(sb.NetInfoDir(), control.NetBlockedFile)}
	if err := a.open(); err != nil {
		return nil, err
	}
	// A new VM starts with nothing to explain.
	if err := atomicfile.Write(a.blockedPath, nil, 0o644); err != nil {
		a.f.Close()
		return nil, err
	}
	return a, nil
}

func (a *netAudit) open() error {
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the network audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	a.f, a.size = f, fi.Size()
	return nil
}

func (a *netAudit) record(e netstack.Event) {
	e.Sandbox = a.id
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.write(line, e)
}

// recordHTTPS records one intercepted request (credentials layer); a
// blocked one also lands in the guest's blocked list.
func (a *netAudit) recordHTTPS(e mitm.Event) {
	e.Sandbox = a.id
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.write(line, netstack.Event{Time: e.Time, Sandbox: a.id, Proto: e.Proto, Name: e.Host, Port: 443,
		Verdict: e.Verdict, Rule: e.Rule, Reason: strings.TrimSpace(e.Method + " " + e.Path + ": " + e.Reason)})
}

// write appends line to the log; summary goes to the blocked list when it
// is a denial.
func (a *netAudit) write(line []byte, e netstack.Event) {
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if a.size+int64(len(line)) > auditRotateSize {
		a.f.Close()
		_ = os.Rename(a.path, a.path+".1")
		if err := a.open(); err != nil {
			a.closed = true
			return
		}
	}
	n, _ := a.f.Write(line)
	a.size += int64(n)
	if e.Verdict != netstack.VerdictDeny && e.Verdict != VerdictPending {
		return
	}
	a.blocked = append(a.blocked, e)
	if len(a.blocked) > blockedKeep {
		a.blocked = slices.Delete(a.blocked, 0, len(a.blocked)-blockedKeep)
	}
	if a.timer == nil {
		a.timer = time.AfterFunc(blockedFlush, a.flushBlocked)
	}
}

// flushBlocked rewrites the guest's blocked file.
func (a *netAudit) flushBlocked() {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	a.timer = nil
	var buf []byte
	for _, e := range a.blocked {
		if b, err := json.Marshal(e); err == nil {
			buf = append(append(buf, b...), '\n')
		}
	}
	a.mu.Unlock()
	_ = atomicfile.Write(a.blockedPath, buf, 0o644)
}

func (a *netAudit) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	pending := a.timer != nil && a.timer.Stop()
	a.mu.Unlock()
	if pending {
		a.flushBlocked()
	}
	a.f.Close()
}

// startNet builds the VM's network stack on a new socketpair and returns
// the end QEMU gets.
func (s *supervisor) startNet() (*os.File, error) {
	s.mu.Lock()
	rules, err := s.eff.Rules()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	host, vm, err := socketpair()
	if err != nil {
		return nil, err
	}
	cfg := netstack.Config{Conn: host, Rules: rules, Audit: s.audit.record, Approve: s.approveFlow, Logger: s.log}
	if s.creds != nil && s.creds.ic != nil {
		cfg.Intercept = s.creds.ic.Intercept
	}
	if testNetHooks != nil {
		testNetHooks(&cfg)
	}
	st, err := netstack.New(cfg)
	if err != nil {
		host.Close()
		vm.Close()
		return nil, err
	}
	s.mu.Lock()
	s.net, s.applied = st, true
	s.mu.Unlock()
	return vm, nil
}

func (s *supervisor) closeNet() {
	s.mu.Lock()
	st := s.net
	s.net = nil
	s.mu.Unlock()
	if st != nil {
		st.Close()
	}
}

// setNetwork replaces the clients' extra rules of the running VM.
func (s *supervisor) setNetwork(n Network) error {
	if _, err := n.Rules(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.opt.Network
	s.opt.Network = n
	if err := s.applyRulesLocked(); err != nil {
		s.opt.Network = old
		return err
	}
	s.log.Info("network rules replaced", "extra", n.String(), "in force", s.eff.String())
	return nil
}

// testNetHooks, set only in binaries built with the acpsandbox_testhooks
// tag, lets end-to-end tests inject the resolver and dialer. The shipped
// binary has no way to reach it.
var testNetHooks func(*netstack.Config)
