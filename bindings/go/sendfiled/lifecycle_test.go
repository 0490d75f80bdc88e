package sendfiled_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

func TestDialNoDaemon(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	_, err := sendfiled.Dial(filepath.Join(dir, "none.sock"))
	if !errors.Is(err, sendfiled.ErrUnavailable) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Dial: %v, want ErrUnavailable and ENOENT", err)
	}
	// A socket file nobody listens on.
	d := testdaemon.Start(t)
	d.Kill()
	_, err = sendfiled.Dial(d.Path)
	if !errors.Is(err, sendfiled.ErrUnavailable) ||
		!(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)) {
		t.Errorf("Dial: %v, want ErrUnavailable and ECONNREFUSED", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sendfiled.DialContext(ctx, d.Path); err == nil {
		t.Error("DialContext with a done context succeeded")
	}
}

func TestDefaultSocketPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SENDFILED_SOCKET", "/some/where.sock")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if p := sendfiled.DefaultSocketPath(); p != "/some/where.sock" {
		t.Errorf("with $SENDFILED_SOCKET: %q", p)
	}
	t.Setenv("SENDFILED_SOCKET", "")
	if p := sendfiled.DefaultSocketPath(); p != sendfiled.SystemSocketPath {
		t.Errorf("without a per-user socket: %q", p)
	}
	user := filepath.Join(dir, "sendfiled", "sendfiled.sock")
	os.MkdirAll(filepath.Dir(user), 0o755)
	os.WriteFile(user, nil, 0o600)
	if p := sendfiled.DefaultSocketPath(); p != user {
		t.Errorf("with a per-user socket: %q, want %q", p, user)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if p := sendfiled.DefaultSocketPath(); p != sendfiled.SystemSocketPath {
		t.Errorf("without $XDG_RUNTIME_DIR: %q", p)
	}
}

func TestDialDefault(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	t.Setenv("SENDFILED_SOCKET", d.Path)
	c, err := sendfiled.Dial("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Path() != d.Path {
		t.Errorf("Path() = %q, want %q", c.Path(), d.Path)
	}
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClose(t *testing.T) {
	d, c := setup(t)
	// A transfer in flight when the client closes: it ends with ErrClosed,
	// and the daemon settles the position.
	p := newIdlePeer(t)
	f := open(t, largePath)
	done := make(chan error, 1)
	go func() {
		_, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil)
		done <- err
	}()
	buf := make([]byte, 1)
	if _, err := p.server.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, sendfiled.ErrClosed) {
		t.Errorf("the transfer in flight: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil); !errors.Is(err, sendfiled.ErrClosed) {
		t.Errorf("SendFile after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Ping(context.Background()); !errors.Is(err, sendfiled.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	// The daemon cancels the transfer, sets the position, and keeps serving.
	waitFor(t, func() bool { return position(t, f) > 0 })
	c2, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseConcurrent(t *testing.T) {
	_, c := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Ping(context.Background())
			c.Close()
		}()
	}
	wg.Wait()
}

// The daemon went away between two calls: the client connects again.
func TestReconnectAfterDaemonRestart(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Kill()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	p := newPeer(t)
	res, err := c.SendFile(context.Background(), p.Conn, open(t, smallPath), 0, 0, nil)
	if err != nil || res.BytesSent != smallSize {
		t.Fatalf("SendFile after a restart: %+v, %v", res, err)
	}
	if got := p.finish(t); got.sum != sum(smallData) {
		t.Error("wrong bytes")
	}
	// And with no daemon at all, the call fails (after its retries).
	d.Kill()
	p2 := newPeer(t)
	if _, err := c.SendFile(context.Background(), p2.Conn, open(t, smallPath), 0, 0, nil); !errors.Is(err, sendfiled.ErrUnavailable) {
		t.Errorf("SendFile without a daemon: %v, want ErrUnavailable", err)
	}
}

func TestErrorStrings(t *testing.T) {
	e := &sendfiled.Error{Op: "sendfile", Kind: sendfiled.ErrPeerClosed,
		Result: sendfiled.Result{Status: sendfiled.StatusPeerClosed, Errno: syscall.EPIPE, BytesSent: 10,
			Message: "sendfile: Broken pipe"}}
	if got, want := e.Error(), "sendfiled: sendfile: peer closed: sendfile: Broken pipe (10 bytes sent)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if sendfiled.StatusShuttingDown.String() != "shutting down" || sendfiled.MethodSplice.String() != "splice" ||
		sendfiled.Status(42).String() != "status 42" {
		t.Error("String methods")
	}
}

// Past the daemon's limit of requests in flight on a connection, a request
// fails with ErrLimit and EBUSY, sending nothing.
func TestLimit(t *testing.T) {
	_, c := setup(t, "--max-in-flight", "2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		p := newIdlePeer(t)
		f := open(t, largePath)
		go func() {
			_, err := c.SendFile(ctx, p.Conn, f, 0, 0, nil)
			done <- err
		}()
		// In flight once the peer sees its first byte.
		if _, err := p.server.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	p := newPeer(t)
	f := open(t, smallPath)
	res, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil)
	if !errors.Is(err, sendfiled.ErrLimit) || !errors.Is(err, syscall.EBUSY) || res.Status != sendfiled.StatusLimit {
		t.Errorf("a third request: %+v, %v; want ErrLimit and EBUSY", res, err)
	}
	if res.BytesSent != 0 || position(t, f) != 0 {
		t.Errorf("sent %d", res.BytesSent)
	}
	cancel()
	for i := 0; i < 2; i++ {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("a transfer in flight: %v, want context.Canceled", err)
		}
	}
	if got := p.finish(t); got.n != 0 {
		t.Errorf("the third peer received %d bytes", got.n)
	}
}
