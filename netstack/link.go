package netstack

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// MaxFrameLen bounds the length prefix of a frame read from the guest. A
// larger prefix means the stream is corrupt (or hostile) and ends the link,
// instead of allocating what the guest asks for.
const MaxFrameLen = 64 << 10

// linkQueueLen is the number of outbound frames the channel endpoint holds
// before the stack's writes are dropped (TCP retransmits).
const linkQueueLen = 1024

// qemuLink moves ethernet frames between a gVisor NIC and a stream in QEMU's
// framing: a 4-byte big-endian length, then the frame.
type qemuLink struct {
	conn net.Conn
	ch   *channel.Endpoint
	ep   stack.LinkEndpoint // ch wrapped in ethernet: what the NIC uses
}

func newQemuLink(conn net.Conn, mac tcpip.LinkAddress, mtu uint32) *qemuLink {
	ch := channel.New(linkQueueLen, mtu+header.EthernetMinimumSize, mac)
	return &qemuLink{conn: conn, ch: ch, ep: ethernet.New(ch)}
}

// readLoop injects frames read from conn until conn fails or closes.
func (l *qemuLink) readLoop() error {
	br := bufio.NewReaderSize(l.conn, 64<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("netstack: cannot read frame length: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxFrameLen {
			return fmt.Errorf("netstack: frame of %d bytes exceeds %d", n, MaxFrameLen)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return fmt.Errorf("netstack: cannot read frame: %w", err)
		}
		if n < header.EthernetMinimumSize {
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		// The ethernet endpoint is the channel's dispatcher: it strips the
		// header and hands the packet to the stack by ethertype.
		l.ch.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// writeLoop writes the stack's outbound frames to conn until ctx is done or
// conn fails.
func (l *qemuLink) writeLoop(ctx context.Context) error {
	for {
		pkt := l.ch.ReadContext(ctx)
		if pkt == nil {
			return ctx.Err()
		}
		view := pkt.ToView()
		frame := make([]byte, 4+view.Size())
		binary.BigEndian.PutUint32(frame, uint32(view.Size()))
		copy(frame[4:], view.AsSlice())
		view.Release()
		pkt.DecRef()
		if _, err := l.conn.Write(frame); err != nil {
			return fmt.Errorf("netstack: cannot write frame: %w", err)
		}
	}
}
