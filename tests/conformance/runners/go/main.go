// Command go is the conformance runner of the Go client (see
// tests/conformance/README.md). Each case goes through the public API,
// Client.SendFile, with a context cancelled mid-transfer for a cancel case.
// It reports what it saw and judges nothing.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

type kase struct {
	name, op, source, path, dest, action string
	size, offset, count, at              int64
	fallback                             bool
}

func parse(line string) kase {
	f := map[string]string{}
	for _, tok := range strings.Fields(line) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			f[k] = v
		}
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	k := kase{name: f["name"], op: f["op"], source: f["source"], path: f["path"], dest: f["dest"],
		action: f["action"], size: num("size"), offset: num("offset"), at: num("at"),
		fallback: f["fallback"] != "0"}
	if f["count"] != "-" {
		k.count = num("count")
	}
	return k
}

func content(start, n int64) []byte {
	b := make([]byte, n)
	for j := range b {
		i := start + int64(j)
		b[j] = byte(i*31 + i>>12)
	}
	return b
}

// receiver reads r to its end; with an action it stops at k.at bytes: a
// reset closes with SO_LINGER 0, a cancel signals reached and waits for
// resume before reading on.
type receiver struct {
	len     int64
	hash    []byte
	reached chan struct{}
	resume  chan struct{}
	done    chan struct{}
}

func receive(r io.ReadCloser, k kase) *receiver {
	rc := &receiver{reached: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		h := sha256.New()
		buf := make([]byte, 65536)
		stopAt := k.action != "none"
		for {
			want := int64(len(buf))
			if stopAt && k.at-rc.len < want {
				want = k.at - rc.len
			}
			n, err := r.Read(buf[:want])
			h.Write(buf[:n])
			rc.len += int64(n)
			if stopAt && rc.len == k.at {
				stopAt = false
				if k.action == "reset" {
					if tc, ok := r.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					break
				}
				close(rc.reached)
				<-rc.resume
			}
			if err != nil {
				break
			}
		}
		r.Close()
		rc.hash = h.Sum(nil)
	}()
	return rc
}

// runPing runs a ping case: who answers, through Client.Ping.
func runPing(c *sendfiled.Client, k kase) map[string]any {
	rep := map[string]any{"client": "go", "case": k.name, "error": ""}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.Ping(ctx)
	if err != nil {
		rep["status"], rep["error"] = "call_failed", err.Error()
		return rep
	}
	features := []string{}
	for _, f := range info.Features {
		features = append(features, f.String())
	}
	rep["status"] = "ok"
	rep["protocol_version"] = info.ProtocolVersion
	rep["daemon_version"] = info.DaemonVersion
	rep["features"] = features
	return rep
}

func runCase(c *sendfiled.Client, k kase, tmp string) map[string]any {
	if k.op == "ping" {
		return runPing(c, k)
	}
	rep := map[string]any{"client": "go", "case": k.name}
	var src *os.File
	var err error
	writerDone := make(chan struct{})
	close(writerDone)
	switch k.source {
	case "file":
		p := filepath.Join(tmp, "src-"+k.name)
		if err = os.WriteFile(p, content(0, k.size), 0o600); err == nil {
			src, err = os.Open(p)
			os.Remove(p)
		}
	case "pipe":
		var w *os.File
		src, w, err = os.Pipe()
		if err == nil {
			writerDone = make(chan struct{})
			go func() {
				defer close(writerDone)
				w.Write(content(0, k.size))
				w.Close()
			}()
		}
	default:
		src, err = os.Open(k.path)
	}
	if err != nil {
		rep["status"], rep["error"] = "runner_failed", err.Error()
		return rep
	}

	var dst syscall.Conn
	var closeDst func()
	var rcv *receiver
	var appendPath string
	switch k.dest {
	case "tcp":
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		d, _ := net.Dial("tcp", l.Addr().String())
		s, _ := l.Accept()
		l.Close()
		dst, closeDst = d.(*net.TCPConn), func() { d.Close() }
		rcv = receive(s.(*net.TCPConn), k)
	case "unix":
		fds, _ := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		a, _ := net.FileConn(os.NewFile(uintptr(fds[0]), "a"))
		b, _ := net.FileConn(os.NewFile(uintptr(fds[1]), "b"))
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		dst, closeDst = a.(*net.UnixConn), func() { a.Close() }
		rcv = receive(b.(*net.UnixConn), k)
	case "pipe":
		r, w, _ := os.Pipe()
		dst, closeDst = w, func() { w.Close() }
		rcv = receive(r, k)
	default:
		appendPath = filepath.Join(tmp, "dst-"+k.name)
		f, _ := os.OpenFile(appendPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
		dst, closeDst = f, func() { f.Close() }
	}

	ctx, cancel := context.WithCancel(context.Background())
	if k.action == "cancel" {
		go func() { <-rcv.reached; cancel() }()
	}
	res, err := c.SendFile(ctx, dst, src, k.offset, k.count, &sendfiled.Options{NoFallback: !k.fallback})
	cancel()
	status := strings.ReplaceAll(res.Status.String(), " ", "_")
	switch res.Status {
	case sendfiled.StatusIOError:
		status = "io_error"
	case sendfiled.StatusLimit:
		status = "limit"
	case sendfiled.StatusProtocol:
		status = "protocol"
	}
	rep["error"] = ""
	if err != nil {
		rep["error"] = err.Error()
		var e *sendfiled.Error
		if !errors.As(err, &e) {
			status = "call_failed"
		}
	}
	pos, perr := src.Seek(0, io.SeekCurrent)
	closeDst()
	if rcv != nil {
		close(rcv.resume)
		<-rcv.done
	} else {
		data, _ := os.ReadFile(appendPath)
		os.Remove(appendPath)
		sum := sha256.Sum256(data)
		rcv = &receiver{len: int64(len(data)), hash: sum[:]}
	}
	src.Close()
	<-writerDone

	rep["status"] = status
	rep["bytes"] = res.BytesSent
	rep["final_offset"] = res.FinalOffset
	rep["position"] = pos
	if perr != nil {
		rep["position"] = nil
	}
	rep["method"] = res.Method.String()
	if res.Method == sendfiled.MethodNone {
		rep["method"] = nil
	}
	rep["received_len"] = rcv.len
	rep["received_sha256"] = hex.EncodeToString(rcv.hash)
	return rep
}

func main() {
	tmp := os.Getenv("CONFORMANCE_TMP")
	if tmp == "" {
		tmp = os.TempDir()
	}
	c, err := sendfiled.Dial("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance runner:", err)
		os.Exit(2)
	}
	defer c.Close()
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "" {
			continue
		}
		if err := out.Encode(runCase(c, parse(in.Text()), tmp)); err != nil {
			os.Exit(2)
		}
	}
}
