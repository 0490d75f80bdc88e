package sendfiled_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

func TestRanges(t *testing.T) {
	_, c := setup(t)
	cases := []struct {
		name          string
		path          string
		offset, count int64
		want          []byte
		short         bool
		method        sendfiled.Method
	}{
		{"whole file", smallPath, 0, 0, smallData, false, sendfiled.MethodSendfile},
		{"offset", smallPath, 1000, 0, smallData[1000:], false, sendfiled.MethodSendfile},
		{"offset and count", smallPath, 1000, 5000, smallData[1000:6000], false, sendfiled.MethodSendfile},
		{"count past EOF", smallPath, smallSize - 100, 1000, smallData[smallSize-100:], true, sendfiled.MethodSendfile},
		{"offset at EOF", smallPath, smallSize, 0, nil, false, sendfiled.MethodNone},
		{"offset past EOF", smallPath, smallSize + 10, 0, nil, false, sendfiled.MethodNone},
		{"offset past EOF with count", smallPath, smallSize + 10, 100, nil, true, sendfiled.MethodNone},
		{"empty file", emptyPath, 0, 0, nil, false, sendfiled.MethodNone},
		{"large", largePath, 0, 0, largeData, false, sendfiled.MethodSendfile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			f := open(t, tc.path)
			// A position the transfer must move, or leave alone.
			if _, err := f.Seek(3, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			res, err := c.SendFile(context.Background(), p.Conn, f, tc.offset, tc.count, nil)
			if err != nil {
				t.Fatalf("SendFile: %v", err)
			}
			got := p.finish(t)
			n := int64(len(tc.want))
			if res.BytesSent != n || got.n != n || got.sum != sum(tc.want) {
				t.Errorf("sent %d, received %d bytes (hash ok: %v), want %d", res.BytesSent, got.n,
					got.sum == sum(tc.want), n)
			}
			if res.FinalOffset != tc.offset+n {
				t.Errorf("FinalOffset %d, want %d", res.FinalOffset, tc.offset+n)
			}
			wantPos := tc.offset + n
			if n == 0 {
				wantPos = 3
			}
			if pos := position(t, f); pos != wantPos {
				t.Errorf("position %d, want %d", pos, wantPos)
			}
			if res.ShortSource != tc.short || res.Method != tc.method || res.Status != sendfiled.StatusOK {
				t.Errorf("result %+v, want short %v, method %v", res, tc.short, tc.method)
			}
		})
	}
}

