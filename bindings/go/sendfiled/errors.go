package sendfiled

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// Status is the outcome of a request, as the daemon reports it.
type Status int32

// The statuses of docs/PROTOCOL.md, section 5, with the wire's values.
const (
	StatusOK               Status = 0
	StatusNotAvailable     Status = 1 // fallback refused and no zero-copy method applies
	StatusInvalidArgument  Status = 2
	StatusPeerClosed       Status = 3 // the destination's peer closed or reset the connection
	StatusIOError          Status = 4
	StatusCancelled        Status = 5
	StatusLimit            Status = 6 // a daemon limit was reached: retry later
	StatusProtocol         Status = 7
	StatusShuttingDown     Status = 8
	StatusPermissionDenied Status = 9
	StatusTimedOut         Status = 10 // the transfer's deadline or idle timeout ended it
)

var statusNames = [...]string{
	StatusOK:               "ok",
	StatusNotAvailable:     "not available",
	StatusInvalidArgument:  "invalid argument",
	StatusPeerClosed:       "peer closed",
	StatusIOError:          "I/O error",
	StatusCancelled:        "cancelled",
	StatusLimit:            "limit reached",
	StatusProtocol:         "protocol error",
	StatusShuttingDown:     "shutting down",
	StatusPermissionDenied: "permission denied",
	StatusTimedOut:         "timed out",
}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status " + strconv.Itoa(int(s))
}

// Method tells how the daemon moved the bytes.
type Method int32

// The methods, with the wire's values.
const (
	MethodNone      Method = 0
	MethodSendfile  Method = 1 // sendfile(2), zero-copy
	MethodSplice    Method = 2 // splice(2), zero-copy (pipe or socket sources)
	MethodReadWrite Method = 3 // the user-space copy: the only "fallback"
)

var methodNames = [...]string{"none", "sendfile", "splice", "read_write"}

func (m Method) String() string {
	if m >= 0 && int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "method " + strconv.Itoa(int(m))
}

// Errors that errors.Is matches against the errors of this package. Each
// status other than StatusOK has its own; ErrUnavailable covers a daemon
// that cannot be reached or that went away before it answered.
var (
	ErrNotAvailable     = errors.New("sendfiled: no zero-copy method applies")
	ErrInvalidArgument  = errors.New("sendfiled: invalid argument")
	ErrPeerClosed       = errors.New("sendfiled: the destination's peer closed the connection")
	ErrIO               = errors.New("sendfiled: I/O error")
	ErrCancelled        = errors.New("sendfiled: transfer cancelled")
	ErrLimit            = errors.New("sendfiled: daemon limit reached")
	ErrProtocol         = errors.New("sendfiled: protocol error")
	ErrShuttingDown     = errors.New("sendfiled: daemon shutting down")
	ErrPermissionDenied = errors.New("sendfiled: permission denied")
	ErrTimedOut         = errors.New("sendfiled: the transfer's deadline or idle timeout passed")
	ErrUnavailable      = errors.New("sendfiled: daemon unavailable")
	// ErrOutcomeUnknown: the connection to the daemon was lost (it was
	// killed, or crashed) after it read the request: no reply will come.
	// Result.BytesSent and FinalOffset are read from the source's file
	// position, exact when no other transfer was sending from the same
	// open file. An error matching it also matches ErrUnavailable.
	ErrOutcomeUnknown = errors.New("sendfiled: outcome unknown: see the file position")
	ErrClosed         = errors.New("sendfiled: client closed")
)

var statusErrors = [...]error{
	StatusNotAvailable:     ErrNotAvailable,
	StatusInvalidArgument:  ErrInvalidArgument,
	StatusPeerClosed:       ErrPeerClosed,
	StatusIOError:          ErrIO,
	StatusCancelled:        ErrCancelled,
	StatusLimit:            ErrLimit,
	StatusProtocol:         ErrProtocol,
	StatusShuttingDown:     ErrShuttingDown,
	StatusPermissionDenied: ErrPermissionDenied,
	StatusTimedOut:         ErrTimedOut,
}

// Error is the error of a request that did not succeed. It carries the
// outcome: Result.BytesSent and Result.FinalOffset are what the daemon
// reported (also for a cancelled transfer), so a caller knows what left.
//
// errors.Is matches it against the Err* value of its status (or
// ErrUnavailable, ErrClosed), against its errno (a syscall.Errno such as
// syscall.EPIPE), and against the context's error when the transfer was
// stopped because its context ended; errors.As reaches the syscall.Errno.
type Error struct {
	Op     string // "sendfile", "dial", "ping"
	Path   string // the daemon's socket
	Result Result // the daemon's reply; Status is meaningless when Kind is ErrUnavailable or ErrClosed
	Kind   error  // one of the Err* values above
	Err    error  // the cause: a syscall.Errno, a context error, or nil
}

func (e *Error) Error() string {
	msg := "sendfiled: " + e.Op
	if e.Kind == ErrUnavailable || e.Kind == ErrClosed || e.Kind == ErrOutcomeUnknown {
		msg += ": " + e.Kind.Error()[len("sendfiled: "):]
		if e.Path != "" && e.Kind != ErrClosed {
			msg += " at " + e.Path
		}
	} else {
		msg += ": " + e.Result.Status.String()
	}
	if e.Result.Message != "" {
		msg += ": " + e.Result.Message
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Result.BytesSent > 0 {
		msg += fmt.Sprintf(" (%d bytes sent)", e.Result.BytesSent)
	}
	return msg
}

// Is reports whether target is the Err* value of e's kind (an unknown
// outcome is also a daemon that became unavailable).
func (e *Error) Is(target error) bool {
	return target == e.Kind || (e.Kind == ErrOutcomeUnknown && target == ErrUnavailable)
}

// Unwrap returns the errno and the cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Result.Errno != 0 {
		out = append(out, e.Result.Errno)
	}
	if e.Err != nil && e.Err != error(e.Result.Errno) {
		out = append(out, e.Err)
	}
	return out
}

func statusError(st Status) error {
	if st > 0 && int(st) < len(statusErrors) {
		return statusErrors[st]
	}
	return ErrProtocol
}

// errnoOf returns the syscall.Errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}
