// Package sendfiled is a client of sendfiled, the local daemon that sends
// files over sockets zero-copy on behalf of other processes.
//
// A Client holds one connection to the daemon's data socket (AF_UNIX,
// SOCK_SEQPACKET) and may be used by any number of goroutines at once: each
// SendFile passes the destination socket and the source file to the daemon
// as descriptors (SCM_RIGHTS), many requests share the connection, and one
// goroutine reads the replies and hands each to its caller. The protocol is
// docs/PROTOCOL.md of the sendfiled source tree; this package speaks it
// natively, without cgo or libsendfiled.
//
// The semantics are those of Python asyncio's loop.sendfile(): offset and
// count select the range (count 0 means to end of file, a count past end of
// file sends what there is), the source's file position is left at
// offset + bytes sent whenever anything was sent, and a transfer with
// fallback refused fails with ErrNotAvailable, sending nothing, when no
// zero-copy method applies.
//
// The package never changes the mode of the descriptors it is given:
// descriptors are borrowed through syscall.RawConn.Control for the time it
// takes to send them, so Go's own sockets stay non-blocking and owned by
// the runtime's poller.
package sendfiled

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/wire"
)

// SystemSocketPath is the system daemon's data socket.
const SystemSocketPath = "/run/sendfiled/sendfiled.sock"

