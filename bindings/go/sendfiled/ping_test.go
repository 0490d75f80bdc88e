package sendfiled_test

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/internal/testdaemon"
	"github.com/sendfiled/sendfiled/bindings/go/internal/wire"
	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// rawPing sends the documented Ping bytes (id 3) on a connection of its own
// and returns the reply's PingInfo: the daemon's own word, decoded but not
// interpreted by the package.
func rawPing(t *testing.T, path string) *wire.PingInfo {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0x08, 0x03, 0x22, 0x00}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, wire.MaxRecord)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeResponse(buf[:n])
	if err != nil || r.ID != 3 || r.Ping == nil {
		t.Fatalf("reply %+v, %v", r, err)
	}
	return r.Ping
}

// Who answers: protocol 1, the version `sendfiled --version` prints, and
// exactly the features the daemon lists that this package knows, whichever
// they are today; asked while a transfer is in flight on the same client,
// which then completes with the file's bytes.
func TestPing(t *testing.T) {
	d, c := setup(t)
	out, err := exec.Command(testdaemon.Binary(t), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "sendfiled ")
	if !ok {
		t.Fatalf("sendfiled --version printed %q", out)
	}

	data := bytes.Repeat([]byte("ping amid transfers\n"), 1<<20) // 20 MiB
	f := open(t, writeFile(filepath.Join(t.TempDir(), "f"), data))
	defer f.Close()
	p := newIdlePeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, nil)
		done <- err
	}()
	first := make([]byte, 1)
	if _, err := p.server.Read(first); err != nil {
		t.Fatal(err)
	}

	info, err := c.Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.ProtocolVersion != 1 || info.DaemonVersion != version {
		t.Errorf("ping: %+v; want protocol 1, version %q", info, version)
	}
	var want []sendfiled.Feature
	said := rawPing(t, d.Path)
	for f := sendfiled.FeatureDeadline; f <= sendfiled.FeatureIdleTimeout; f++ {
		for _, v := range said.Features {
			if sendfiled.Feature(v) == f {
				want = append(want, f)
				break
			}
		}
	}
	if !equalFeatures(info.Features, want) {
		t.Errorf("features %v, the daemon lists %v", info.Features, said.Features)
	}
	for _, f := range info.Features {
		if f.String() == "unknown" || !info.Has(f) {
			t.Errorf("feature %d", f)
		}
	}
	if again, err := c.Ping(context.Background()); err != nil || !equalInfo(again, info) {
		t.Errorf("second ping: %+v, %v", again, err)
	}

	p.startReading(first)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the transfer did not complete")
	}
	r := p.finish(t)
	if r.n != int64(len(data)) || r.sum != sum(data) {
		t.Errorf("received %d bytes, want the file's %d", r.n, len(data))
	}
	if pos := position(t, f); pos != int64(len(data)) {
		t.Errorf("position %d", pos)
	}
}

func equalFeatures(a, b []sendfiled.Feature) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalInfo(a, b sendfiled.PingInfo) bool {
	return a.ProtocolVersion == b.ProtocolVersion && a.DaemonVersion == b.DaemonVersion &&
		equalFeatures(a.Features, b.Features)
}
