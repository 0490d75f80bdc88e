// Package testdaemon starts a real sendfiled for tests: the binary named by
// $SENDFILED_BIN, else daemon/sendfiled in a build directory (build first,
// then build-*) of a directory above the working directory.
package testdaemon

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary returns the daemon's path, or fails the test with what to do.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SENDFILED_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SENDFILED_BIN=%s: %v", p, err)
		}
		return p
	}
	if p := findInBuild("daemon/sendfiled"); p != "" {
		return p
	}
	t.Fatal("the sendfiled daemon was not found: set SENDFILED_BIN or build it " +
		"(meson setup build && ninja -C build at the top of the source tree)")
	return ""
}

// Ctl returns sendfilectl's path: $SENDFILED_CTL, else tools/sendfilectl
// beside the daemon's build directory.
func Ctl(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SENDFILED_CTL"); p != "" {
		return p
	}
	if p := os.Getenv("SENDFILED_BIN"); p != "" {
		return filepath.Join(filepath.Dir(filepath.Dir(p)), "tools", "sendfilectl")
	}
	if p := findInBuild("tools/sendfilectl"); p != "" {
		return p
	}
	t.Fatal("sendfilectl was not found: set SENDFILED_CTL or build it (ninja -C build)")
	return ""
}

func findInBuild(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		builds, _ := filepath.Glob(filepath.Join(dir, "build*"))
		sort.SliceStable(builds, func(i, j int) bool {
			return filepath.Base(builds[i]) == "build" && filepath.Base(builds[j]) != "build"
		})
		for _, b := range builds {
			p := filepath.Join(b, rel)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Daemon is a sendfiled process serving a socket in a temporary directory.
type Daemon struct {
	Path string // the data socket
	Dir  string
	bin  string
	args []string
	cmd  *exec.Cmd
	log  string
	wait chan error
}

// Start starts a daemon on a socket in a new temporary directory; it is
// killed when the test ends.
func Start(t testing.TB, args ...string) *Daemon {
	t.Helper()
	// Not t.TempDir(): its path can be too long for sun_path.
	dir, err := os.MkdirTemp("", "sfdgo")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Path: filepath.Join(dir, "sendfiled.sock"), Dir: dir, bin: Binary(t), args: args,
		log: filepath.Join(dir, "daemon.log")}
	t.Cleanup(func() {
		d.Kill()
		os.RemoveAll(dir)
	})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}

// StartAt starts a daemon on the socket path of another one (to take over
// from it); it is killed when the test ends.
func StartAt(t testing.TB, path string, args ...string) *Daemon {
	t.Helper()
	dir := filepath.Dir(path)
	d := &Daemon{Path: path, Dir: dir, bin: Binary(t), args: args,
		log: filepath.Join(dir, fmt.Sprintf("daemon-%d.log", time.Now().UnixNano()))}
	t.Cleanup(d.Kill)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}

// Signal sends sig to the daemon without waiting.
func (d *Daemon) Signal(sig syscall.Signal) { d.cmd.Process.Signal(sig) }

// Wait waits (up to 60 s) for the daemon to exit, and returns how it did.
func (d *Daemon) Wait() error {
	select {
	case err := <-d.wait:
		d.wait <- err
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("sendfiled did not exit")
	}
}

// Start starts the daemon process (again) and waits until it accepts.
func (d *Daemon) Start() error {
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// No control-listener probe: it briefly holds two sockets, which
	// would disturb the descriptor counts the tests compare.
	d.cmd = exec.Command(d.bin, append([]string{"--socket", d.Path, "--control-probe-ms", "0"},
		d.args...)...)
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.wait = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(d.cmd, d.wait)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.wait:
			d.wait <- err
			return fmt.Errorf("sendfiled exited (%v): %s", err, d.Log())
		default:
		}
		c, err := net.Dial("unixpacket", d.Path)
		if err == nil {
			c.Close()
			d.settle()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sendfiled did not start: %s", d.Log())
}

// settle waits until the daemon has closed the connection made to see it
// accept: until its descriptor count stays the same for a while.
func (d *Daemon) settle() {
	last, same := -1, 0
	for i := 0; i < 500 && same < 10; i++ {
		n := d.FDCount()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Log returns what the daemon wrote.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Alive reports whether the daemon is running.
func (d *Daemon) Alive() bool {
	select {
	case err := <-d.wait:
		d.wait <- err
		return false
	default:
		return true
	}
}

// Stop sends sig and waits for the process to exit (killing it after 20 s).
func (d *Daemon) Stop(sig syscall.Signal) error {
	if d.cmd == nil || !d.Alive() {
		return nil
	}
	d.cmd.Process.Signal(sig)
	select {
	case err := <-d.wait:
		d.wait <- err
		return err
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		err := <-d.wait
		d.wait <- err
		return fmt.Errorf("sendfiled did not stop on %v", sig)
	}
}

// Kill kills the daemon.
func (d *Daemon) Kill() { d.Stop(syscall.SIGKILL) }

// FDCount returns the number of descriptors the daemon holds.
func (d *Daemon) FDCount() int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Pid()))
	return len(ents)
}

// WaitFDCount waits until the daemon holds n descriptors (it closes a
// transfer's a moment after the reply) and returns the count seen last.
func (d *Daemon) WaitFDCount(n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		c := d.FDCount()
		if c == n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stats returns the daemon's counters (sendfilectl stats --json).
func (d *Daemon) Stats(t testing.TB) Stats {
	t.Helper()
	out, err := exec.Command(Ctl(t), "--socket", d.Path, "stats", "--json").Output()
	if err != nil {
		t.Fatalf("sendfilectl stats: %v", err)
	}
	var s Stats
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("sendfilectl stats: %v: %s", err, out)
	}
	return s
}

// Stats is the part of sendfilectl stats --json that tests read.
type Stats struct {
	Requests  uint64            `json:"requests"`
	BytesSent uint64            `json:"bytes_sent"`
	Methods   map[string]uint64 `json:"by_method"`
	Statuses  map[string]uint64 `json:"by_status"`
}

// FDs returns this process's open descriptors and what they point to.
func FDs() map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err != nil {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the listing's own descriptor, closed already
		}
		out[fd] = target
	}
	return out
}

// Leaked returns the descriptors in after that are not in before.
func Leaked(before, after map[int]string) []string {
	var out []string
	for fd, target := range after {
		if before[fd] != target {
			out = append(out, fmt.Sprintf("%d -> %s", fd, target))
		}
	}
	sort.Strings(out)
	return out
}

// String describes the daemon for failure messages.
func (d *Daemon) String() string { return strings.TrimSpace(d.Path) }