// DefaultSocketPath returns the data socket a client uses when given no
// path: $SENDFILED_SOCKET when set and not empty, else
// $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock when that socket exists (a
// per-user daemon), else SystemSocketPath.
func DefaultSocketPath() string {
	if p := os.Getenv("SENDFILED_SOCKET"); p != "" {
		return p
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		p := filepath.Join(rt, "sendfiled", "sendfiled.sock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return SystemSocketPath
}

// When the daemon did nothing with a request because it is going away
// (SHUTTING_DOWN, or the connection closed before it read the request),
// SendFile sends the request again on a new connection: at most retryMax
// attempts in all, connects included, pausing retryStep more after each
// failed connect, up to retryMaxPause (about 2.4 s in all), as libsendfiled
// does.
const (
	retryMax      = 50
	retryStep     = 10 * time.Millisecond
	retryMaxPause = 50 * time.Millisecond
	// After connecting failed for good, calls in the next retryQuiet
	// try to connect once, without waiting, so that callers that fall
	// back to sending in-process when the daemon is away do so at once.
	retryQuiet = time.Second
)

// Options are the optional parameters of SendFile. The zero value (or a nil
// *Options) asks for the defaults.
type Options struct {
	// NoFallback refuses the daemon's user-space copy: when neither
	// sendfile(2) nor splice(2) can move the bytes (a /proc file as
	// source, an O_APPEND file as destination), SendFile fails with
	// ErrNotAvailable and sends nothing.
	NoFallback bool

	// Limits the daemon enforces; zero means none. Deadline ends the
	// transfer that long after the daemon received the request (time
	// waiting behind another transfer to the same destination counts);
	// IdleTimeout ends it once that long passes without a byte moving (a
	// peer that stopped reading; waiting for the rate limit does not
	// count). Either ends it with ErrTimedOut (StatusTimedOut, ETIMEDOUT),
	// Result.Timeout saying which, and the bytes sent so far. Both are
	// rounded up to whole milliseconds; the daemon refuses more than its
	// maximum (one day unless configured) with ErrInvalidArgument.
	Deadline    time.Duration
	IdleTimeout time.Duration
	// RateLimit is at most this many bytes per second, after
	// RateLimitAfter bytes sent at full speed (which needs a RateLimit).
	RateLimit      int64
	RateLimitAfter int64
}

// Timeout says which limit ended a StatusTimedOut transfer.
type Timeout int32

// The limits, with the wire's values.
const (
	TimeoutNone     Timeout = 0
	TimeoutDeadline Timeout = 1
	TimeoutIdle     Timeout = 2
)

func (t Timeout) String() string {
	switch t {
	case TimeoutDeadline:
		return "deadline"
	case TimeoutIdle:
		return "idle"
	}
	return "none"
}

// limitMs is @d in whole milliseconds, rounded up; ok is false when it
// cannot be carried (negative, or more than 2^32 - 1 ms).
func limitMs(d time.Duration) (uint32, bool) {
	if d < 0 {
		return 0, false
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		return 0, false
	}
	return uint32(ms), true
}

// Result is the daemon's account of a transfer. SendFile returns it on
// every outcome the daemon reported, failures included.
type Result struct {
	BytesSent   int64   // bytes sent, on every outcome
	FinalOffset int64   // offset + BytesSent: where the source's position was left
	Method      Method  // how the bytes moved (MethodNone when no transfer started)
	ShortSource bool    // the source ended before the requested range did
	Timeout     Timeout // StatusTimedOut: the limit that ended it
	Status      Status
	Errno       syscall.Errno // the cause of a failure, 0 when none
	Message     string        // the daemon's explanation of a failure, for people
}

func resultOf(r *wire.Response) Result {
	return Result{
		BytesSent:   int64(r.BytesSent),
		FinalOffset: int64(r.FinalOffset),
		Method:      Method(r.Method),
		ShortSource: r.ShortSource,
		Timeout:     Timeout(r.Timeout),
		Status:      Status(r.Status),
		Errno:       syscall.Errno(uint32(r.Error)),
		Message:     r.Message,
	}
}

// FD turns a raw descriptor into a syscall.Conn, to give SendFile a
// descriptor that is not a Go socket or file. The caller keeps it open
// until SendFile returns.
type FD int

// SyscallConn implements syscall.Conn.
func (fd FD) SyscallConn() (syscall.RawConn, error) { return rawFD(fd), nil }

type rawFD int

func (fd rawFD) Control(f func(uintptr)) error {
	if fd < 0 {
		return syscall.EBADF
	}
	f(uintptr(fd))
	return nil
}

func (rawFD) Read(func(uintptr) bool) error  { return errors.ErrUnsupported }
func (rawFD) Write(func(uintptr) bool) error { return errors.ErrUnsupported }

// Client is a connection to the daemon. It is safe for concurrent use by
// multiple goroutines; requests from all of them share the connection.
// When the daemon restarts, the Client connects again by itself. When the
// daemon refuses this user (its allow-list), that call and every later one
// fail with ErrPermissionDenied (and syscall.EACCES).
type Client struct {
	path string
	ids  atomic.Uint64

	mu     sync.Mutex
	cur    *conn              // where new requests go; nil when none is usable
	conns  map[*conn]struct{} // every open connection (old ones finish their requests)
	closed bool
	// The daemon refused this user (its allow-list): every later call
	// fails the same way, as with libsendfiled.
	refused *Error

	dialMu sync.Mutex // one goroutine dials while the others wait for it
	gaveUp time.Time  // when connecting failed last, under dialMu
	wg     sync.WaitGroup
}

// Dial connects to the daemon at path ("" for DefaultSocketPath()).
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext connects to the daemon at path ("" for DefaultSocketPath()).
// ctx bounds the connect only. A daemon that cannot be reached is reported
// with an *Error that matches ErrUnavailable and the connect's errno
// (syscall.ENOENT, syscall.ECONNREFUSED, ...).
func DialContext(ctx context.Context, path string) (*Client, error) {
	if path == "" {
		path = DefaultSocketPath()
	}
	c := &Client{path: path, conns: make(map[*conn]struct{})}
	uc, err := dial(ctx, path)
	if err != nil {
		return nil, &Error{Op: "dial", Path: path, Kind: ErrUnavailable, Err: err}
	}
	c.mu.Lock()
	c.adopt(uc)
	c.mu.Unlock()
	return c, nil
}

// Path returns the daemon's socket path.
func (c *Client) Path() string { return c.path }

func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			// Keep the errno (or the context's error) as the cause.
			var se *os.SyscallError
			if errors.As(oe.Err, &se) {
				return nil, se.Err
			}
			return nil, oe.Err
		}
		return nil, err
	}
	return nc.(*net.UnixConn), nil
}

