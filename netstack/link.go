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
// before the stack's writes are dropped (TCP retransmits). It must hold a
// full receive window of the guest's (Linux autotunes to several MiB):
// at 1024, a bulk download lost one segment in thirty to overflow.
const linkQueueLen = 4096

// writeBatch bounds the frames, and bytes, gathered into one write.
const (
	writeBatch      = 64
	writeBatchBytes = 256 << 10
)

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
// conn fails. Frames waiting together go out in one write: a syscall per
// frame cost a third of a bulk download's CPU.
func (l *qemuLink) writeLoop(ctx context.Context) error {
	buf := make([]byte, 0, writeBatchBytes+4+MaxFrameLen)
	for {
		pkt := l.ch.ReadContext(ctx)
		if pkt == nil {
			return ctx.Err()
		}
		buf = appendFrame(buf[:0], pkt)
		for range writeBatch - 1 {
			if len(buf) >= writeBatchBytes {
				break
			}
			pkt = l.ch.Read()
			if pkt == nil {
				break
			}
			buf = appendFrame(buf, pkt)
		}
		if _, err := l.conn.Write(buf); err != nil {
			return fmt.Errorf("netstack: cannot write frame: %w", err)
		}
	}
}

// appendFrame appends pkt in QEMU's framing and releases it.
func appendFrame(buf []byte, pkt *stack.PacketBuffer) []byte {
	view := pkt.ToView()
	buf = binary.BigEndian.AppendUint32(buf, uint32(view.Size()))
	buf = append(buf, view.AsSlice()...)
	view.Release()
	pkt.DecRef()
	return buf
}