func TestPipeSource(t *testing.T) {
	d, c := setup(t)
	before := d.Stats(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := smallData[:300000]
	go func() {
		w.Write(data)
		w.Close()
	}()
	p := newPeer(t)
	res, err := c.SendFile(context.Background(), p.Conn, r, 0, 0, nil)
	if err != nil {
		t.Fatalf("SendFile: %v", err)
	}
	got := p.finish(t)
	if res.BytesSent != int64(len(data)) || got.n != int64(len(data)) || got.sum != sum(data) {
		t.Errorf("sent %d, received %d, want %d", res.BytesSent, got.n, len(data))
	}
	if res.Method != sendfiled.MethodSplice {
		t.Errorf("method %v, want splice", res.Method)
	}
	if after := d.Stats(t); after.Methods["splice"] != before.Methods["splice"]+1 {
		t.Errorf("the daemon counted %d splices, %d before", after.Methods["splice"], before.Methods["splice"])
	}
}

func TestProcSource(t *testing.T) {
	_, c := setup(t)
	const count = 20
	// The first bytes of /proc/self/status do not change while it is read.
	want := make([]byte, count)
	f0 := open(t, "/proc/self/status")
	if _, err := io.ReadFull(f0, want); err != nil {
		t.Fatal(err)
	}

	p := newPeer(t)
	f := open(t, "/proc/self/status")
	res, err := c.SendFile(context.Background(), p.Conn, f, 0, count, &sendfiled.Options{NoFallback: true})
	if !errors.Is(err, sendfiled.ErrNotAvailable) || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("without fallback: %v, want ErrNotAvailable and EINVAL", err)
	}
	var se *sendfiled.Error
	if !errors.As(err, &se) || se.Result.Status != sendfiled.StatusNotAvailable {
		t.Errorf("error %#v, want an *Error with StatusNotAvailable", err)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.EINVAL {
		t.Errorf("errors.As found errno %v, want EINVAL", errno)
	}
	if res.BytesSent != 0 || position(t, f) != 0 {
		t.Errorf("sent %d, position %d: want nothing sent, position untouched", res.BytesSent, position(t, f))
	}

	res, err = c.SendFile(context.Background(), p.Conn, f, 0, count, nil)
	if err != nil {
		t.Fatalf("with fallback: %v", err)
	}
	if res.BytesSent != count || res.Method != sendfiled.MethodReadWrite || position(t, f) != count {
		t.Errorf("result %+v, position %d; want %d bytes by read_write", res, position(t, f), count)
	}
	if got := p.finish(t); got.n != count || got.sum != sum(want) {
		t.Errorf("received %d bytes, want %q", got.n, want)
	}
}

func TestAppendDestination(t *testing.T) {
	_, c := setup(t)
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, []byte("head:"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	src := open(t, smallPath)

	_, err = c.SendFile(context.Background(), dst, src, 0, 5000, &sendfiled.Options{NoFallback: true})
	if !errors.Is(err, sendfiled.ErrNotAvailable) {
		t.Fatalf("without fallback: %v, want ErrNotAvailable", err)
	}
	res, err := c.SendFile(context.Background(), dst, src, 100, 5000, nil)
	if err != nil {
		t.Fatalf("with fallback: %v", err)
	}
	if res.BytesSent != 5000 || res.Method != sendfiled.MethodReadWrite || position(t, src) != 5100 {
		t.Errorf("result %+v, position %d", res, position(t, src))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("head:"), smallData[100:5100]...); !bytes.Equal(got, want) {
		t.Errorf("the file holds %d bytes, want %d", len(got), len(want))
	}
}

func TestPeerReset(t *testing.T) {
	_, c := setup(t)
	p := newIdlePeer(t)
	p.server.SetReadBuffer(64 * 1024)
	go func() {
		// Read some, then reset the connection (SO_LINGER 0).
		buf := make([]byte, 65536)
		for got := 0; got < 512*1024; {
			n, err := p.server.Read(buf)
			if err != nil {
				break
			}
			got += n
		}
		p.server.SetLinger(0)
		p.server.Close()
	}()
	f := open(t, largePath)
	const offset = 10
	res, err := c.SendFile(context.Background(), p.Conn, f, offset, 0, nil)
	if !errors.Is(err, sendfiled.ErrPeerClosed) {
		t.Fatalf("SendFile: %v, want ErrPeerClosed", err)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("error %v does not match EPIPE or ECONNRESET", err)
	}
	if res.BytesSent < 512*1024 || res.BytesSent >= largeSize-offset {
		t.Errorf("BytesSent %d: want at least what the peer read, and not all", res.BytesSent)
	}
	if res.FinalOffset != offset+res.BytesSent || position(t, f) != res.FinalOffset {
		t.Errorf("FinalOffset %d, position %d, want %d", res.FinalOffset, position(t, f), offset+res.BytesSent)
	}
}

// cancelMidTransfer starts a transfer of the large file to a peer that
// reads 256 KiB and stops, ends ctx (by cancel) once it has, and checks
// that the call reports exactly what the peer then receives.
func cancelMidTransfer(t *testing.T, c *sendfiled.Client, ctx context.Context, cancel func()) (sendfiled.Result, error) {
	p := newIdlePeer(t)
	p.server.SetReadBuffer(64 * 1024)
	prefix := make([]byte, 256*1024)
	go func() {
		io.ReadFull(p.server, prefix)
		if cancel != nil {
			cancel()
		}
		// Resume reading only once the call has returned.
		<-ctx.Done()
	}()
	f := open(t, largePath)
	const offset = 4096
	res, err := c.SendFile(ctx, p.Conn, f, offset, 0, nil)
	p.startReading(prefix)
	got := p.finish(t)
	if res.BytesSent < int64(len(prefix)) || res.BytesSent >= largeSize-offset {
		t.Errorf("BytesSent %d, want at least %d and not all", res.BytesSent, len(prefix))
	}
	if got.n != res.BytesSent || got.sum != sum(largeData[offset:offset+got.n]) {
		t.Errorf("the peer received %d bytes, the call says %d", got.n, res.BytesSent)
	}
	if res.FinalOffset != offset+res.BytesSent || position(t, f) != res.FinalOffset {
		t.Errorf("FinalOffset %d, position %d, want %d", res.FinalOffset, position(t, f), offset+res.BytesSent)
	}
	return res, err
}

func TestCancelByContext(t *testing.T) {
	_, c := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := cancelMidTransfer(t, c, ctx, cancel)
	if !errors.Is(err, sendfiled.ErrCancelled) || !errors.Is(err, context.Canceled) ||
		!errors.Is(err, syscall.ECANCELED) {
		t.Errorf("SendFile: %v, want ErrCancelled, context.Canceled and ECANCELED", err)
	}
	if res.Status != sendfiled.StatusCancelled {
		t.Errorf("status %v", res.Status)
	}
	// The client is still good for more.
	p := newPeer(t)
	if _, err := c.SendFile(context.Background(), p.Conn, open(t, smallPath), 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.finish(t); got.sum != sum(smallData) {
		t.Error("wrong bytes after a cancel")
	}
}

// expiring is a context whose deadline passes when the test says so.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func (e *expiring) Done() <-chan struct{} { return e.done }
func (e *expiring) expire()               { e.once.Do(func() { close(e.done) }) }
func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestDeadline(t *testing.T) {
	_, c := setup(t)
	ctx := &expiring{Context: context.Background(), done: make(chan struct{})}
	_, err := cancelMidTransfer(t, c, ctx, ctx.expire)
	if !errors.Is(err, sendfiled.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendFile: %v, want ErrCancelled and context.DeadlineExceeded", err)
	}
}

func TestContextDoneBeforeStart(t *testing.T) {
	d, c := setup(t)
	before := d.Stats(t).Requests
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := newPeer(t)
	f := open(t, smallPath)
	if _, err := c.SendFile(ctx, p.Conn, f, 0, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SendFile: %v, want context.Canceled", err)
	}
	if got := p.finish(t); got.n != 0 || position(t, f) != 0 {
		t.Errorf("received %d bytes", got.n)
	}
	if after := d.Stats(t).Requests; after != before {
		t.Errorf("the daemon received %d requests", after-before)
	}
}

func TestBadArguments(t *testing.T) {
	_, c := setup(t)
	p := newPeer(t)
	f := open(t, smallPath)
	ctx := context.Background()
	if _, err := c.SendFile(ctx, p.Conn, f, -1, 0, nil); !errors.Is(err, sendfiled.ErrInvalidArgument) ||
		!errors.Is(err, syscall.EINVAL) {
		t.Errorf("negative offset: %v", err)
	}
	if _, err := c.SendFile(ctx, p.Conn, f, 0, -1, nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("negative count: %v", err)
	}
	if _, err := c.SendFile(ctx, nil, f, 0, 0, nil); !errors.Is(err, syscall.EBADF) {
		t.Errorf("nil destination: %v", err)
	}
	if _, err := c.SendFile(ctx, p.Conn, sendfiled.FD(-1), 0, 0, nil); !errors.Is(err, syscall.EBADF) {
		t.Errorf("FD(-1): %v", err)
	}
	closed := open(t, smallPath)
	closed.Close()
	if _, err := c.SendFile(ctx, p.Conn, closed, 0, 0, nil); !errors.Is(err, sendfiled.ErrInvalidArgument) {
		t.Errorf("closed file: %v", err)
	}
	// The daemon's own checks: a pipe source with an offset.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	res, err := c.SendFile(ctx, p.Conn, r, 10, 0, nil)
	if !errors.Is(err, sendfiled.ErrInvalidArgument) || !errors.Is(err, syscall.ESPIPE) ||
		res.Status != sendfiled.StatusInvalidArgument {
		t.Errorf("pipe with an offset: %v, %+v", err, res)
	}
	// A datagram socket as destination.
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := c.SendFile(ctx, u, f, 0, 0, nil); !errors.Is(err, sendfiled.ErrInvalidArgument) {
		t.Errorf("UDP destination: %v", err)
	}
	if got := p.finish(t); got.n != 0 || position(t, f) != 0 {
		t.Errorf("received %d bytes, position %d", got.n, position(t, f))
	}
}

func TestRawDescriptors(t *testing.T) {
	_, c := setup(t)
	p := newPeer(t)
	f := open(t, smallPath)
	rc, err := p.Conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dfd int
	rc.Control(func(fd uintptr) { dfd = int(fd) })
	res, err := c.SendFile(context.Background(), sendfiled.FD(dfd), sendfiled.FD(int(f.Fd())), 7, 100, nil)
	if err != nil || res.BytesSent != 100 {
		t.Fatalf("SendFile: %+v, %v", res, err)
	}
	if got := p.finish(t); got.sum != sum(smallData[7:107]) {
		t.Error("wrong bytes")
	}
}

func TestDestinationStaysNonBlocking(t *testing.T) {
	_, c := setup(t)
	p := newPeer(t)
	f := open(t, smallPath)
	if _, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	rc, _ := p.Conn.SyscallConn()
	var flags uintptr
	rc.Control(func(fd uintptr) {
		flags, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	})
	if flags&syscall.O_NONBLOCK == 0 {
		t.Error("the destination socket was made blocking")
	}
	// Go's own I/O on the socket still works.
	if _, err := p.Conn.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if got := p.finish(t); got.sum != sum(append(append([]byte{}, smallData...), "tail"...)) {
		t.Error("wrong bytes")
	}
}