// adopt makes uc the current connection. c.mu is held.
func (c *Client) adopt(uc *net.UnixConn) *conn {
	cn := &conn{cl: c, uc: uc, pending: make(map[uint64]chan reply), done: make(chan struct{})}
	c.conns[cn] = struct{}{}
	c.cur = cn
	c.wg.Add(1)
	go cn.read()
	return cn
}

// Close closes the connection to the daemon and waits for the goroutine
// reading it to end. Transfers still in flight are cancelled by the daemon,
// which settles their file positions; their SendFile calls return an error
// matching ErrClosed. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	conns := make([]*conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.cur = nil
	c.mu.Unlock()
	for _, cn := range conns {
		cn.uc.Close()
	}
	c.wg.Wait()
	return nil
}

// get returns a connection to send a request on, connecting (again) when
// there is none: at first use after a daemon went away, or once the daemon
// said it is shutting down. *attempts counts connects that failed.
func (c *Client) get(ctx context.Context, attempts *int) (*conn, *Error) {
	if cn, err := c.usable(); cn != nil || err != nil {
		return cn, err
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	for {
		if cn, err := c.usable(); cn != nil || err != nil {
			return cn, err
		}
		uc, err := dial(ctx, c.path)
		if err == nil {
			c.gaveUp = time.Time{}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.closed {
				uc.Close()
				return nil, &Error{Op: "sendfile", Path: c.path, Kind: ErrClosed}
			}
			return c.adopt(uc), nil
		}
		// While nothing listens (a daemon that binds its own socket is
		// restarting), wait and try again; but not again and again for
		// every call while the daemon stays away.
		if ctx.Err() != nil || (err != syscall.ECONNREFUSED && err != syscall.ENOENT &&
			err != syscall.EAGAIN) || *attempts+1 >= retryMax ||
			time.Since(c.gaveUp) < retryQuiet || !pause(ctx, *attempts+1) {
			c.gaveUp = time.Now()
			return nil, &Error{Op: "dial", Path: c.path, Kind: ErrUnavailable, Err: err}
		}
		*attempts++
	}
}

func (c *Client) usable() (*conn, *Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &Error{Op: "sendfile", Path: c.path, Kind: ErrClosed}
	}
	if c.refused != nil {
		return nil, c.refused
	}
	if cn := c.cur; cn != nil {
		cn.mu.Lock()
		ok := cn.err == nil && !cn.draining
		cn.mu.Unlock()
		if ok {
			return cn, nil
		}
	}
	return nil, nil
}

