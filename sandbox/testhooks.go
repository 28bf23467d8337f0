//go:build acpsandbox_testhooks

package sandbox

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack"
	"github.com/acp-sandbox/acp-sandbox/netstack/mitm"
)

func init() {
	path := os.Getenv(TestNetEnv)
	if path == "" {
		return
	}
	approveTimeout, _ := time.ParseDuration(os.Getenv(TestApproveTimeoutEnv))
	testNetHooks = func(cfg *netstack.Config) {
		if approveTimeout > 0 {
			cfg.ApproveTimeout = approveTimeout
		}
		b, err := os.ReadFile(path)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", TestNetEnv, err))
		}
		var tn TestNet
		if err := json.Unmarshal(b, &tn); err != nil {
			panic(fmt.Sprintf("%s: %v", TestNetEnv, err))
		}
		cfg.Resolver = &tn
		cfg.Dialer = &testDialer{tn: &tn}
	}
	testMITMHooks = func(o *mitm.Options) {
		b, err := os.ReadFile(path)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", TestNetEnv, err))
		}
		var tn TestNet
		if err := json.Unmarshal(b, &tn); err != nil || tn.UpstreamCA == "" {
			return
		}
		pem, err := os.ReadFile(tn.UpstreamCA)
		if err != nil {
			panic(fmt.Sprintf("%s: upstreamCA: %v", TestNetEnv, err))
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		o.UpstreamRoots = pool
	}
}

func (tn *TestNet) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(host, ".")
	ss, ok := tn.Hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, s := range ss {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, ip)
	}
	return out, nil
}

type testDialer struct {
	tn *TestNet
	mu sync.Mutex
}

func (d *testDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.tn.DialLog != "" {
		d.mu.Lock()
		if f, err := os.OpenFile(d.tn.DialLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintln(f, addr)
			f.Close()
		}
		d.mu.Unlock()
	}
	to, ok := d.tn.Routes[addr]
	if !ok {
		return nil, fmt.Errorf("test network: no route to %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}
