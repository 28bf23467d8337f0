package guest

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/internal/atomicfile"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// Network bring-up bounds. The host's stack answers DHCP at once; the
// retries cover a loaded TCG host, not a slow server.
const (
	nicWait      = 10 * time.Second
	dhcpTimeout  = 3 * time.Second
	dhcpAttempts = 4
)

// configureNetwork brings up loopback and, when the VM has a NIC, the NIC
// by DHCP from the host's userspace stack: address, default route, MTU and
// /etc/resolv.conf all come from the lease. The stack is the only thing on
// the link, so DHCP says nothing the host did not decide.
func configureNetwork(ctx context.Context, withNIC bool) error {
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network: lo up: %w", err)
	}
	if !withNIC {
		// No resolver at all: name lookups fail at once instead of
		// waiting on a server that does not exist.
		return atomicfile.Write("/etc/resolv.conf", nil, 0o644)
	}
	link, err := waitNIC(ctx, nicWait)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: %s up: %w", name, err)
	}
	lease, err := dhcp(ctx, name)
	if err != nil {
		return err
	}
	ack := lease.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(24, 32)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ack.YourIPAddr, Mask: mask}}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("network: add %v to %s: %w", addr, name, err)
	}
	if mtu := leaseMTU(ack); mtu > 0 {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("network: %s mtu %d: %w", name, mtu, err)
		}
	}
	routers := ack.Router()
	if len(routers) == 0 {
		return fmt.Errorf("network: the DHCP lease for %s has no router", name)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: routers[0]}); err != nil {
		return fmt.Errorf("network: default route via %v: %w", routers[0], err)
	}
	var resolv strings.Builder
	for _, dns := range ack.DNS() {
		fmt.Fprintf(&resolv, "nameserver %s\n", dns)
	}
	// The resolver answers at once, except while the user is asked about
	// a blocked name (approve-on-block, up to 60 s): wait that long, and a
	// retry joins the same question on the host.
	resolv.WriteString("options timeout:30 attempts:2\n")
	if err := atomicfile.Write("/etc/resolv.conf", []byte(resolv.String()), 0o644); err != nil {
		return err
	}
	log.Printf("network: %s %v via %v, dns %v", name, addr.IPNet, routers[0], ack.DNS())
	return nil
}

// waitNIC returns the first non-loopback ethernet link; it appears shortly
// after virtio_net loads.
func waitNIC(ctx context.Context, timeout time.Duration) (netlink.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("network: list links: %w", err)
		}
		for _, l := range links {
			if l.Attrs().Flags&net.FlagLoopback == 0 && l.Type() == "device" {
				return l, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("network: no network interface appeared within %v (is virtio_net loaded?)", timeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// dhcp runs DISCOVER/OFFER/REQUEST/ACK on the unconfigured interface.
func dhcp(ctx context.Context, ifname string) (*nclient4.Lease, error) {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(dhcpAttempts))
	if err != nil {
		return nil, fmt.Errorf("network: DHCP client on %s: %w", ifname, err)
	}
	defer c.Close()
	lease, err := c.Request(ctx)
	if err != nil {
		return nil, fmt.Errorf("network: DHCP on %s: %w", ifname, err)
	}
	if lease.ACK == nil || lease.ACK.YourIPAddr.To4() == nil {
		return nil, errors.New("network: DHCP ACK without an IPv4 address")
	}
	return lease, nil
}

func leaseMTU(m *dhcpv4.DHCPv4) int {
	b := m.Options.Get(dhcpv4.OptionInterfaceMTU)
	if len(b) != 2 {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}