func pause(ctx context.Context, attempt int) bool {
	d := min(time.Duration(attempt)*retryStep, retryMaxPause)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SendFile has the daemon send count bytes of src, from offset, to dst, and
// waits for the outcome.
//
// dst is the destination: normally a connected stream socket (*net.TCPConn,
// *net.UnixConn), also a pipe or a file open for writing (*os.File), or a
// raw descriptor (FD). src is the source: a regular file (*os.File), a pipe
// or a stream socket (then offset must be 0). Both are borrowed: they are
// only used while the request is sent, and the daemon works on duplicates.
// Do not use them for anything else until SendFile returns, and never pass
// a socket that a user-space TLS library encrypts (crypto/tls's Conn is not
// a syscall.Conn, so it cannot be passed by mistake).
//
// count 0 sends to end of file. A count past end of file sends what there is
// (Result.ShortSource is then true); an offset at or past end of file sends
// nothing. Whenever anything was sent, on success as on failure, the
// source's file position is left at offset + Result.BytesSent; when nothing
// was sent it is untouched.
//
// On success the error is nil and the Result says how many bytes were sent,
// where the position is, and how (Result.Method). Otherwise the error is an
// *Error, and the Result is still the daemon's account when it gave one:
// a peer that closed or reset the connection mid-transfer gives an error
// matching ErrPeerClosed and syscall.EPIPE or syscall.ECONNRESET, with the
// bytes that left in Result.BytesSent.
//
// When ctx is done before the transfer is, the transfer is cancelled and
// SendFile waits for the daemon's account, so that BytesSent and the file
// position are exact: the error matches ErrCancelled and ctx's error
// (context.Canceled or context.DeadlineExceeded). A transfer that ended on
// its own before the cancel reached the daemon returns its real outcome.
//
// A daemon that is restarting does not fail the call: a request it did
// nothing with (it answered StatusShuttingDown, or closed the connection
// without reading it) is sent again on a new connection. A request the
// daemon may have started is never sent twice: if the connection ends after
// the daemon read it, the error matches ErrUnavailable. While nothing
// listens on the socket, connecting is retried for up to about 2.4 s (never
// past ctx); once that has failed, calls in the next second try once.
func (c *Client) SendFile(ctx context.Context, dst, src syscall.Conn, offset, count int64, opts *Options) (Result, error) {
	fail := func(kind error, errno syscall.Errno, cause error) (Result, error) {
		res := Result{Errno: errno}
		if kind == ErrInvalidArgument {
			res.Status = StatusInvalidArgument
		}
		return res, &Error{Op: "sendfile", Path: c.path, Result: res, Kind: kind, Err: cause}
	}
	if offset < 0 || count < 0 {
		return fail(ErrInvalidArgument, syscall.EINVAL, nil)
	}
	if dst == nil || src == nil {
		return fail(ErrInvalidArgument, syscall.EBADF, nil)
	}
	draw, err := dst.SyscallConn()
	if err != nil {
		return fail(ErrInvalidArgument, syscall.EBADF, err)
	}
	sraw, err := src.SyscallConn()
	if err != nil {
		return fail(ErrInvalidArgument, syscall.EBADF, err)
	}
	req := wire.Request{Op: wire.OpSendfile, Offset: uint64(offset), Count: uint64(count),
		HasCount: count > 0, NoFallback: opts != nil && opts.NoFallback}
	if opts != nil {
		var okD, okI bool
		req.DeadlineMs, okD = limitMs(opts.Deadline)
		req.IdleTimeoutMs, okI = limitMs(opts.IdleTimeout)
		if !okD || !okI || opts.RateLimit < 0 || opts.RateLimitAfter < 0 ||
			(opts.RateLimitAfter > 0 && opts.RateLimit == 0) {
			return fail(ErrInvalidArgument, syscall.EINVAL, nil)
		}
		req.RateLimitBps, req.RateLimitAfter = uint64(opts.RateLimit), uint64(opts.RateLimitAfter)
	}

	attempts := 0
	for {
		if err := ctx.Err(); err != nil {
			return fail(ErrCancelled, 0, err)
		}
		cn, err := c.get(ctx, &attempts)
		if err != nil {
			return Result{}, err.withOp("sendfile")
		}
		req.ID = c.ids.Add(1)
		rec, _ := wire.AppendRequest(make([]byte, 0, 32), &req)
		ch := make(chan reply, 1)
		sent := false
		var sendErr, srcErr error
		// The descriptors are valid, and cannot be closed and reused by
		// another goroutine, while Control runs.
		dstErr := draw.Control(func(dfd uintptr) {
			srcErr = sraw.Control(func(sfd uintptr) {
				sent = true
				sendErr = cn.send(rec, syscall.UnixRights(int(dfd), int(sfd)), req.ID, ch)
			})
		})
		runtime.KeepAlive(dst)
		runtime.KeepAlive(src)
		if !sent {
			return fail(ErrInvalidArgument, syscall.EBADF, errors.Join(dstErr, srcErr))
		}
		if sendErr == errConnDead {
			// The connection ended before the record could be sent.
			if e := cn.deadErr(); e.Kind != ErrUnavailable || attempts+1 >= retryMax {
				return Result{}, e.withOp("sendfile")
			}
			attempts++
			continue
		}
		if sendErr != nil && wentAway(sendErr) {
			// The daemon closed the connection: what it said before
			// (a refusal) explains it better than EPIPE does.
			if e := cn.ended(); e.Kind != ErrUnavailable {
				return Result{}, e.withOp("sendfile")
			}
		}
		if sendErr != nil {
			// The daemon went away: sendmsg never took the record.
			if wentAway(sendErr) && attempts+1 < retryMax {
				attempts++
				continue
			}
			if wentAway(sendErr) {
				return fail(ErrUnavailable, errnoOf(sendErr), sendErr)
			}
			if errors.Is(sendErr, net.ErrClosed) { // Close ran meanwhile
				return fail(ErrClosed, 0, nil)
			}
			return fail(ErrIO, errnoOf(sendErr), sendErr)
		}
		r, cancelled := c.wait(ctx, cn, req.ID, ch)
		if r.err != nil {
			if r.unsent && !cancelled && attempts+1 < retryMax {
				attempts++
				continue
			}
			if r.err.Kind == ErrOutcomeUnknown {
				return lostResult(sraw, offset, r.err.withOp("sendfile"))
			}
			return Result{}, r.err.withOp("sendfile")
		}
		res := resultOf(&r.resp)
		switch {
		case res.Status == StatusOK:
			return res, nil
		case res.Status == StatusShuttingDown && !cancelled && attempts+1 < retryMax:
			attempts++
			continue
		}
		e := &Error{Op: "sendfile", Path: c.path, Result: res, Kind: statusError(res.Status)}
		if cancelled && res.Status == StatusCancelled {
			e.Err = ctx.Err()
		}
		return res, e
	}
}

// lostResult reads what a transfer the daemon died with sent from the
// source's file position: the daemon keeps it at offset + bytes sent.
func lostResult(sraw syscall.RawConn, offset int64, e *Error) (Result, error) {
	var pos int64 = -1
	_ = sraw.Control(func(fd uintptr) {
		if p, err := syscall.Seek(int(fd), 0, 1 /* SEEK_CUR */); err == nil {
			pos = p
		}
	})
	e.Result.Errno = syscall.ECONNRESET
	if pos >= offset {
		e.Result.BytesSent = pos - offset
		e.Result.FinalOffset = pos
	}
	return e.Result, e
}

// wait waits for the reply on ch. When ctx ends first, it cancels request id
// and waits for the reply still (the daemon answers a Cancel at once).
func (c *Client) wait(ctx context.Context, cn *conn, id uint64, ch chan reply) (reply, bool) {
	select {
	case r := <-ch:
		return r, false
	case <-ctx.Done():
	}
	cid := c.ids.Add(1)
	rec, _ := wire.AppendRequest(make([]byte, 0, 16), &wire.Request{ID: cid, Op: wire.OpCancel, Target: id})
	// Its own reply (OK, or ENOENT when the transfer ended first) is not
	// needed: the transfer's reply says what happened. If the Cancel
	// cannot be sent, the connection is gone and the reader answers ch.
	_ = cn.send(rec, nil, cid, nil)
	return <-ch, true
}

// Feature is an optional part of the protocol a daemon may implement (proto
// Feature). Its String is the name every binding uses ("deadline", ...).
type Feature int32

const (
	FeatureDeadline      Feature = 1 // Sendfile.deadline_ms
	FeatureRateLimit     Feature = 2 // Sendfile.rate_limit_bps, rate_limit_after
	FeatureCloseWhenDone Feature = 3 // Sendfile.close_when_done, shutdown_write
	FeatureIdleTimeout   Feature = 4 // Sendfile.idle_timeout_ms
)

var featureNames = map[Feature]string{
	FeatureDeadline:      "deadline",
	FeatureRateLimit:     "rate_limit",
	FeatureCloseWhenDone: "close_when_done",
	FeatureIdleTimeout:   "idle_timeout",
}

func (f Feature) String() string {
	if n, ok := featureNames[f]; ok {
		return n
	}
	return "unknown"
}

// PingInfo is who answered a Ping.
type PingInfo struct {
	ProtocolVersion uint32 // the data-plane protocol's version: 1
	// The daemon's own version ("0.1.0"), for people and logs; "" from a
	// daemon too old to say.
	DaemonVersion string
	// The optional features the daemon implements, in increasing order,
	// each once; those this package does not know are left out. Ask before
	// using one: a daemon without it refuses the request.
	Features []Feature
}

// Has reports whether the daemon implements f.
func (p PingInfo) Has(f Feature) bool {
	for _, x := range p.Features {
		if x == f {
			return true
		}
	}
	return false
}

// pingInfoOf reads a Ping's reply; a daemon older than PingInfo answers
// without it: protocol 1, nothing optional.
func pingInfoOf(w *wire.PingInfo) PingInfo {
	if w == nil {
		return PingInfo{ProtocolVersion: 1}
	}
	info := PingInfo{ProtocolVersion: w.ProtocolVersion, DaemonVersion: w.DaemonVersion}
	for f := FeatureDeadline; f <= FeatureIdleTimeout; f++ {
		for _, v := range w.Features {
			if Feature(v) == f {
				info.Features = append(info.Features, f)
				break
			}
		}
	}
	return info
}

// Ping checks that the daemon serves this client, and says who it is: it
// sends a Ping and waits for its answer. The answer also means that every
// request sent before it on this client's connection has been handled. Like
// SendFile, it first replaces a connection the daemon closed (a restart).
func (c *Client) Ping(ctx context.Context) (PingInfo, error) {
	attempts := 0
	cn, err := c.get(ctx, &attempts)
	if err != nil {
		return PingInfo{}, err.withOp("ping")
	}
	id := c.ids.Add(1)
	rec, _ := wire.AppendRequest(make([]byte, 0, 16), &wire.Request{ID: id, Op: wire.OpPing})
	ch := make(chan reply, 1)
	if err := cn.send(rec, nil, id, ch); err != nil {
		if err == errConnDead || wentAway(err) {
			return PingInfo{}, cn.ended().withOp("ping")
		}
		return PingInfo{}, &Error{Op: "ping", Path: c.path, Kind: ErrUnavailable, Err: err}
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return PingInfo{}, r.err.withOp("ping")
		}
		if res := resultOf(&r.resp); res.Status != StatusOK {
			return PingInfo{}, &Error{Op: "ping", Path: c.path, Result: res, Kind: statusError(res.Status)}
		}
		return pingInfoOf(r.resp.Ping), nil
	case <-ctx.Done():
		cn.forget(id)
		return PingInfo{}, &Error{Op: "ping", Path: c.path, Kind: ErrCancelled, Err: ctx.Err()}
	}
}

