// Command bench compares net/http serving files with Go's own sendfile(2)
// and through sendfiled (sendfiledhttp), in the same run, alternated.
//
//	go run . -daemon ../../build/daemon/sendfiled
//
// It starts a daemon on a temporary socket and a server process (this
// program again, with -serve) that listens on three ports: a plain net/http
// listener ("net/http"), one wrapped by sendfiledhttp.NewListener
// ("sendfiled"), and one wrapped with MinSize 256 KiB ("min256K": smaller
// bodies sent in-process). All serve the same files with http.FileServer. This process is the load: -conns
// keep-alive connections fetching one file over and over, reading each body
// to the end.
//
// For each file size, -rounds rounds run the variants back to back, the
// order rotated every round. A run moves about -bytes bytes (at least 4
// requests per connection). Measured per run: requests per second (wall
// clock), and the CPU time of the server process plus the daemon, per
// request. The statistic reported is the median over the rounds of each;
// the spread is the minimum and maximum.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiledhttp"
)

func main() {
	serve := flag.String("serve", "", "internal: serve DIR (the server process)")
	socket := flag.String("socket", "", "internal: the daemon's socket")
	daemonBin := flag.String("daemon", "../../build/daemon/sendfiled", "the sendfiled binary")
	sizesFlag := flag.String("sizes", "16K,256K,1M,32M", "file sizes")
	rounds := flag.Int("rounds", 7, "rounds (each runs both variants)")
	conns := flag.Int("conns", 8, "concurrent keep-alive connections")
	totalBytes := flag.Int64("bytes", 1<<30, "bytes per run")
	flag.Parse()
	if *serve != "" {
		runServer(*serve, *socket)
		return
	}

	dir, err := os.MkdirTemp("", "sfdbench")
	check(err)
	defer os.RemoveAll(dir)
	sizes := parseSizes(*sizesFlag)
	rng := rand.New(rand.NewSource(1))
	for _, sz := range sizes {
		b := make([]byte, sz)
		rng.Read(b)
		check(os.WriteFile(filepath.Join(dir, name(sz)), b, 0o644))
	}

	sock := filepath.Join(dir, "sendfiled.sock")
	daemon := exec.Command(*daemonBin, "--socket", sock, "--log-level", "warning")
	daemon.Stderr = os.Stderr
	daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	check(daemon.Start())
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	waitSocket(sock)

	srv := exec.Command(os.Args[0], "-serve", dir, "-socket", sock)
	srv.Stderr = os.Stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := srv.StdoutPipe()
	check(err)
	check(srv.Start())
	defer func() { srv.Process.Kill(); srv.Wait() }()
	// The server prints its addresses: plain, through the daemon, and
	// through the daemon from minSize up.
	sc := bufio.NewScanner(out)
	var addrs []string
	for len(addrs) < 3 && sc.Scan() {
		addrs = append(addrs, strings.TrimSpace(sc.Text()))
	}
	if len(addrs) < 3 {
		log.Fatal("the server did not start")
	}
	variants := []struct{ name, addr string }{{"net/http", addrs[0]}, {"sendfiled", addrs[1]},
		{"min256K", addrs[2]}}

	fmt.Printf("conns=%d rounds=%d bytes/run=%d\n", *conns, *rounds, *totalBytes)
	fmt.Printf("%-6s %-10s %12s %12s %14s   %s\n", "size", "variant", "req/s", "MB/s", "CPU µs/req",
		"req/s min..max")
	for _, sz := range sizes {
		n := max(int(*totalBytes/sz), 4**conns)
		res := map[string][]run{}
		// One unmeasured run of each to warm the page cache and connections.
		for _, v := range variants {
			load(v.addr, name(sz), *conns, *conns*4, srv.Process.Pid, daemon.Process.Pid)
		}
		for r := 0; r < *rounds; r++ {
			// Each variant in each place of the order, in turn.
			for k := range variants {
				i := (k + r) % len(variants)
				v := variants[i]
				res[v.name] = append(res[v.name], load(v.addr, name(sz), *conns, n, srv.Process.Pid,
					daemon.Process.Pid))
			}
		}
		for _, v := range variants {
			rs := res[v.name]
			rps := make([]float64, len(rs))
			cpu := make([]float64, len(rs))
			for i, x := range rs {
				rps[i] = float64(x.requests) / x.wall.Seconds()
				cpu[i] = x.cpu.Seconds() * 1e6 / float64(x.requests)
			}
			m := median(rps)
			fmt.Printf("%-6s %-10s %12.0f %12.0f %14.1f   %.0f..%.0f\n", name(sz), v.name, m,
				m*float64(sz)/1e6, median(cpu), minOf(rps), maxOf(rps))
		}
	}
}

// minSize is the MinSize of the third variant.
const minSize = 256 << 10

type run struct {
	requests int
	wall     time.Duration
	cpu      time.Duration // server process + daemon
}

// load fetches path n times over conns keep-alive connections.
func load(addr, path string, conns, n int, pids ...int) run {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + addr + "/" + path
	var next sync.Mutex
	left := n
	cpu0 := cpuOf(pids...)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				resp, err := client.Get(url)
				check(err)
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					log.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					log.Fatalf("%s: %s", url, resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	return run{requests: n, wall: time.Since(start), cpu: cpuOf(pids...) - cpu0}
}

// cpuOf returns the user + system time of the processes so far.
func cpuOf(pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		check(err)
		// Fields after the command name (which ends with ')'): utime is
		// the 14th field of the line, stime the 15th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	return total
}

func runServer(dir, socket string) {
	client, err := sendfiled.Dial(socket)
	check(err)
	defer client.Close()
	h := http.FileServer(http.Dir(dir))
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	wrapped, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	mixed, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Println(plain.Addr())
	fmt.Println(wrapped.Addr())
	fmt.Println(mixed.Addr())
	go func() { check(http.Serve(plain, h)) }()
	sl := sendfiledhttp.NewListener(wrapped, client)
	go func() { check(http.Serve(sl, h)) }()
	ml := sendfiledhttp.NewListener(mixed, client)
	ml.MinSize = minSize
	go func() { check(http.Serve(ml, h)) }()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	<-ctx.Done()
}

func waitSocket(path string) {
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unixpacket", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatal("the daemon did not start")
}

func parseSizes(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		mul := int64(1)
		switch {
		case strings.HasSuffix(f, "K"):
			mul, f = 1<<10, strings.TrimSuffix(f, "K")
		case strings.HasSuffix(f, "M"):
			mul, f = 1<<20, strings.TrimSuffix(f, "M")
		}
		v, err := strconv.ParseInt(f, 10, 64)
		check(err)
		out = append(out, v*mul)
	}
	return out
}

func name(sz int64) string {
	switch {
	case sz%(1<<20) == 0:
		return fmt.Sprintf("%dM", sz>>20)
	case sz%(1<<10) == 0:
		return fmt.Sprintf("%dK", sz>>10)
	}
	return strconv.FormatInt(sz, 10)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
