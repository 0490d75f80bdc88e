package sendfiled_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sendfiled/sendfiled/bindings/go/sendfiled"
)

// A peer that stops reading: the daemon's idle timeout ends the transfer with
// ErrTimedOut and ETIMEDOUT, the bytes sent so far (what the peer then reads)
// and the position there.
func TestIdleTimeout(t *testing.T) {
	_, c := setup(t)
	p := newIdlePeer(t)
	f := open(t, largePath)
	res, err := c.SendFile(context.Background(), p.Conn, f, 4096, 0,
		&sendfiled.Options{IdleTimeout: 300 * time.Millisecond})
	if !errors.Is(err, sendfiled.ErrTimedOut) || !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("SendFile: %v, want ErrTimedOut and ETIMEDOUT", err)
	}
	if res.Status != sendfiled.StatusTimedOut || res.Timeout != sendfiled.TimeoutIdle {
		t.Errorf("status %v, timeout %v", res.Status, res.Timeout)
	}
	if res.BytesSent <= 0 || res.BytesSent >= int64(len(largeData))-4096 {
		t.Errorf("bytes sent %d", res.BytesSent)
	}
	if res.FinalOffset != 4096+res.BytesSent || position(t, f) != res.FinalOffset {
		t.Errorf("final offset %d, position %d", res.FinalOffset, position(t, f))
	}
	p.startReading(nil)
	got := p.finish(t)
	if got.n != res.BytesSent || got.sum != sum(largeData[4096:4096+res.BytesSent]) {
		t.Errorf("the peer received %d bytes, the daemon sent %d", got.n, res.BytesSent)
	}
}

// A rate-limited transfer ends at its deadline while it still moves.
func TestDeadlineAndRate(t *testing.T) {
	_, c := setup(t)
	p := newPeer(t)
	f := open(t, largePath)
	res, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, &sendfiled.Options{
		Deadline: 300 * time.Millisecond, RateLimit: 1 << 20, RateLimitAfter: 64 << 10})
	if !errors.Is(err, sendfiled.ErrTimedOut) || res.Timeout != sendfiled.TimeoutDeadline {
		t.Fatalf("SendFile: %v (timeout %v), want the deadline", err, res.Timeout)
	}
	if res.BytesSent < 64<<10 || res.BytesSent >= int64(len(largeData)) {
		t.Errorf("bytes sent %d", res.BytesSent)
	}
	got := p.finish(t)
	if got.n != res.BytesSent || got.sum != sum(largeData[:res.BytesSent]) {
		t.Errorf("the peer received %d bytes, the daemon sent %d", got.n, res.BytesSent)
	}
}

func TestBadLimits(t *testing.T) {
	_, c := setup(t)
	for _, o := range []sendfiled.Options{
		{Deadline: -time.Second},
		{IdleTimeout: 50 * 24 * time.Hour},
		{RateLimit: -1},
		{RateLimitAfter: 10},
		{Deadline: 48 * time.Hour}, // beyond the daemon's maximum
	} {
		p := newPeer(t)
		f := open(t, smallPath)
		_, err := c.SendFile(context.Background(), p.Conn, f, 0, 0, &o)
		if !errors.Is(err, sendfiled.ErrInvalidArgument) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%+v: %v, want ErrInvalidArgument and EINVAL", o, err)
		}
		if got := p.finish(t); got.n != 0 {
			t.Errorf("%+v: %d bytes sent", o, got.n)
		}
	}
}