func wentAway(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOTCONN)
}

var errConnDead = errors.New("connection already failed")

// reply is what a request's caller receives: the daemon's response, or the
// end of the connection (err), with unsent set when the daemon certainly
// did not read the request.
type reply struct {
	resp   wire.Response
	err    *Error
	unsent bool
}

func (e *Error) withOp(op string) *Error {
	cp := *e
	cp.Op = op
	return &cp
}

// conn is one connection to the daemon and the requests in flight on it.
type conn struct {
	cl *Client
	uc *net.UnixConn

	wmu sync.Mutex // held across each sendmsg, so that lastSent is the last record sent

	mu       sync.Mutex
	pending  map[uint64]chan reply
	lastSent uint64
	draining bool   // the daemon is shutting down: send nothing new here
	err      *Error // set once the connection has ended

	done chan struct{} // closed when the connection has ended
}

// ended waits for the reader to end the connection (the daemon closed it:
// the reader gets there once it has read what came before) and returns why.
func (cn *conn) ended() *Error {
	<-cn.done
	return cn.deadErr()
}

// send sends one record with its descriptors (borrowed: the kernel passes
// duplicates). When ch is not nil, the reply to id goes there.
func (cn *conn) send(rec, oob []byte, id uint64, ch chan reply) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return errConnDead
	}
	if ch != nil {
		cn.pending[id] = ch
	}
	// Set before sendmsg: if the connection ends meanwhile, this request
	// counts as the last one, which errs on the safe side (the one sent
	// before it is not taken for unread).
	cn.lastSent = id
	cn.mu.Unlock()
	_, _, err := cn.uc.WriteMsgUnix(rec, oob, nil)
	if err != nil {
		cn.forget(id)
		var se *os.SyscallError
		if errors.As(err, &se) {
			return se.Err
		}
		return err
	}
	return nil
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

