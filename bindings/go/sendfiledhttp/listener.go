// Package sendfiledhttp has net/http send files through sendfiled.
//
// It works one level below the handlers: NewListener wraps the server's
// listener, and the connections it accepts hand every file body that
// net/http writes to them to the daemon instead of sending it in-process.
// Everything net/http already does for files is kept as it is, because it
// still does it: http.ServeContent, http.ServeFile and http.FileServer
// (over http.Dir) answer Range requests (206, 416), HEAD, and conditional
// requests (304, 412) themselves, set the headers, keep connections alive,
// and then copy the body with io.Copy, which reaches the connection's
// ReadFrom method: that is where the daemon takes over.
//
//	client, err := sendfiled.Dial("")
//	...
//	ln, err := net.Listen("tcp", ":8080")
//	...
//	srv := &http.Server{Handler: http.FileServer(http.Dir("/srv/www"))}
//	srv.Serve(sendfiledhttp.NewListener(ln, client))
//
// A body goes to the daemon when it is read from an *os.File that can seek
// (a regular file), directly or through an *io.LimitedReader, which is how
// net/http copies whole files and single ranges. net/http writes the first
// 512 bytes of a response itself (it may need them to sniff the content
// type), so only the rest goes through the daemon; multi-range responses
// (multipart/byteranges) and bodies from anything else are copied as usual.
//
// When the daemon cannot be reached, or declines a transfer without sending
// anything (a limit, a shutdown, no method for this file), the body is sent
// in-process as net/http would have, so no response is lost to a missing
// daemon. A write deadline on the connection (http.Server.WriteTimeout)
// bounds the daemon's transfer too: at the deadline it is cancelled.
//
// TLS: wrap the plain listener, under tls.NewListener if there is one.
// A crypto/tls connection encrypts in this process and writes through the
// wrapped connection's Write, never its ReadFrom, so no plaintext can reach
// the daemon.
package sendfiledhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// Stats counts what the connections of a Listener sent.
type Stats struct {
	Offloaded      atomic.Int64 // bodies (or parts) sent by the daemon
	OffloadedBytes atomic.Int64 // their bytes
	Fallbacks      atomic.Int64 // bodies sent in-process because the daemon declined or was away
	Small          atomic.Int64 // bodies sent in-process because they were under MinSize
}

// Listener is a net.Listener whose connections send file bodies through
// the daemon.
type Listener struct {
	net.Listener
	client *sendfiled.Client
	// MinSize is the smallest body (what is left of it after the first
	// 512 bytes) handed to the daemon; smaller ones are sent in-process,
	// with Go's own sendfile(2), which is quicker for them than a round
	// trip to the daemon (see bench/go/RESULTS.md). It applies to copies
	// of a known length, which is how net/http copies files. 0, the
	// default, sends every file body through the daemon. Set it before
	// Serve.
	MinSize int64
	// Stats counts the bodies sent by the daemon and in-process.
	Stats Stats
}

// NewListener wraps l: connections it accepts that are *net.TCPConn or
// *net.UnixConn send file bodies through client. Others are returned as
// they are. The client is borrowed: close it after the server has stopped.
func NewListener(l net.Listener, client *sendfiled.Client) *Listener {
	return &Listener{Listener: l, client: client}
}

// Accept waits for and returns the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrap(nc, l.client, &l.Stats, l.MinSize), nil
}

// NewConn wraps one connection the way a Listener does: nc must be a
// *net.TCPConn or *net.UnixConn, else it is returned as it is.
func NewConn(nc net.Conn, client *sendfiled.Client) net.Conn {
	return wrap(nc, client, nil, 0)
}

// stream is what the daemon can send to, and what Go already knows how to
// send files to.
type stream interface {
	net.Conn
	syscall.Conn
	io.ReaderFrom
	CloseWrite() error
}

func wrap(nc net.Conn, client *sendfiled.Client, stats *Stats, minSize int64) net.Conn {
	s, ok := nc.(stream)
	if !ok {
		return nc
	}
	if stats == nil {
		stats = new(Stats)
	}
	return &conn{stream: s, client: client, stats: stats, minSize: minSize}
}

// conn is an accepted connection whose ReadFrom goes through the daemon.
type conn struct {
	stream
	client  *sendfiled.Client
	stats   *Stats
	minSize int64

	mu            sync.Mutex
	writeDeadline time.Time
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.stream.SetDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.stream.SetWriteDeadline(t)
}

// fileRange returns the file r reads from and how much of it (-1: to end
// of file), when the daemon can send it.
func fileRange(r io.Reader) (f *os.File, lr *io.LimitedReader, n int64) {
	switch v := r.(type) {
	case *os.File:
		return v, nil, -1
	case *io.LimitedReader:
		if f, ok := v.R.(*os.File); ok {
			return f, v, v.N
		}
	}
	return nil, nil, 0
}

// ReadFrom sends what r holds. A file is sent by the daemon, from its
// current position; anything else, in-process.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	f, lr, n := fileRange(r)
	if f == nil {
		return c.stream.ReadFrom(r)
	}
	if lr != nil && n <= 0 {
		return 0, nil
	}
	if c.minSize > 0 && lr != nil && n < c.minSize {
		c.stats.Small.Add(1)
		return c.stream.ReadFrom(r)
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		// Not a regular file (a pipe?): Go's own way.
		return c.stream.ReadFrom(r)
	}
	ctx := context.Background()
	c.mu.Lock()
	deadline := c.writeDeadline
	c.mu.Unlock()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	count := n
	if count < 0 {
		count = 0 // to end of file
	}
	res, err := c.client.SendFile(ctx, c.stream, f, off, count, nil)
	if lr != nil {
		lr.N -= res.BytesSent
	}
	if err == nil {
		c.stats.Offloaded.Add(1)
		c.stats.OffloadedBytes.Add(res.BytesSent)
		return res.BytesSent, nil
	}
	if res.BytesSent == 0 && declined(err) {
		// Nothing went out, and the daemon leaves the position alone
		// when it sends nothing: check, then send it here.
		if pos, perr := f.Seek(0, io.SeekCurrent); perr == nil && pos == off {
			c.stats.Fallbacks.Add(1)
			return c.stream.ReadFrom(r)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, os.ErrDeadlineExceeded)
	}
	return res.BytesSent, err
}

// declined reports whether err says the daemon did not take the transfer
// (or could not be asked), so that sending it here changes nothing.
func declined(err error) bool {
	for _, e := range []error{sendfiled.ErrUnavailable, sendfiled.ErrClosed, sendfiled.ErrNotAvailable,
		sendfiled.ErrLimit, sendfiled.ErrShuttingDown, sendfiled.ErrPermissionDenied} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
