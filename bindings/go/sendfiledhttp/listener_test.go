package sendfiledhttp_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiledhttp"
)

const size = 8<<20 + 77

var modtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type server struct {
	url    string
	data   []byte
	ln     *sendfiledhttp.Listener
	dials  atomic.Int64
	client *http.Client
}

// start serves one file with http.ServeContent over a listener of this
// package, and returns an HTTP client that counts its connections.
func start(t *testing.T, c *sendfiled.Client, minSize ...int64) *server {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	path := filepath.Join(dir, "file.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: "http://" + l.Addr().String() + "/file.bin", data: data}
	s.ln = sendfiledhttp.NewListener(l, c)
	if len(minSize) > 0 {
		s.ln.MinSize = minSize[0]
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "file.bin", modtime, f)
	})}
	done := make(chan struct{})
	go func() {
		srv.Serve(s.ln)
		close(done)
	}()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		s.dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	s.client = &http.Client{Transport: tr, Timeout: 120 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-done
	})
	return s
}

type response struct {
	status int
	header http.Header
	n      int64
	sum    [32]byte
}

func (s *server) get(t *testing.T, method string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %v: %v", method, hdr, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("%s %v: reading the body: %v", method, hdr, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, n: n}
	copy(r.sum[:], h.Sum(nil))
	return r
}

func checkLeaks(t *testing.T) {
	fds := testdaemon.FDs()
	g := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			leaked := testdaemon.Leaked(fds, testdaemon.FDs())
			n := runtime.NumGoroutine()
			if len(leaked) == 0 && n <= g {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("descriptors leaked: %s; goroutines %d before, %d after",
					strings.Join(leaked, ", "), g, n)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestServeContent(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	base := d.FDCount()
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := start(t, c)
	before := d.Stats(t)
	var bodies, responses int64

	full := s.get(t, "GET")
	if full.status != 200 || full.n != size || full.sum != sha256.Sum256(s.data) ||
		full.header.Get("Content-Length") != fmt.Sprint(size) {
		t.Errorf("GET: %d, %d bytes, Content-Length %s", full.status, full.n, full.header.Get("Content-Length"))
	}
	bodies += full.n
	responses++

	part := s.get(t, "GET", "Range", "bytes=1000-2000999")
	if part.status != 206 || part.n != 2000000 || part.sum != sha256.Sum256(s.data[1000:2001000]) ||
		part.header.Get("Content-Range") != fmt.Sprintf("bytes 1000-2000999/%d", size) {
		t.Errorf("Range: %d, %d bytes, %q", part.status, part.n, part.header.Get("Content-Range"))
	}
	bodies += part.n
	responses++

	tail := s.get(t, "GET", "Range", "bytes=-5000")
	if tail.status != 206 || tail.n != 5000 || tail.sum != sha256.Sum256(s.data[size-5000:]) {
		t.Errorf("suffix Range: %d, %d bytes", tail.status, tail.n)
	}
	bodies += tail.n
	responses++

	head := s.get(t, "HEAD")
	if head.status != 200 || head.n != 0 || head.header.Get("Content-Length") != fmt.Sprint(size) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %s", head.status, head.n, head.header.Get("Content-Length"))
	}
	for _, cond := range [][]string{
		{"If-Modified-Since", modtime.Format(http.TimeFormat)},
		{"If-None-Match", `"v1"`},
	} {
		if r := s.get(t, "GET", cond...); r.status != 304 || r.n != 0 {
			t.Errorf("%s: %d, %d bytes", cond[0], r.status, r.n)
		}
	}
	if r := s.get(t, "GET", "If-Match", `"v0"`); r.status != 412 {
		t.Errorf("If-Match: %d", r.status)
	}
	if r := s.get(t, "GET", "Range", fmt.Sprintf("bytes=%d-", size+10)); r.status != 416 ||
		r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
		t.Errorf("unsatisfiable Range: %d, %q", r.status, r.header.Get("Content-Range"))
	}
	// Several ranges: multipart, sent by net/http itself.
	if r := s.get(t, "GET", "Range", "bytes=0-99,1000-1099"); r.status != 206 ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("multi-range: %d, %q", r.status, r.header.Get("Content-Type"))
	}
	// A conditional range: the ETag matches, so the range is served.
	if r := s.get(t, "GET", "Range", "bytes=10-19", "If-Range", `"v1"`); r.status != 206 || r.n != 10 {
		t.Errorf("If-Range: %d, %d bytes", r.status, r.n)
	}

	// Every request went over one connection.
	if n := s.dials.Load(); n != 1 {
		t.Errorf("%d connections for the requests, want 1 (keep-alive)", n)
	}
	// The bodies went through the daemon, all but the first 512 bytes of
	// each, which net/http writes itself.
	after := d.Stats(t)
	sent := int64(after.BytesSent - before.BytesSent)
	if sent > bodies || sent < bodies-512*responses || after.Methods["sendfile"]-before.Methods["sendfile"] != uint64(responses) {
		t.Errorf("the daemon sent %d bytes in %d transfers; the bodies held %d in %d responses",
			sent, after.Methods["sendfile"]-before.Methods["sendfile"], bodies, responses)
	}
	if got := s.ln.Stats.OffloadedBytes.Load(); got != sent || s.ln.Stats.Fallbacks.Load() != 0 {
		t.Errorf("the listener counted %d bytes offloaded and %d fallbacks", got, s.ln.Stats.Fallbacks.Load())
	}
	s.client.CloseIdleConnections()
	c.Close()
	if n := d.WaitFDCount(base, 10*time.Second); n != base {
		t.Errorf("the daemon holds %d descriptors, %d before", n, base)
	}
}