func (cn *conn) deadErr() *Error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// read reads the replies until the connection ends, and routes each to the
// request it answers.
func (cn *conn) read() {
	defer cn.cl.wg.Done()
	buf := make([]byte, wire.MaxRecord)
	oob := make([]byte, syscall.CmsgSpace(4*16))
	resetSeen := false
	for {
		n, oobn, flags, _, err := cn.uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			closeRights(oob[:oobn]) // the daemon never sends descriptors
		}
		if err != nil {
			// The kernel reports once that the daemon closed with
			// records of ours unread, before the replies still
			// queued for us: read those, the end comes after them.
			if !resetSeen && errors.Is(err, syscall.ECONNRESET) {
				resetSeen = true
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				cn.end(ErrClosed, 0, false)
			} else {
				cn.end(ErrUnavailable, syscall.ECONNRESET, resetSeen)
			}
			return
		}
		if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
			cn.end(ErrProtocol, syscall.EBADMSG, false)
			return
		}
		if n == 0 { // end of file, or an empty record: both end the connection
			cn.end(ErrUnavailable, syscall.ECONNRESET, resetSeen)
			return
		}
		resp, err := wire.DecodeResponse(buf[:n])
		if err != nil {
			cn.end(ErrProtocol, syscall.EBADMSG, false)
			return
		}
		if resp.ID == 0 {
			// About the connection itself: the allow-list refused us.
			kind := ErrUnavailable
			if Status(resp.Status) == StatusPermissionDenied {
				kind = ErrPermissionDenied
			}
			cn.endWith(&Error{Path: cn.cl.path, Result: resultOf(&resp), Kind: kind}, false)
			return
		}
		cn.mu.Lock()
		ch, ok := cn.pending[resp.ID]
		delete(cn.pending, resp.ID)
		if Status(resp.Status) == StatusShuttingDown {
			cn.draining = true
		}
		cn.mu.Unlock()
		if ok {
			ch <- reply{resp: resp}
		}
	}
}

