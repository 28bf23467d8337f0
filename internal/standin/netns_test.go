package standin

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// The real agents run on the host in a network namespace of their own
// with only loopback, so nothing they try can leave the machine, and
// with an /etc/hosts and /etc/resolv.conf of their own (in a mount
// namespace), so the real API names can lead to the stand-in.

// agentGate is the environment variable that opts in to the tests that
// start real agents on the host.
const agentGate = "ACP_SANDBOX_TEST_STANDIN_AGENT"

// agentChild marks the re-executed test process inside a private network
// namespace, where the agent cannot reach anything but loopback.
const agentChild = "ACP_SANDBOX_STANDIN_NETNS"

// inPrivateNet reports whether the calling test, name, runs in the
// private namespaces and should go on. Outside them it skips unless
// agentGate is 1, runs the test binary again for name inside them,
// reports that run's output and fails if it failed, and returns false.
// Inside them it brings loopback up.
func inPrivateNet(t *testing.T, name, bin string) bool {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s is not installed: %v (scripts/test-deps.sh installs the test agents)", bin, err)
	}
	if os.Getenv(agentChild) != "" {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
		return true
	}
	// Real agents on the host load a 2-core machine enough to disturb
	// the VM tests running beside them in `go test ./...`; run these when
	// changing the stand-in (CI covers claude in the VM:
	// internal/e2e TestRealClaudePrompt).
	if testing.Short() || os.Getenv(agentGate) != "1" {
		t.Skipf("starts the real agent several times on the host; set %s=1 to run it", agentGate)
	}
	args := []string{"--net", "--mount", "--propagation", "private"}
	if os.Getuid() != 0 {
		args = append([]string{"--user", "--map-root-user"}, args...)
	}
	if out, err := exec.Command("unshare", append(args, "true")...).CombinedOutput(); err != nil {
		t.Skipf("the agent must run without network access, in a namespace of its own, and unshare %s fails: %v %s",
			strings.Join(args, " "), err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	run := "^" + name + "$"
	if f := flag.Lookup("test.run").Value.String(); strings.Contains(f, "/") {
		run = f // keep a subtest filter
	}
	cmd := exec.CommandContext(ctx, "unshare", append(args, "--", os.Args[0], "-test.run", run, "-test.v", "-test.count=1")...)
	cmd.Env = append(os.Environ(), agentChild+"=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("in the private namespace:\n%s", out)
	if err != nil {
		t.Fatalf("in the private namespace: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+name)) {
		t.Fatalf("the run in the private namespace did not pass %s", name)
	}
	return false
}

// privateHosts puts an /etc/hosts in place (for the test and its
// subtests) that leads names to 127.0.0.1.
func privateHosts(t *testing.T, names ...string) {
	t.Helper()
	hosts := filepath.Join(t.TempDir(), "hosts")
	b := "127.0.0.1 localhost " + strings.Join(names, " ") + "\n::1 localhost ip6-localhost\n"
	if err := os.WriteFile(hosts, []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(hosts, "/etc/hosts", "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot put a private /etc/hosts in place: %v", err)
	}
	t.Cleanup(func() { unix.Unmount("/etc/hosts", 0) })
}

// dnsLog is a DNS server on 127.0.0.1:53 that records the names looked
// up and answers NXDOMAIN, so a test learns which other hosts an agent
// tries to reach (names in /etc/hosts never get here).
type dnsLog struct {
	mu    sync.Mutex
	names []string
}

// startDNSLog starts a dnsLog and points /etc/resolv.conf at it.
func startDNSLog(t *testing.T) *dnsLog {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		t.Skipf("cannot listen for DNS on 127.0.0.1:53: %v", err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	// One try, no search domains: each name shows up once a lookup.
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		pc.Close()
		t.Skipf("cannot put a private /etc/resolv.conf in place: %v", err)
	}
	d := &dnsLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			d.mu.Lock()
			name := strings.TrimSuffix(q.Name.String(), ".")
			if !slices.Contains(d.names, name) {
				d.names = append(d.names, name)
			}
			d.mu.Unlock()
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true, RCode: dnsmessage.RCodeNameError})
			b.StartQuestions()
			b.Question(q)
			if msg, err := b.Finish(); err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
		unix.Unmount("/etc/resolv.conf", 0)
	})
	return d
}

// Names returns the names looked up so far, in order of first lookup,
// and forgets them.
func (d *dnsLog) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.names
	d.names = nil
	return n
}
