package sendfiled_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/wire"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// fake plays the daemon's part on a socket, for what a real daemon cannot
// be made to do on cue.
type fake struct {
	t     *testing.T
	path  string
	ln    *net.UnixListener
	conns chan *net.UnixConn
}

func newFake(t *testing.T) *fake {
	dir, err := os.MkdirTemp("", "sfdfake")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, path: filepath.Join(dir, "fake.sock"), conns: make(chan *net.UnixConn, 8)}
	f.ln, err = net.ListenUnix("unixpacket", &net.UnixAddr{Name: f.path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := f.ln.AcceptUnix()
			if err != nil {
				close(f.conns)
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() {
		f.ln.Close()
		for c := range f.conns {
			c.Close()
		}
		os.RemoveAll(dir)
	})
	return f
}

func (f *fake) accept() *net.UnixConn {
	f.t.Helper()
	select {
	case c := <-f.conns:
		f.t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(60 * time.Second):
		f.t.Fatal("no connection")
		return nil
	}
}

// read reads one request, closing the descriptors that came with it.
func (f *fake) read(c *net.UnixConn) (wire.Request, int) {
	f.t.Helper()
	buf := make([]byte, wire.MaxRecord)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		f.t.Fatal(err)
	}
	nfds := 0
	msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		fds, _ := syscall.ParseUnixRights(&m)
		for _, fd := range fds {
			syscall.Close(fd)
			nfds++
		}
	}
	r, err := wire.DecodeRequest(buf[:n])
	if err != nil {
		f.t.Fatal(err)
	}
	return r, nfds
}

// waitQueued waits until a record is queued on c, without reading it.
func (f *fake) waitQueued(c *net.UnixConn) {
	rc, _ := c.SyscallConn()
	buf := make([]byte, 1)
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}

func reply(t *testing.T, c *net.UnixConn, rec []byte) {
	t.Helper()
	if _, err := c.Write(rec); err != nil {
		t.Fatal(err)
	}
}

