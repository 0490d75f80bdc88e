package sendfiled_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

const (
	MiB       = 1 << 20
	smallSize = MiB + 123
	largeSize = 64 * MiB
)

var (
	filesDir  string
	smallPath string
	largePath string
	emptyPath string
	smallData []byte
	largeData []byte
)

func TestMain(m *testing.M) {
	var err error
	filesDir, err = os.MkdirTemp("", "sfdgo-files")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewSource(20261203))
	largeData = make([]byte, largeSize)
	rng.Read(largeData)
	// Number each 4 KiB block, so that no two ranges are alike.
	for i := 0; i+8 <= len(largeData); i += 4096 {
		binary.LittleEndian.PutUint64(largeData[i:], uint64(i))
	}
	smallData = largeData[:smallSize]
	smallPath = writeFile(filepath.Join(filesDir, "small.bin"), smallData)
	largePath = writeFile(filepath.Join(filesDir, "large.bin"), largeData)
	emptyPath = writeFile(filepath.Join(filesDir, "empty.bin"), nil)
	code := m.Run()
	os.RemoveAll(filesDir)
	os.Exit(code)
}

func writeFile(p string, b []byte) string {
	if err := os.WriteFile(p, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return p
}

// checkLeaks makes the test fail if it ends with more goroutines or other
// descriptors than it started with. Call it first, so that its check runs
// after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	fds := testdaemon.FDs()
	goroutines := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		var leaked []string
		var g int
		for {
			leaked = testdaemon.Leaked(fds, testdaemon.FDs())
			g = runtime.NumGoroutine()
			if (len(leaked) == 0 && g <= goroutines) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			t.Errorf("descriptors leaked: %s", strings.Join(leaked, ", "))
		}
		if g > goroutines {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before, %d after:\n%s", goroutines, g, buf)
		}
	})
}

// setup starts a daemon and a client for one test, and checks at the end
// that the daemon holds as many descriptors as before the test's transfers.
func setup(t *testing.T, args ...string) (*testdaemon.Daemon, *sendfiled.Client) {
	t.Helper()
	checkLeaks(t)
	d := testdaemon.Start(t, args...)
	base := d.FDCount()
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := d.WaitFDCount(base, 10*time.Second); n != base {
			t.Errorf("the daemon holds %d descriptors, %d before the test", n, base)
		}
		if !d.Alive() {
			t.Errorf("the daemon died:\n%s", d.Log())
		}
	})
	return d, c
}

// peer is a TCP connection on the loopback: Conn is the sending side, and a
// goroutine reads everything the other side receives, hashing it.
type peer struct {
	Conn   *net.TCPConn
	server *net.TCPConn
	done   chan received
}

type received struct {
	n   int64
	sum [32]byte
	err error
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	p := newIdlePeer(t)
	p.startReading(nil)
	return p
}

// newIdlePeer returns a peer whose far end reads nothing until told to.
func newIdlePeer(t testing.TB) *peer {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	p := &peer{Conn: c, server: s, done: make(chan received, 1)}
	t.Cleanup(func() {
		p.Conn.Close()
		p.server.Close()
	})
	return p
}

// startReading reads until end of file; prefix, when not nil, is hashed
// first (bytes the test read itself).
func (p *peer) startReading(prefix []byte) {
	go func() {
		h := sha256.New()
		h.Write(prefix)
		n, err := io.Copy(h, p.server)
		var r received
		r.n = n + int64(len(prefix))
		r.err = err
		copy(r.sum[:], h.Sum(nil))
		p.done <- r
	}()
}

// finish closes the sending side and returns what the far end received.
func (p *peer) finish(t testing.TB) received {
	t.Helper()
	p.Conn.CloseWrite()
	select {
	case r := <-p.done:
		return r
	case <-time.After(60 * time.Second):
		t.Error("the receiver did not see the end of the stream")
		return received{n: -1}
	}
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// position returns f's file position.
func position(t testing.TB, f *os.File) int64 {
	t.Helper()
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
