package mitm

import (
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// (k) The CA key is written 0600 in a 0700 directory, the certificate
// 0644; a reload gives the same CA. Stops: another local user reading the
// key and minting certificates the guest trusts.
func TestCAFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ca")
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                            0o700 | os.ModeDir,
		filepath.Join(dir, CAKeyFile):  0o600,
		filepath.Join(dir, CACertFile): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != x509.KeyUsageCertSign {
		t.Errorf("CA constraints: IsCA %v MaxPathLen %d zero %v KeyUsage %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	if !strings.HasPrefix(c.Subject.CommonName, "acp-sandbox sandbox CA ") {
		t.Errorf("CN %q", c.Subject.CommonName)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < CAValidity || life > CAValidity+2*Backdate {
		t.Errorf("validity %v", life)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key %T", c.PublicKey)
	}
	pem, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil || string(pem) != string(ca.CertPEM()) {
		t.Fatalf("CertPEM differs from the file: %v", err)
	}
	if strings.Contains(string(ca.CertPEM()), "PRIVATE") {
		t.Fatal("CertPEM holds the key")
	}

	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(c) {
		t.Fatal("reload made a new CA")
	}

	// Group- or world-readable key: refused, with the fix.
	key := filepath.Join(dir, CAKeyFile)
	for _, m := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(key, m); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateCA(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+key) {
			t.Errorf("mode %#o: %v", m, err)
		}
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}

	// Half a CA is not silently replaced (the guest trusts the old one).
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing certificate: %v", err)
	}

	// A certificate of another key.
	other, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CACertFile), other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched pair: %v", err)
	}
}

func TestLeaf(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ca.Leaf("API.Example.com.")
	if err != nil {
		t.Fatal(err)
	}
	c := l.Leaf
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "api.example.com" || c.IsCA {
		t.Errorf("SANs %v IsCA %v", c.DNSNames, c.IsCA)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key %T", c.PublicKey)
	}
	now := time.Now()
	if d := now.Sub(c.NotBefore); d < Backdate-time.Minute || d > Backdate+time.Minute {
		t.Errorf("NotBefore %v before now, want %v", d, Backdate)
	}
	if d := c.NotAfter.Sub(now); d < LeafValidity-time.Minute || d > LeafValidity {
		t.Errorf("NotAfter in %v", d)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "api.example.com", Roots: pool}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: pool}); err == nil {
		t.Error("leaf verifies for another name")
	}
	if _, err := ca.Leaf("intranet"); err != nil { // a single label, as sniff allows
		t.Error(err)
	}
	if l2, _ := ca.Leaf("api.example.com"); l2 != l {
		t.Error("second Leaf for the name was minted anew")
	}
	for _, bad := range []string{"", "*.example.com", "203.0.113.5", "0x7f000001", "10.0x1", "a..b", "exa mple.com", "[::1]"} {
		if _, err := ca.Leaf(bad); err == nil {
			t.Errorf("Leaf(%q) minted", bad)
		}
	}
}

// (j) Many concurrent first requests for one name mint it once.
func TestLeafMintedOnce(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	got := make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := ca.Leaf("api.example.com")
			if err != nil {
				t.Error(err)
			}
			got[i] = l
		}()
	}
	close(start)
	wg.Wait()
	if m := ca.leaves.mints.Load(); m != 1 {
		t.Fatalf("minted %d times", m)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatal("callers got different certificates")
		}
	}
}

// The cache is bounded: the least recently used name goes first.
func TestLeafCacheLRU(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca.leaves.init(2, ca.mint)
	a, _ := ca.Leaf("a.example.com")
	ca.Leaf("b.example.com")
	ca.Leaf("a.example.com") // a is now the most recent
	ca.Leaf("c.example.com") // evicts b
	if n := ca.leaves.order.Len(); n != 2 {
		t.Fatalf("cache holds %d", n)
	}
	if a2, _ := ca.Leaf("a.example.com"); a2 != a {
		t.Error("a was evicted")
	}
	before := ca.leaves.mints.Load()
	ca.Leaf("b.example.com")
	if ca.leaves.mints.Load() != before+1 {
		t.Error("b was not evicted")
	}
}