func (cn *conn) end(kind error, errno syscall.Errno, resetSeen bool) {
	e := &Error{Path: cn.cl.path, Kind: kind, Result: Result{Errno: errno}}
	if kind == ErrUnavailable {
		e.Err = errors.New("the daemon closed the connection")
	}
	cn.endWith(e, resetSeen)
}

// endWith ends the connection: every request still waiting gets e. With
// resetSeen (the daemon closed with records unread), the last record sent
// is certainly unread, as records are read in order.
func (cn *conn) endWith(e *Error, resetSeen bool) {
	c := cn.cl
	if e.Kind == ErrPermissionDenied {
		// Before the connection reads as ended: a call that finds it
		// ended must also find the refusal, or it would dial again.
		c.mu.Lock()
		if c.refused == nil {
			c.refused = e
		}
		c.mu.Unlock()
	}
	cn.mu.Lock()
	cn.err = e
	close(cn.done)
	pending := cn.pending
	cn.pending = nil
	last := cn.lastSent
	cn.mu.Unlock()
	for id, ch := range pending {
		unsent := resetSeen && id == last
		if e.Kind == ErrUnavailable && !unsent {
			// The daemon read it and went away without a reply.
			lost := *e
			lost.Kind = ErrOutcomeUnknown
			ch <- reply{err: &lost}
			continue
		}
		ch <- reply{err: e, unsent: unsent}
	}
	cn.uc.Close()
	c.mu.Lock()
	delete(c.conns, cn)
	if c.cur == cn {
		c.cur = nil
	}
	c.mu.Unlock()
}

// closeRights closes every descriptor in the control messages.
func closeRights(oob []byte) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
}

var _ io.Closer = (*Client)(nil)
