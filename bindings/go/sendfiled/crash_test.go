package sendfiled_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// A daemon killed mid-transfer: ErrOutcomeUnknown (which also matches
// ErrUnavailable), and the file position, the error's BytesSent and the
// bytes the receiver got all agree.
func TestDaemonKilledMidTransfer(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstu\n"), 2<<20) // 64 MiB
	path := writeFile(filepath.Join(t.TempDir(), "big"), data)
	f := open(t, path)
	const off = 4096
	p := newIdlePeer(t)

	type outcome struct {
		res sendfiled.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.SendFile(context.Background(), p.Conn, f, off, 0, nil)
		done <- outcome{res, err}
	}()
	// Read some of it, so that the transfer has surely begun.
	buf := make([]byte, 256<<10)
	n, err := p.server.Read(buf[:1])
	if err != nil || n != 1 {
		t.Fatalf("read: %d, %v", n, err)
	}
	d.Kill()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("SendFile did not return")
	}
	if !errors.Is(o.err, sendfiled.ErrOutcomeUnknown) || !errors.Is(o.err, sendfiled.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", o.err)
	}
	if !errors.Is(o.err, syscall.ECONNRESET) {
		t.Errorf("err = %v, want ECONNRESET inside", o.err)
	}
	p.startReading(buf[:1])
	r := p.finish(t)
	if r.n <= 1 || r.n >= int64(len(data)-off) {
		t.Fatalf("received %d bytes", r.n)
	}
	if pos := position(t, f); pos != off+r.n {
		t.Errorf("position %d, want %d + %d received", pos, off, r.n)
	}
	if o.res.BytesSent != r.n || o.res.FinalOffset != off+r.n {
		t.Errorf("result %+v, want %d bytes sent", o.res, r.n)
	}
	if r.sum != sum(data[off:off+r.n]) {
		t.Error("the receiver got other bytes than the file's")
	}
	_ = os.Remove(path)
}
