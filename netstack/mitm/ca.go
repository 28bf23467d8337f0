package mitm

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/atomicfile"
	"github.com/acp-sandbox/acp-sandbox/netstack/sniff"
)

// Files of a CA directory.
const (
	CAKeyFile  = "ca-key.pem"  // PKCS #8 ECDSA key, mode 0600
	CACertFile = "ca-cert.pem" // self-signed certificate, mode 0644
)

// Lifetimes of the certificates a CA makes.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 7 * 24 * time.Hour
	// Backdate is how far NotBefore lies in the past, for a guest clock
	// that is behind the host's.
	Backdate = time.Hour
	// leafRenewBefore: a cached leaf this close to expiry is minted anew.
	leafRenewBefore = 24 * time.Hour
)

// DefaultLeafCacheSize bounds the leaf certificates a CA keeps.
const DefaultLeafCacheSize = 1024

// CA is the per-sandbox certificate authority. Its key never leaves the
// host; the guest gets CertPEM. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	leaves  leafCache
}

// LoadOrCreateCA loads the CA in dir (CAKeyFile, CACertFile), or creates
// one there if neither file exists. dir is created with mode 0700. A key
// file that group or others may access is refused: chmod it to 0600 (or
// delete dir, and with it the CA, to start over).
func LoadOrCreateCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mitm: cannot create CA directory: %w", err)
	}
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	_, kerr := os.Lstat(keyPath)
	_, cerr := os.Lstat(certPath)
	switch {
	case kerr == nil && cerr == nil:
		return loadCA(keyPath, certPath)
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
		return createCA(keyPath, certPath)
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("mitm: cannot read CA key: %w", kerr)
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return nil, fmt.Errorf("mitm: cannot read CA certificate: %w", cerr)
	case kerr != nil:
		return nil, fmt.Errorf("mitm: CA key %s is missing but its certificate is there: remove %s to make a new CA", keyPath, certPath)
	default:
		return nil, fmt.Errorf("mitm: CA certificate %s is missing but its key is there: remove %s to make a new CA", certPath, keyPath)
	}
}

func createCA(keyPath, certPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot generate CA key: %w", err)
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "acp-sandbox sandbox CA " + hex.EncodeToString(id), Organization: []string{"acp-sandbox"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot encode CA key: %w", err)
	}
	// O_EXCL: if another process made a CA here meanwhile, use that one.
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadCA(keyPath, certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot write CA key: %w", err)
	}
	if err := errors.Join(pem.Encode(kf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), kf.Sync(), kf.Close()); err != nil {
		_ = os.Remove(keyPath)
		return nil, fmt.Errorf("mitm: cannot write CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath)
		return nil, fmt.Errorf("mitm: cannot write CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot parse the new CA certificate: %w", err)
	}
	return newCA(cert, key, certPEM), nil
}

func loadCA(keyPath, certPath string) (*CA, error) {
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot read CA key: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("mitm: CA key %s has mode %#o, open to group or others: run chmod 600 %s (or remove its directory to make a new CA)", keyPath, m, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot read CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("mitm: CA key %s is not a PEM \"PRIVATE KEY\"", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot parse CA key %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("mitm: CA key %s is a %T, want ECDSA", keyPath, k)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot read CA certificate: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("mitm: CA certificate %s is not a PEM \"CERTIFICATE\"", certPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot parse CA certificate %s: %w", certPath, err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("mitm: CA certificate %s does not belong to key %s: remove both to make a new CA", certPath, keyPath)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("mitm: %s is not a CA certificate", certPath)
	}
	if time.Now().After(cert.NotAfter) {
		return nil, fmt.Errorf("mitm: CA certificate %s expired on %s: remove it and %s to make a new CA", certPath, cert.NotAfter.Format(time.DateOnly), keyPath)
	}
	return newCA(cert, key, pem.EncodeToMemory(cb)), nil
}

func newCA(cert *x509.Certificate, key *ecdsa.PrivateKey, certPEM []byte) *CA {
	ca := &CA{cert: cert, key: key, certPEM: certPEM}
	ca.leaves.init(DefaultLeafCacheSize, ca.mint)
	return ca
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("mitm: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// CertPEM is the CA certificate in PEM, for the guest's trust store.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Certificate is the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// String names the CA; the key is never printed.
func (ca *CA) String() string { return "mitm.CA{" + ca.cert.Subject.CommonName + "}" }

// GoString is String: %#v must not dump the key.
func (ca *CA) GoString() string { return ca.String() }

// Leaf returns a server certificate for the host name, signed by the CA:
// ECDSA P-256, the name as its only DNS SAN, valid LeafValidity from
// Backdate ago. Leaves are cached (least recently used out first); each
// name is minted once even when many ask at the same time. name must be a
// DNS host name (no wildcard, no IP address).
func (ca *CA) Leaf(name string) (*tls.Certificate, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if !sniff.ValidHostname(name) {
		return nil, fmt.Errorf("mitm: cannot mint a certificate for %q: not a DNS host name", name)
	}
	return ca.leaves.get(name)
}

func (ca *CA) mint(name string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot generate key for %s: %w", name, err)
	}
	now := time.Now()
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, crypto.Signer(ca.key))
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot sign certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mitm: cannot parse certificate for %s: %w", name, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// leafCache is a bounded LRU of leaves in which each name is minted at
// most once at a time: callers for a name being minted wait for it.
type leafCache struct {
	mu    sync.Mutex
	max   int
	mint  func(string) (*tls.Certificate, error)
	order *list.List // of *leafEntry, most recent first
	byKey map[string]*list.Element
	mints atomic.Int64 // for tests
}

type leafEntry struct {
	name  string
	ready chan struct{} // closed when cert/err are set
	cert  *tls.Certificate
	err   error
}

func (c *leafCache) init(max int, mint func(string) (*tls.Certificate, error)) {
	c.max, c.mint = max, mint
	c.order = list.New()
	c.byKey = map[string]*list.Element{}
}

func (c *leafCache) get(name string) (*tls.Certificate, error) {
	c.mu.Lock()
	if el, ok := c.byKey[name]; ok {
		e := el.Value.(*leafEntry)
		select {
		case <-e.ready:
			if e.err == nil && time.Until(e.cert.Leaf.NotAfter) > leafRenewBefore {
				c.order.MoveToFront(el)
				c.mu.Unlock()
				return e.cert, nil
			}
			c.remove(el) // stale: mint anew below
		default:
			c.order.MoveToFront(el)
			c.mu.Unlock()
			<-e.ready
			return e.cert, e.err
		}
	}
	e := &leafEntry{name: name, ready: make(chan struct{})}
	c.byKey[name] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
	c.mu.Unlock()

	c.mints.Add(1)
	e.cert, e.err = c.mint(name)
	close(e.ready)
	if e.err != nil { // do not cache failures
		c.mu.Lock()
		if el, ok := c.byKey[name]; ok && el.Value.(*leafEntry) == e {
			c.remove(el)
		}
		c.mu.Unlock()
	}
	return e.cert, e.err
}

// remove drops el. Caller holds mu. Waiters of an entry being minted still
// get its result.
func (c *leafCache) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.byKey, el.Value.(*leafEntry).name)
}