// Bodies under MinSize are sent in-process, the others by the daemon.
func TestMinSize(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := start(t, c, 100000)
	before := d.Stats(t)
	small := s.get(t, "GET", "Range", "bytes=0-99999")
	big := s.get(t, "GET", "Range", "bytes=0-100999")
	if small.status != 206 || small.sum != sha256.Sum256(s.data[:100000]) ||
		big.status != 206 || big.sum != sha256.Sum256(s.data[:101000]) {
		t.Fatalf("%d, %d bytes; %d, %d bytes", small.status, small.n, big.status, big.n)
	}
	after := d.Stats(t)
	if s.ln.Stats.Small.Load() != 1 || s.ln.Stats.Offloaded.Load() != 1 ||
		after.BytesSent-before.BytesSent != 101000-512 {
		t.Errorf("%d small, %d offloaded, the daemon sent %d bytes", s.ln.Stats.Small.Load(),
			s.ln.Stats.Offloaded.Load(), after.BytesSent-before.BytesSent)
	}
}

// With the daemon gone, responses are still served, in-process.
func TestNoDaemon(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := start(t, c)
	d.Kill()
	for i := 0; i < 2; i++ {
		r := s.get(t, "GET", "Range", "bytes=100-")
		if r.status != 206 || r.n != size-100 || r.sum != sha256.Sum256(s.data[100:]) {
			t.Errorf("without a daemon: %d, %d bytes", r.status, r.n)
		}
	}
	if s.ln.Stats.Fallbacks.Load() != 2 || s.ln.Stats.Offloaded.Load() != 0 {
		t.Errorf("%d fallbacks, %d offloaded", s.ln.Stats.Fallbacks.Load(), s.ln.Stats.Offloaded.Load())
	}
}

// A client that goes away mid-body ends the transfer and the connection.
func TestClientGoesAway(t *testing.T) {
	checkLeaks(t)
	d := testdaemon.Start(t)
	c, err := sendfiled.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := start(t, c)
	before := d.Stats(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/file.bin"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(64 * 1024)
	fmt.Fprintf(conn, "GET /file.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 256*1024)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		after := d.Stats(t)
		if after.Statuses["peer_closed"] == before.Statuses["peer_closed"]+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not report the peer closing: %+v", after.Statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The server goes on serving.
	if r := s.get(t, "GET", "Range", "bytes=0-999999"); r.status != 206 || r.sum != sha256.Sum256(s.data[:1000000]) {
		t.Errorf("after a client went away: %d, %d bytes", r.status, r.n)
	}
}
