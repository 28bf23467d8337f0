package netstack

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The wire format is QEMU's: an ARP request written by hand with a 4-byte
// big-endian length gets an ARP reply framed the same way.
func TestQemuFramingARP(t *testing.T) {
	host, vm := socketpair(t)
	st, err := New(Config{Conn: host})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer vm.Close()

	mac, _ := net.ParseMAC(guestHW)
	frame := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	header.Ethernet(frame).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(mac), DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber,
	})
	arp := header.ARP(frame[header.EthernetMinimumSize:])
	arp.SetIPv4OverEthernet()
	arp.SetOp(header.ARPRequest)
	copy(arp.HardwareAddressSender(), mac)
	gw, guest := GatewayIP.As4(), GuestIP.As4()
	copy(arp.ProtocolAddressSender(), guest[:])
	copy(arp.ProtocolAddressTarget(), gw[:])
	out := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	if _, err := vm.Write(append(out, frame...)); err != nil {
		t.Fatal(err)
	}

	_ = vm.SetReadDeadline(time.Now().Add(hang))
	var lenBuf [4]byte
	if _, err := io.ReadFull(vm, lenBuf[:]); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n < header.EthernetMinimumSize+header.ARPSize || n > 1514 {
		t.Fatalf("frame length %d", n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(vm, reply); err != nil {
		t.Fatal(err)
	}
	eth := header.Ethernet(reply)
	if eth.Type() != header.ARPProtocolNumber || eth.DestinationAddress() != tcpip.LinkAddress(mac) {
		t.Fatalf("not an ARP reply to us: type %v dst %v", eth.Type(), eth.DestinationAddress())
	}
	r := header.ARP(reply[header.EthernetMinimumSize:])
	if r.Op() != header.ARPReply || !bytes.Equal(r.ProtocolAddressSender(), gw[:]) ||
		net.HardwareAddr(r.HardwareAddressSender()).String() != GatewayMAC {
		t.Fatalf("bad ARP reply op %v from %v/%v", r.Op(), r.ProtocolAddressSender(), net.HardwareAddr(r.HardwareAddressSender()))
	}
}

// A length prefix beyond MaxFrameLen ends the link instead of allocating
// what the guest asks for.
func TestOversizedFrameEndsLink(t *testing.T) {
	host, vm := socketpair(t)
	st, err := New(Config{Conn: host})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer vm.Close()
	if _, err := vm.Write([]byte{0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.Done():
	case <-time.After(hang):
		t.Fatal("link did not end")
	}
	if err := st.Err(); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("Err() = %v", err)
	}
}

func TestNewRequiresConn(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without Conn succeeded")
	}
}

// Close ends every goroutine the stack owns, also with a flow open.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		e := newEnvNoCleanup(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		held := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				held <- c
			}
		}()
		e.dial.route["203.0.113.10:443"] = ln.Addr().String()
		e.resolveAPI(t)
		c, err := e.connect(apiIP, 443)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(clientHello(t, "api.example.com")); err != nil {
			t.Fatal(err)
		}
		var up net.Conn
		select {
		case up = <-held:
		case <-time.After(hang):
			t.Fatal("no upstream connection")
		}
		defer up.Close()
		closed := make(chan struct{})
		go func() { e.st.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(hang):
			t.Fatal("Close hung with a flow open")
		}
		e.cleanup()
	}()
	deadline := time.Now().Add(hang)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestJSONLAudit(t *testing.T) {
	var b bytes.Buffer
	a := JSONLAudit(&b)
	a(Event{Time: time.Unix(0, 0).UTC(), Proto: ProtoTCP, Name: "x.example", IP: apiIP, Port: 443, Verdict: VerdictDeny, Rule: RuleSNI})
	a(Event{Time: time.Unix(0, 0).UTC(), Proto: ProtoDNS, Verdict: VerdictDeny, Rule: RuleQueryType})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		`{"time":"1970-01-01T00:00:00Z","proto":"tcp","name":"x.example","ip":"203.0.113.10","port":443,"verdict":"deny","rule":"sni"}`,
		`{"time":"1970-01-01T00:00:00Z","proto":"dns","verdict":"deny","rule":"query type"}`,
	}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), strings.Join(want, "\n"))
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.IP != apiIP {
		t.Fatalf("round trip: %v %+v", err, e)
	}
}

func TestRateLimiter(t *testing.T) {
	r := rateLimiter{limit: 2, window: time.Second}
	now := time.Unix(100, 0)
	for i, want := range []bool{true, true, false, false} {
		if ok, _ := r.allow(now); ok != want {
			t.Fatalf("event %d: %v", i, ok)
		}
	}
	if ok, sup := r.allow(now.Add(time.Second)); !ok || sup != 2 {
		t.Fatalf("next window: %v, suppressed %d", ok, sup)
	}
}
