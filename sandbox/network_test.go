package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/control"
	"github.com/acp-sandbox/acp-sandbox/netstack"
)

func TestParseNetwork(t *testing.T) {
	n, err := ParseNetwork(
		[]string{"api.example.com", "host.acp-sandbox.internal:11434", "**.github.com:22", "HOST.acp-sandbox.internal:80", "host.acp-sandbox.internal:80"},
		[]string{"gist.github.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.Allow, []string{"api.example.com", "**.github.com:22"}) || !slices.Equal(n.HostPorts, []int{80, 11434}) || !slices.Equal(n.Deny, []string{"gist.github.com"}) {
		t.Fatalf("%+v", n)
	}
	if _, err := n.Rules(); err != nil {
		t.Fatal(err)
	}
	// Round trip through the supervise flags.
	var allow, deny []string
	a := n.Args()
	for i := 0; i < len(a); i += 2 {
		if a[i] == "--allow" {
			allow = append(allow, a[i+1])
		} else {
			deny = append(deny, a[i+1])
		}
	}
	back, err := ParseNetwork(allow, deny)
	if err != nil || !back.Equal(n) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}

	// Every problem is reported, each naming its flag.
	_, err = ParseNetwork([]string{"host.acp-sandbox.internal", "host.acp-sandbox.internal:0", "exa mple.com"}, []string{"*"})
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{
		`--allow "host.acp-sandbox.internal": name the host port`,
		`--allow "host.acp-sandbox.internal:0": the port must be`,
		`--allow "exa mple.com"`,
		`--deny "*"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// The guest-visible file holds only denials, at most blockedKeep, and is
// world-readable (the guest user reads it over 9p).
func TestNetAuditBlockedFile(t *testing.T) {
	d := t.TempDir()
	sb := &Sandbox{ID: "0123456789abcdef", StateDir: d}
	a, err := openNetAudit(sb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blockedKeep + 10 {
		a.record(netstack.Event{Time: time.Now(), Proto: "dns", Name: "n" + string(rune('a'+i%26)), Verdict: netstack.VerdictDeny, Rule: "default deny"})
		a.record(netstack.Event{Time: time.Now(), Proto: "tcp", Verdict: netstack.VerdictAllow, Rule: "allow"})
	}
	a.Close()
	b, err := os.ReadFile(filepath.Join(sb.NetInfoDir(), control.NetBlockedFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != blockedKeep {
		t.Fatalf("%d blocked lines, want %d", len(lines), blockedKeep)
	}
	for _, l := range lines {
		var e netstack.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Verdict != netstack.VerdictDeny || e.Sandbox != sb.ID {
			t.Fatalf("bad line %q: %v", l, err)
		}
	}
	fi, _ := os.Stat(filepath.Join(sb.NetInfoDir(), control.NetBlockedFile))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("blocked file mode %v", fi.Mode().Perm())
	}
	all, _ := os.ReadFile(sb.NetworkLog())
	if n := strings.Count(string(all), "\n"); n != 2*(blockedKeep+10) {
		t.Errorf("audit log has %d lines, want every decision (%d)", n, 2*(blockedKeep+10))
	}
	if fi, _ := os.Stat(sb.NetworkLog()); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
}
