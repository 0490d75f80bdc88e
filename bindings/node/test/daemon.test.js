'use strict';
// When the daemon is not there, goes away, or restarts: the in-process
// fallback with its one warning and its counters, requireDaemon, requests
// sent again on a new connection after a restart, and a daemon killed in the
// middle of a transfer.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it, before, after, beforeEach, afterEach } = require('node:test');

const sendfiled = require('..');
const { Client } = sendfiled;
const h = require('./harness');

const { MiB } = h;

describe('daemon availability', () => {
  let dir;
  let file;
  let fds;
  const warnings = [];
  const onWarning = (w) => {
    if (w.code === 'SENDFILED_UNAVAILABLE') warnings.push(w);
  };

  before(() => {
    dir = h.tmpdir();
    file = h.makeFile(dir, 'file.bin', 16 * MiB + 3);
    process.on('warning', onWarning);
  });

  after(() => {
    process.removeListener('warning', onWarning);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    fds = h.fdSet();
  });

  afterEach(async () => {
    await h.assertFdsBack(fds);
  });

  // A daemon of the test's own, without a control plane, so that a second
  // one can serve the same socket while the first drains.
  function ownDaemon(sub, args = []) {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    return new h.Daemon(path.join(dir, sub), ['--no-control', ...args]);
  }

  async function sendSmall(client, count = 100000, offset = 0) {
    const r = await h.Receiver.open();
    try {
      const res = await client.sendfile(r.socket, file.path, { offset, count });
      const got = await r.finish();
      assert.equal(got.sha256, h.sha256(file.data.subarray(offset, offset + count)));
      return res;
    } finally {
      await r.destroy();
    }
  }

  it('falls back in-process with one warning when the daemon is down', async () => {
    const missing = path.join(dir, 'nobody.sock');
    const c = new Client({ path: missing, retryInterval: 0 });
    const s0 = sendfiled.stats();
    const fd = fs.openSync(file.path, 'r');
    try {
      const r = await h.Receiver.open();
      const res = await c.sendfile(r.socket, fd, { offset: 10, count: 3 * MiB });
      assert.deepEqual(res, { bytesSent: 3 * MiB, finalOffset: 10 + 3 * MiB, method: 'local' });
      assert.equal(h.position(fd), 10 + 3 * MiB);
      assert.equal((await r.finish()).sha256, h.sha256(file.data.subarray(10, 10 + 3 * MiB)));
      await r.destroy();
      assert.equal((await sendSmall(c)).method, 'local');
      // To a descriptor too.
      const r2 = await h.Receiver.open();
      await c.sendfile(r2.socket._handle.fd, fd, { count: 5000 });
      assert.equal((await r2.finish()).sha256, h.sha256(file.data.subarray(0, 5000)));
      await r2.destroy();
      await new Promise((res) => setImmediate(res));
      assert.equal(warnings.length, 1);
      assert.ok(warnings[0].message.includes(missing), warnings[0].message);
      const s1 = sendfiled.stats();
      assert.equal(s1.fallbackNoDaemon - s0.fallbackNoDaemon, 3);
      assert.equal(s1.fallback - s0.fallback, 3);
      assert.equal(s1.fallbackBytes - s0.fallbackBytes, 3 * MiB + 100000 + 5000);
      assert.equal(s1.offloaded - s0.offloaded, 0);
      assert.ok(s1.lastError.includes(missing));
      assert.equal(c.connected, false);
    } finally {
      fs.closeSync(fd);
      c.close();
    }
  });

  it('fails with requireDaemon: true, sending nothing', async () => {
    const missing = path.join(dir, 'nobody.sock');
    const c = new Client({ path: missing, requireDaemon: true, retryInterval: 0 });
    const r = await h.Receiver.open();
    const fd = fs.openSync(file.path, 'r');
    try {
      await assert.rejects(c.sendfile(r.socket, fd), (e) => {
        assert.equal(e.code, 'ERR_SENDFILED_UNAVAILABLE');
        assert.equal(e.errnoName, 'ENOENT');
        assert.equal(e.path, missing);
        assert.equal(e.bytesSent, 0);
        return true;
      });
      assert.equal(h.position(fd), 0);
      assert.equal((await r.finish()).bytes, 0);
    } finally {
      fs.closeSync(fd);
      await r.destroy();
      c.close();
    }
  });

  it('reconnects after the daemon restarts', async () => {
    const d = await ownDaemon('restart').start();
    const c = new Client({ path: d.path, retryInterval: 0 });
    try {
      const s0 = sendfiled.stats();
      assert.equal((await sendSmall(c)).method, 'sendfile');
      await d.stop();
      // Down: sent here.
      assert.equal((await sendSmall(c)).method, 'local');
      await d.start();
      assert.equal((await sendSmall(c)).method, 'sendfile');
      const s1 = sendfiled.stats();
      assert.equal(s1.offloaded - s0.offloaded, 2);
      assert.equal(s1.fallbackNoDaemon - s0.fallbackNoDaemon, 1);
    } finally {
      c.close();
      await d.stop();
    }
  });

  it('sends again on a new daemon a request the stopping one declined', async () => {
    // The first daemon stops with a transfer in flight: it lets it finish,
    // and answers anything new with SHUTTING_DOWN. A second daemon serves
    // the socket meanwhile.
    const a = await ownDaemon('handover', ['--drain-timeout', '600000']).start();
    const c = new Client({ path: a.path, requireDaemon: true });
    const slow = await h.Receiver.open({ paused: true });
    let b = null;
    try {
      const s0 = sendfiled.stats();
      const p1 = c.sendfile(slow.socket, file.path);
      await slow.readUntil(MiB);
      a.signal('SIGTERM');
      const end = Date.now() + 30000;
      while (fs.existsSync(a.path) && Date.now() < end) await h.sleep(10);
      assert.ok(!fs.existsSync(a.path), 'the stopping daemon kept its socket');
      assert.ok(a.alive());
      b = await new h.Daemon(a.dir, ['--no-control']).start();
      const res = await sendSmall(c, 200000, 5);
      assert.equal(res.bytesSent, 200000);
      assert.equal(res.method, 'sendfile');
      const s1 = sendfiled.stats();
      assert.ok(s1.retried - s0.retried >= 1);
      // The first transfer still completes, on the old connection.
      slow.resume();
      const r1 = await p1;
      assert.equal(r1.bytesSent, file.data.length);
      assert.equal((await slow.finish()).sha256, h.sha256(file.data));
      assert.deepEqual(await a.exited, { code: 0, sig: null });
      // And the client goes on with the new daemon.
      assert.equal((await sendSmall(c)).method, 'sendfile');
    } finally {
      c.close();
      await slow.destroy();
      await a.stop('SIGKILL');
      if (b) await b.stop();
    }
  });

  it('sends again a request the daemon never read before it died', async () => {
    const a = await ownDaemon('unread').start();
    const c = new Client({ path: a.path, requireDaemon: true });
    let b = null;
    const fd = fs.openSync(file.path, 'r');
    const r = await h.Receiver.open();
    try {
      await sendSmall(c, 10);
      // Stopped, the daemon reads nothing; killed, it leaves the request
      // unread and the connection reset.
      a.signal('SIGSTOP');
      const p = c.sendfile(r.socket, fd, { offset: 0, count: 300000 });
      await h.sleep(100);
      a.signal('SIGKILL');
      await a.exited;
      b = await new h.Daemon(a.dir, ['--no-control']).start();
      const res = await p;
      assert.equal(res.bytesSent, 300000);
      assert.equal(h.position(fd), 300000);
      assert.equal((await r.finish()).sha256, h.sha256(file.data.subarray(0, 300000)));
    } finally {
      fs.closeSync(fd);
      await r.destroy();
      c.close();
      if (b) await b.stop();
    }
  });

  it('reports a daemon killed mid-transfer, with the position it left', async () => {
    const a = await ownDaemon('killed').start();
    const c = new Client({ path: a.path, requireDaemon: true });
    const r = await h.Receiver.open({ paused: true });
    r.keep = true;
    const fd = fs.openSync(file.path, 'r');
    try {
      const p = c.sendfile(r.socket, fd, { offset: 7 });
      await r.readUntil(MiB);
      a.signal('SIGKILL');
      const e = await p.then(() => assert.fail('resolved'), (x) => x);
      assert.equal(e.code, 'ERR_SENDFILED_OUTCOME_UNKNOWN');
      assert.equal(e.errnoName, 'ECONNRESET');
      // What was sent is what the position says: the error agrees with it.
      const pos = h.position(fd);
      assert.equal(e.bytesSent, pos - 7);
      assert.equal(e.finalOffset, 7 + e.bytesSent);
      // Never sent twice: the receiver got one prefix of the range, and
      // the position tells exactly how long.
      const got = await r.finish();
      assert.ok(got.bytes >= MiB && got.bytes < file.data.length - 7, `${got.bytes}`);
      assert.equal(pos, 7 + got.bytes);
      assert.equal(got.sha256, h.sha256(file.data.subarray(7, 7 + got.bytes)));
      assert.equal(sendfiled.stats().inFlight, 0);
    } finally {
      fs.closeSync(fd);
      await r.destroy();
      c.close();
      await a.stop();
    }
  });
});