func okReply(id, n uint64) []byte {
	b := []byte{0x08}
	b = appendUvarint(b, id)
	b = append(b, 0x28)
	b = appendUvarint(b, n)
	b = append(b, 0x30)
	b = appendUvarint(b, n)
	return append(b, 0x38, 1)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

type call struct {
	res sendfiled.Result
	err error
}

func sendAsync(c *sendfiled.Client, p *peer, f *os.File, offset int64) chan call {
	ch := make(chan call, 1)
	go func() {
		res, err := c.SendFile(context.Background(), p.Conn, f, offset, 0, nil)
		ch <- call{res, err}
	}()
	return ch
}

// The daemon closes with a request unread: that one, the last sent, is
// sent again on a new connection; one it had read is not (it may have
// started it).
func TestFakeClosedWithRequestUnread(t *testing.T) {
	checkLeaks(t)
	fk := newFake(t)
	c, err := sendfiled.Dial(fk.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c1 := fk.accept()
	p := newPeer(t)
	f := open(t, smallPath)

	a := sendAsync(c, p, f, 100)
	ra, nfds := fk.read(c1)
	if ra.Op != wire.OpSendfile || ra.Offset != 100 || nfds != 2 {
		t.Fatalf("first request %+v with %d descriptors", ra, nfds)
	}
	b := sendAsync(c, p, f, 200)
	fk.waitQueued(c1)
	c1.Close() // with b unread

	c2 := fk.accept()
	rb, nfds := fk.read(c2)
	if rb.Op != wire.OpSendfile || rb.Offset != 200 || nfds != 2 {
		t.Fatalf("the request sent again: %+v with %d descriptors", rb, nfds)
	}
	reply(t, c2, okReply(rb.ID, 5))
	if r := <-b; r.err != nil || r.res.BytesSent != 5 {
		t.Errorf("the unread request: %+v, %v", r.res, r.err)
	}
	if r := <-a; !errors.Is(r.err, sendfiled.ErrUnavailable) {
		t.Errorf("the request the daemon had read: %v, want ErrUnavailable", r.err)
	}
	p.finish(t)
}

// A SHUTTING_DOWN reply: the request goes again on a new connection, and
// the old one is used for nothing new.
func TestFakeShuttingDown(t *testing.T) {
	checkLeaks(t)
	fk := newFake(t)
	c, err := sendfiled.Dial(fk.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c1 := fk.accept()
	p := newPeer(t)
	f := open(t, smallPath)
	a := sendAsync(c, p, f, 0)
	ra, _ := fk.read(c1)
	reply(t, c1, []byte{0x08, byte(ra.ID), 0x10, 8, 0x18, byte(syscall.ESHUTDOWN)})
	c2 := fk.accept()
	rb, _ := fk.read(c2)
	reply(t, c2, okReply(rb.ID, 7))
	if r := <-a; r.err != nil || r.res.BytesSent != 7 {
		t.Errorf("%+v, %v", r.res, r.err)
	}
	// The next request goes to the new connection too.
	b := sendAsync(c, p, f, 0)
	rc, _ := fk.read(c2)
	reply(t, c2, okReply(rc.ID, 9))
	if r := <-b; r.err != nil || r.res.BytesSent != 9 {
		t.Errorf("%+v, %v", r.res, r.err)
	}
	p.finish(t)
}

func TestFakeRefused(t *testing.T) {
	checkLeaks(t)
	fk := newFake(t)
	c, err := sendfiled.Dial(fk.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c1 := fk.accept()
	// The allow-list refusal: id 0, PERMISSION_DENIED, EACCES; then the end.
	reply(t, c1, []byte{0x08, 0, 0x10, 9, 0x18, byte(syscall.EACCES)})
	c1.Close()
	// Whether the refusal has been read yet or not, and every time after.
	// (A bound on the wait, so that a client that waits for a reply
	// that cannot come fails the test instead of hanging it.)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		_, err = c.Ping(ctx)
		if !errors.Is(err, sendfiled.ErrPermissionDenied) || !errors.Is(err, syscall.EACCES) {
			t.Errorf("Ping: %v, want ErrPermissionDenied and EACCES", err)
		}
		p := newPeer(t)
		_, err = c.SendFile(context.Background(), p.Conn, open(t, smallPath), 0, 0, nil)
		if !errors.Is(err, sendfiled.ErrPermissionDenied) {
			t.Errorf("SendFile: %v, want ErrPermissionDenied", err)
		}
		p.finish(t)
	}
	select {
	case <-fk.conns:
		t.Error("the client connected again after the refusal")
	default:
	}
}

func TestFakeMalformedReply(t *testing.T) {
	checkLeaks(t)
	fk := newFake(t)
	c, err := sendfiled.Dial(fk.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c1 := fk.accept()
	p := newPeer(t)
	a := sendAsync(c, p, open(t, smallPath), 0)
	fk.read(c1)
	reply(t, c1, []byte{0x08, 0x80}) // a truncated varint
	if r := <-a; !errors.Is(r.err, sendfiled.ErrProtocol) || !errors.Is(r.err, syscall.EBADMSG) {
		t.Errorf("%v, want ErrProtocol and EBADMSG", r.err)
	}
	p.finish(t)
}

// Cancelling sends a Cancel for the request, then waits for its reply.
func TestFakeCancel(t *testing.T) {
	checkLeaks(t)
	fk := newFake(t)
	c, err := sendfiled.Dial(fk.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c1 := fk.accept()
	p := newPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan call, 1)
	go func() {
		res, err := c.SendFile(ctx, p.Conn, open(t, smallPath), 0, 0, nil)
		ch <- call{res, err}
	}()
	r, _ := fk.read(c1)
	cancel()
	rc, nfds := fk.read(c1)
	if rc.Op != wire.OpCancel || rc.Target != r.ID || nfds != 0 {
		t.Fatalf("after the context ended: %+v with %d descriptors", rc, nfds)
	}
	// Nothing is returned before the transfer's own reply.
	select {
	case x := <-ch:
		t.Fatalf("returned before the reply: %+v, %v", x.res, x.err)
	default:
	}
	reply(t, c1, []byte{0x08, byte(rc.ID)})
	reply(t, c1, []byte{0x08, byte(r.ID), 0x10, 5, 0x18, byte(syscall.ECANCELED), 0x28, 42, 0x30, 42})
	x := <-ch
	if !errors.Is(x.err, context.Canceled) || !errors.Is(x.err, sendfiled.ErrCancelled) || x.res.BytesSent != 42 {
		t.Errorf("%+v, %v", x.res, x.err)
	}
	p.finish(t)
}
