package testagent

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

// The agent exits on stdin EOF even while a prompt waits for the client.
func TestExitsOnEOFWithPendingCall(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int)
	go func() { done <- Main(inR, outW, io.Discard) }()
	io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionId":"s","prompt":[{"type":"text","text":"read /x"}]}}`+"\n")
	sc := bufio.NewScanner(outR)
	if !sc.Scan() || !strings.Contains(sc.Text(), "fs/read_text_file") {
		t.Fatalf("expected the agent's fs request, got %q", sc.Text())
	}
	go io.Copy(io.Discard, outR)
	inW.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent hangs after stdin EOF")
	}
}
