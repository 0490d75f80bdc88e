'use strict';
// Client.sendfile() against a real daemon and real TCP receivers: the
// semantic matrix of loop.sendfile(), cancellation, errors, many transfers at
// once, bad input. Every test checks what a user would: the bytes received,
// the return value, the file position, and that this process and the daemon
// hold the descriptors they held before.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { describe, it, before, after, beforeEach, afterEach } = require('node:test');

const sendfiled = require('..');
const { Client } = sendfiled;
const h = require('./harness');

const { MiB } = h;

describe('Client.sendfile', () => {
  let daemon;
  let client;
  let dir;
  let small;
  let medium;
  let empty;
  let fds;
  let daemonFds;

  before(async () => {
    dir = h.tmpdir();
    daemon = await new h.Daemon(dir).start();
    small = h.makeFile(dir, 'small.bin', MiB + 123);
    medium = h.makeFile(dir, 'medium.bin', 32 * MiB);
    empty = h.makeFile(dir, 'empty.bin', 0);
    client = new Client({ path: daemon.path, requireDaemon: true });
    // The connection is part of the baseline.
    const r = await h.Receiver.open();
    await client.sendfile(r.socket, small.path, { count: 10 });
    await r.finish();
  });

  after(async () => {
    client.close();
    assert.ok(daemon.alive(), 'the daemon died during the tests');
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    fds = h.fdSet();
    daemonFds = daemon.fdCount();
  });

  afterEach(async () => {
    await h.assertFdsBack(fds);
    assert.equal(await daemon.waitFdCount(daemonFds), daemonFds, 'daemon descriptors');
  });

  async function send(file, opts, recvOpts) {
    const r = await h.Receiver.open(recvOpts);
    try {
      const res = await client.sendfile(r.socket, file, opts);
      const got = await r.finish();
      return { res, got };
    } finally {
      await r.destroy();
    }
  }

  it('sends a whole file, and leaves the position at its end', async () => {
    const fh = await fs.promises.open(small.path, 'r');
    try {
      const { res, got } = await send(fh);
      assert.deepEqual(res, { bytesSent: small.data.length, finalOffset: small.data.length,
                              method: 'sendfile' });
      assert.equal(got.bytes, small.data.length);
      assert.equal(got.sha256, h.sha256(small.data));
      assert.equal(h.position(fh.fd), small.data.length);
      // The FileHandle is the caller's: still open.
      assert.equal((await fh.stat()).size, small.data.length);
    } finally {
      await fh.close();
    }
  });

  it('sends offset + count from a descriptor', async () => {
    const fd = fs.openSync(medium.path, 'r');
    try {
      const { res, got } = await send(fd, { offset: 1000, count: 3 * MiB + 7 });
      assert.deepEqual(res, { bytesSent: 3 * MiB + 7, finalOffset: 1000 + 3 * MiB + 7,
                              method: 'sendfile' });
      assert.equal(got.sha256, h.sha256(medium.data.subarray(1000, 1000 + 3 * MiB + 7)));
      assert.equal(h.position(fd), 1000 + 3 * MiB + 7);
      // Reading on from the position gets what follows the range.
      const b = Buffer.alloc(16);
      assert.equal(fs.readSync(fd, b, 0, 16, null), 16);
      assert.deepEqual(b, medium.data.subarray(1000 + 3 * MiB + 7, 1000 + 3 * MiB + 23));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('sends a short count when the range runs past the end of the file', async () => {
    const fd = fs.openSync(small.path, 'r');
    try {
      const { res, got } = await send(fd, { offset: MiB, count: 10 * MiB });
      assert.equal(res.bytesSent, 123);
      assert.equal(res.finalOffset, MiB + 123);
      assert.equal(got.sha256, h.sha256(small.data.subarray(MiB)));
      assert.equal(h.position(fd), MiB + 123);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('sends nothing from an offset past the end, position untouched', async () => {
    const fd = fs.openSync(small.path, 'r');
    try {
      fs.readSync(fd, Buffer.alloc(5), 0, 5, null);
      const { res, got } = await send(fd, { offset: 5 * MiB });
      assert.equal(res.bytesSent, 0);
      assert.equal(got.bytes, 0);
      assert.equal(h.position(fd), 5);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('sends nothing from an empty file', async () => {
    const { res, got } = await send(empty.path);
    assert.equal(res.bytesSent, 0);
    assert.equal(res.finalOffset, 0);
    assert.equal(got.bytes, 0);
  });

  it('opens a path read-only and closes it', async () => {
    const { res, got } = await send(small.path, { offset: 7 });
    assert.equal(res.bytesSent, small.data.length - 7);
    assert.equal(got.sha256, h.sha256(small.data.subarray(7)));
    // afterEach: no descriptor left open.
  });

  it('sends from a pipe with splice, to its end', async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Opening the read end first, non-blocking, lets the write end open
    // at once; closing the write end makes the end of the data an EOF.
    const rd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const wr = fs.openSync(fifo, 'w');
      const payload = small.data.subarray(0, 60000);
      fs.writeSync(wr, payload);
      fs.closeSync(wr);
      const { res, got } = await send(rd);
      assert.equal(res.bytesSent, payload.length);
      assert.equal(res.method, 'splice');
      assert.equal(got.sha256, h.sha256(payload));
    } finally {
      fs.closeSync(rd);
      fs.unlinkSync(fifo);
    }
  });

  it('sends a /proc file by copying, or refuses with fallback: false', async () => {
    const proc = `/proc/${process.pid}/status`;
    const fd = fs.openSync(proc, 'r');
    try {
      await assert.rejects(send(fd, { fallback: false }), (e) => {
        assert.equal(e.code, 'ERR_SENDFILED_NOT_AVAILABLE');
        assert.equal(e.bytesSent, 0);
        return true;
      });
      assert.equal(h.position(fd), 0);
      const { res, got } = await send(fd);
      assert.equal(res.method, 'read_write');
      assert.ok(res.bytesSent > 0);
      assert.equal(got.bytes, res.bytesSent);
      assert.equal(h.position(fd), res.bytesSent);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('writes to an O_APPEND file given as a descriptor', async () => {
    const out = path.join(dir, 'append.out');
    fs.writeFileSync(out, 'head:');
    const dst = fs.openSync(out, 'a');
    const src = fs.openSync(small.path, 'r');
    try {
      await assert.rejects(client.sendfile(dst, src, { fallback: false }),
                           { code: 'ERR_SENDFILED_NOT_AVAILABLE', bytesSent: 0 });
      assert.equal(h.position(src), 0);
      const res = await client.sendfile(dst, src, { offset: 10, count: 5000 });
      assert.deepEqual(res, { bytesSent: 5000, finalOffset: 5010, method: 'read_write' });
      assert.equal(h.position(src), 5010);
      assert.deepEqual(fs.readFileSync(out),
                       Buffer.concat([Buffer.from('head:'), small.data.subarray(10, 5010)]));
    } finally {
      fs.closeSync(dst);
      fs.closeSync(src);
    }
  });

  it('reports a receiver that resets mid-transfer', async () => {
    const fd = fs.openSync(medium.path, 'r');
    const r = await h.Receiver.open({ resetAfter: MiB });
    try {
      await assert.rejects(client.sendfile(r.socket, fd, { offset: 100 }), (e) => {
        assert.equal(e.code, 'ERR_SENDFILED_PEER_CLOSED');
        assert.ok(['EPIPE', 'ECONNRESET'].includes(e.errnoName), e.errnoName);
        assert.ok(e.errno < 0);
        assert.ok(e.bytesSent >= MiB && e.bytesSent < medium.data.length - 100, `${e.bytesSent}`);
        assert.equal(e.finalOffset, 100 + e.bytesSent);
        assert.equal(h.position(fd), 100 + e.bytesSent);
        return true;
      });
    } finally {
      await r.destroy();
      fs.closeSync(fd);
    }
  });

  it('cancels with an AbortSignal; the position matches what was received', async () => {
    const fd = fs.openSync(medium.path, 'r');
    const r = await h.Receiver.open({ paused: true });
    const before = daemon.stats();
    try {
      r.keep = true;
      const ac = new AbortController();
      const p = client.sendfile(r.socket, fd, { offset: 50, signal: ac.signal });
      // Let some of it through, then stop it.
      await r.readUntil(2 * MiB);
      ac.abort(new Error('enough'));
      const e = await p.then(() => assert.fail('resolved'), (x) => x);
      assert.equal(e.name, 'AbortError');
      assert.equal(e.code, 'ABORT_ERR');
      assert.equal(e.cause.message, 'enough');
      assert.ok(e.bytesSent >= 2 * MiB && e.bytesSent < medium.data.length - 50);
      assert.equal(h.position(fd), 50 + e.bytesSent);
      const now = daemon.stats();
      assert.equal(now.by_status.cancelled, before.by_status.cancelled + 1);
      // The socket is the caller's again: what arrives is the prefix sent.
      const got = await r.finish();
      assert.equal(got.bytes, e.bytesSent);
      assert.equal(h.sha256(Buffer.concat(r.chunks)),
                   h.sha256(medium.data.subarray(50, 50 + e.bytesSent)));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('rejects at once for a signal already aborted', async () => {
    const fd = fs.openSync(small.path, 'r');
    const r = await h.Receiver.open();
    try {
      await assert.rejects(client.sendfile(r.socket, fd, { signal: AbortSignal.abort() }),
                           { name: 'AbortError', code: 'ABORT_ERR', bytesSent: 0 });
      assert.equal(h.position(fd), 0);
      assert.equal((await r.finish()).bytes, 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('cancels the transfer when the application destroys the socket', async () => {
    const fd = fs.openSync(medium.path, 'r');
    const r = await h.Receiver.open({ paused: true });
    const before = daemon.stats();
    try {
      const p = client.sendfile(r.socket, fd);
      await r.readUntil(MiB);
      r.socket.destroy();
      const e = await p.then(() => assert.fail('resolved'), (x) => x);
      assert.equal(e.code, 'ERR_STREAM_DESTROYED');
      assert.equal(h.position(fd), e.bytesSent);
      assert.equal(daemon.stats().by_status.cancelled, before.by_status.cancelled + 1);
    } finally {
      await r.destroy();
      fs.closeSync(fd);
    }
  });

  it('takes a descriptor number as the socket', async () => {
    const r = await h.Receiver.open();
    const res = await client.sendfile(r.socket._handle.fd, small.path, { count: 4096 });
    assert.equal(res.bytesSent, 4096);
    const got = await r.finish();
    assert.equal(got.sha256, h.sha256(small.data.subarray(0, 4096)));
  });

  it('runs 200 transfers at once on one client', async () => {
    const n = 200;
    const fd = fs.openSync(medium.path, 'r');
    const rs = await Promise.all(Array.from({ length: n }, () => h.Receiver.open()));
    try {
      const ranges = rs.map((_, i) => ({ offset: (i * 7919) % (4 * MiB), count: 1 + ((i * 104729) % (256 * 1024)) }));
      const results = await Promise.all(rs.map((r, i) => client.sendfile(r.socket, fd, ranges[i])));
      const got = await Promise.all(rs.map((r) => r.finish()));
      for (let i = 0; i < n; i++) {
        const { offset, count } = ranges[i];
        assert.equal(results[i].bytesSent, count);
        assert.equal(results[i].finalOffset, offset + count);
        assert.equal(got[i].sha256, h.sha256(medium.data.subarray(offset, offset + count)), `#${i}`);
      }
      assert.equal(sendfiled.stats().inFlight, 0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('queues requests while the connection is full, in order', async () => {
    // The daemon stopped: the connection fills, submits meet EAGAIN and
    // wait for room; nothing blocks this process meanwhile.
    const d = await new h.Daemon(h.tmpdir(), ['--no-control', '--max-in-flight', '5000',
                                              '--max-in-flight-per-uid', '10000']).start();
    const c = new Client({ path: d.path, requireDaemon: true });
    const per = 300;
    const rs = await Promise.all(Array.from({ length: 5 }, () => h.Receiver.open()));
    const fd = fs.openSync(small.path, 'r');
    const s0 = sendfiled.stats();
    const ps = [];
    try {
      // Connected before the stop.
      await c.sendfile(rs[0].socket._handle.fd, fd, { count: 1 });
      d.signal('SIGSTOP');
      for (let k = 0; k < per; k++) {
        rs.forEach((r, i) => {
          ps.push(c.sendfile(r.socket._handle.fd, fd, { offset: k * 1000 + i, count: 1000 }));
        });
      }
      // The loop keeps turning while the daemon sleeps, and the
      // connection fills.
      const end = Date.now() + 60000;
      while (sendfiled.stats().waitedForRoom === s0.waitedForRoom && Date.now() < end) {
        await h.sleep(20);
      }
      assert.ok(sendfiled.stats().waitedForRoom > s0.waitedForRoom, 'no request met EAGAIN');
      d.signal('SIGCONT');
      const results = await Promise.all(ps);
      results.forEach((x) => assert.equal(x.bytesSent, 1000));
      const got = await Promise.all(rs.map((r) => r.finish()));
      rs.forEach((r, i) => {
        const parts = [];
        if (i === 0) parts.push(small.data.subarray(0, 1));
        for (let k = 0; k < per; k++) parts.push(small.data.subarray(k * 1000 + i, k * 1000 + i + 1000));
        assert.equal(got[i].sha256, h.sha256(Buffer.concat(parts)), `receiver ${i}`);
      });
    } finally {
      d.signal('SIGCONT');
      await Promise.allSettled(ps);
      c.close();
      fs.closeSync(fd);
      await Promise.all(rs.map((r) => r.destroy()));
      await d.stop();
      fs.rmSync(d.dir, { recursive: true, force: true });
    }
  });

  it('rejects bad input clearly and leaks nothing', async () => {
    const r = await h.Receiver.open();
    const fd = fs.openSync(small.path, 'r');
    try {
      const bad = [
        [r.socket, fd, { offset: -1 }, { code: 'ERR_OUT_OF_RANGE' }],
        [r.socket, fd, { offset: 1.5 }, { code: 'ERR_INVALID_ARG_TYPE' }],
        [r.socket, fd, { count: 0 }, { code: 'ERR_OUT_OF_RANGE' }],
        [r.socket, fd, { count: '5' }, { code: 'ERR_INVALID_ARG_TYPE' }],
        [r.socket, fd, { fallback: 'no' }, { code: 'ERR_INVALID_ARG_TYPE' }],
        [r.socket, fd, { signal: {} }, { code: 'ERR_INVALID_ARG_TYPE' }],
        [{}, fd, {}, { code: 'ERR_INVALID_ARG_TYPE' }],
        [-3, fd, {}, { code: 'ERR_INVALID_ARG_TYPE' }],
        [r.socket, {}, {}, { code: 'ERR_INVALID_ARG_TYPE' }],
        [r.socket, path.join(dir, 'missing'), {}, { code: 'ENOENT' }],
        [r.socket, 987654, {}, { code: 'EBADF' }],
      ];
      for (const [s, f, o, want] of bad) await assert.rejects(client.sendfile(s, f, o), want);
      const fh = await fs.promises.open(small.path, 'r');
      await fh.close();
      await assert.rejects(client.sendfile(r.socket, fh), { code: 'EBADF' });
      // A descriptor that is no socket: the daemon says so.
      await assert.rejects(client.sendfile(fd, fd), (e) => {
        assert.match(e.code, /^ERR_SENDFILED_/);
        assert.equal(e.bytesSent, 0);
        return true;
      });
      assert.equal(h.position(fd), 0);
      // Everything still works, and the socket took no stray bytes.
      await client.sendfile(r.socket, fd, { count: 100 });
      const got = await r.finish();
      assert.equal(got.sha256, h.sha256(small.data.subarray(0, 100)));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('pings: who answers, while a transfer is in flight on the client', async () => {
    const fd = fs.openSync(medium.path, 'r');
    const r = await h.Receiver.open({ paused: true });
    try {
      r.keep = true;
      const p = client.sendfile(r.socket, fd);
      await r.readUntil(MiB);
      const info = await client.ping({ timeout: 10000 });
      assert.deepEqual(Object.keys(info).sort(), ['daemonVersion', 'features', 'protocolVersion']);
      assert.equal(info.protocolVersion, 1);
      const printed = execFileSync(h.daemonBinary(), ['--version'], { encoding: 'utf8' }).trim();
      assert.equal(`sendfiled ${info.daemonVersion}`, printed);
      assert.ok(Array.isArray(info.features));
      assert.equal(new Set(info.features).size, info.features.length);
      for (const f of info.features) {
        assert.ok(['deadline', 'rate_limit', 'close_when_done', 'idle_timeout'].includes(f), f);
      }
      // What the C client and sendfilectl say: the same daemon, the same facts.
      const ctl = JSON.parse(execFileSync(h.ctlBinary(), ['-s', daemon.path, 'ping', '--json'],
                                          { encoding: 'utf8' }));
      assert.deepEqual(ctl, { protocol_version: info.protocolVersion,
                              daemon_version: info.daemonVersion, features: info.features });
      // The same again, and the transfer goes on to its end.
      assert.deepEqual(await client.ping(), info);
      r.resume();
      const res = await p;
      assert.equal(res.bytesSent, medium.data.length);
      assert.equal(h.position(fd), medium.data.length);
      const got = await r.finish();
      assert.equal(got.sha256, h.sha256(medium.data));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('ping rejects clearly without a daemon, and for bad options', async () => {
    const c = new Client({ path: path.join(dir, 'nobody.sock') });
    try {
      const e = await c.ping().then(() => assert.fail('resolved'), (x) => x);
      assert.equal(e.code, 'ERR_SENDFILED_UNAVAILABLE');
      assert.equal(e.errnoName, 'ENOENT');
      await assert.rejects(c.ping({ timeout: 'soon' }), { code: 'ERR_INVALID_ARG_TYPE' });
      c.close();
      await assert.rejects(c.ping(), { code: 'ERR_SENDFILED_CLOSED' });
    } finally {
      c.close();
    }
  });

  it('exports the default client helper', async () => {
    const old = process.env.SENDFILED_SOCKET;
    process.env.SENDFILED_SOCKET = daemon.path;
    try {
      const r = await h.Receiver.open();
      const res = await sendfiled.sendfile(r.socket, small.path, { count: 1234 });
      assert.equal(res.bytesSent, 1234);
      assert.equal(sendfiled.defaultClient().socketPath, daemon.path);
      assert.equal((await r.finish()).sha256, h.sha256(small.data.subarray(0, 1234)));
    } finally {
      sendfiled.close();
      if (old === undefined) delete process.env.SENDFILED_SOCKET;
      else process.env.SENDFILED_SOCKET = old;
    }
  });
});
