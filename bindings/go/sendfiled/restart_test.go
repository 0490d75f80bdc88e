package sendfiled_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

func TestConcurrent(t *testing.T) {
	d, c := setup(t)
	const n = 200
	before := d.Stats(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var total int64
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := newPeer(t)
			f, err := os.Open(largePath)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			// Ranges of different sizes and places, some to end of file.
			offset := int64(i) * 4099 % (largeSize / 2)
			count := int64(i%7) * 77777
			want := largeData[offset:]
			if count > 0 {
				want = want[:count]
			} else if i%2 == 0 {
				count = MiB
				want = want[:count]
			}
			res, err := c.SendFile(context.Background(), p.Conn, f, offset, count, nil)
			if err != nil {
				errs <- fmt.Errorf("transfer %d: %w", i, err)
				return
			}
			got := p.finish(t)
			if res.BytesSent != int64(len(want)) || got.n != res.BytesSent || got.sum != sum(want) {
				errs <- fmt.Errorf("transfer %d: sent %d, received %d, want %d", i, res.BytesSent, got.n, len(want))
				return
			}
			if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != offset+res.BytesSent {
				errs <- fmt.Errorf("transfer %d: position %d, want %d", i, pos, offset+res.BytesSent)
				return
			}
			mu.Lock()
			total += res.BytesSent
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after := d.Stats(t)
	if after.Statuses["ok"]-before.Statuses["ok"] != n || after.BytesSent-before.BytesSent != uint64(total) {
		t.Errorf("the daemon counted %d transfers and %d bytes, want %d and %d",
			after.Statuses["ok"]-before.Statuses["ok"], after.BytesSent-before.BytesSent, n, total)
	}
}

// A daemon that stops while a transfer is in flight finishes it, and
// answers later requests SHUTTING_DOWN; the client sends those again on a
// new connection, which the next daemon on the same socket serves.
func TestRestartShuttingDown(t *testing.T) {
	checkLeaks(t)
	d1 := testdaemon.Start(t, "--drain-timeout", "60000")
	c, err := sendfiled.Dial(d1.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A transfer that holds the first daemon: its peer reads nothing yet.
	slow := newIdlePeer(t)
	slowDone := make(chan error, 1)
	var slowRes sendfiled.Result
	go func() {
		var err error
		slowRes, err = c.SendFile(context.Background(), slow.Conn, open(t, largePath), 0, 0, nil)
		slowDone <- err
	}()
	// Wait until it is in flight, then stop the daemon.
	buf := make([]byte, 1)
	if _, err := io.ReadFull(slow.server, buf); err != nil {
		t.Fatal(err)
	}
	d1.Signal(syscall.SIGTERM)
	// It stops listening at once; then the next daemon may take the socket.
	waitFor(t, func() bool {
		conn, err := net.Dial("unixpacket", d1.Path)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	// The next daemon takes over the socket.
	d2 := testdaemon.StartAt(t, d1.Path)

	p := newPeer(t)
	f := open(t, smallPath)
	res, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil)
	if err != nil {
		t.Fatalf("SendFile during the restart: %v", err)
	}
	if got := p.finish(t); res.BytesSent != smallSize || got.sum != sum(smallData) {
		t.Errorf("sent %d, received %d bytes", res.BytesSent, got.n)
	}
	if s := d2.Stats(t); s.Statuses["ok"] != 1 {
		t.Errorf("the new daemon served %d transfers, want 1", s.Statuses["ok"])
	}

	// The first daemon finishes what it had started.
	slow.startReading(buf)
	if err := <-slowDone; err != nil {
		t.Fatalf("the transfer in flight during the restart: %v", err)
	}
	if got := slow.finish(t); got.n != largeSize || got.sum != sum(largeData) || slowRes.BytesSent != largeSize {
		t.Errorf("the transfer in flight sent %d, the peer received %d", slowRes.BytesSent, got.n)
	}
	if err := d1.Wait(); err != nil {
		t.Errorf("the first daemon: %v", err)
	}
}

// Many goroutines keep sending while the daemon is restarted under them:
// every transfer succeeds, or fails cleanly (nothing duplicated, an error
// saying the daemon went away), and the client goes on with the new daemon.
func TestRestartMidRun(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const workers = 8
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, failed int
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := newPeer(t)
				f, err := os.Open(smallPath)
				if err != nil {
					t.Error(err)
					return
				}
				offset := int64(w*1000 + i)
				res, err := c.SendFile(context.Background(), p.Conn, f, offset, 0, nil)
				got := p.finish(t)
				f.Close()
				want := smallData[offset:]
				mu.Lock()
				switch {
				case err == nil && got.n == int64(len(want)) && got.sum == sum(want) && res.BytesSent == got.n:
					ok++
				case err != nil && errors.Is(err, sendfiled.ErrUnavailable) && got.n <= int64(len(want)) &&
					got.sum == sum(want[:got.n]):
					failed++
				default:
					t.Errorf("worker %d: %+v, %v; the peer received %d bytes", w, res, err, got.n)
				}
				mu.Unlock()
				p.Conn.Close()
				p.server.Close()
			}
		}(w)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return ok >= 50 })
	if err := d.Stop(syscall.SIGTERM); err != nil {
		t.Errorf("the daemon's exit: %v", err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	mark := ok
	mu.Unlock()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return ok >= mark+50 })
	close(stop)
	wg.Wait()
	t.Logf("%d transfers succeeded, %d failed with ErrUnavailable", ok, failed)
	if s := d.Stats(t); s.Statuses["ok"] == 0 {
		t.Error("the new daemon served nothing")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
