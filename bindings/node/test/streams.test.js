'use strict';
// The socket's byte order around a transfer (writes queued before it, made
// during it, end() during it), and the streams that are never handed to the
// daemon: TLS sockets and HTTP/2 streams, sent in this process instead.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http2 = require('node:http2');
const path = require('node:path');
const tls = require('node:tls');
const { describe, it, before, after, beforeEach, afterEach } = require('node:test');

const sendfiled = require('..');
const { Client } = sendfiled;
const h = require('./harness');

const { MiB } = h;
const key = fs.readFileSync(path.join(__dirname, 'tls-key.pem'));
const cert = fs.readFileSync(path.join(__dirname, 'tls-cert.pem'));

describe('byte order and streams', () => {
  let daemon;
  let client;
  let dir;
  let file;
  let fds;
  let daemonFds;

  before(async () => {
    dir = h.tmpdir();
    daemon = await new h.Daemon(dir).start();
    file = h.makeFile(dir, 'file.bin', 8 * MiB + 5);
    client = new Client({ path: daemon.path, requireDaemon: true });
    const r = await h.Receiver.open();
    await client.sendfile(r.socket, file.path, { count: 1 });
    await r.finish();
  });

  after(async () => {
    client.close();
    assert.ok(daemon.alive());
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    fds = h.fdSet();
    daemonFds = daemon.fdCount();
  });

  afterEach(async () => {
    await h.assertFdsBack(fds);
    assert.equal(await daemon.waitFdCount(daemonFds), daemonFds, 'daemon descriptors');
  });

  it('keeps writes made before and during a transfer in order', async () => {
    const r = await h.Receiver.open({ paused: true });
    const s = r.socket;
    const big = Buffer.alloc(4 * MiB, 'a');
    const want = [];
    const write = (b) => {
      s.write(b);
      want.push(b);
    };
    // Queued in Node, not yet in the kernel: the peer reads nothing yet.
    write(big);
    write(Buffer.from('before'));
    assert.ok(s.writableLength > 0);
    const p1 = client.sendfile(s, file.path, { offset: 3, count: 2 * MiB });
    want.push(file.data.subarray(3, 3 + 2 * MiB));
    write(Buffer.from('during-1'));
    write(Buffer.alloc(MiB, 'b'));
    const p2 = client.sendfile(s, file.path, { offset: 10, count: 1000 });
    want.push(file.data.subarray(10, 1010));
    write(Buffer.from('during-2'));
    s.end(Buffer.from('last'));
    want.push(Buffer.from('last'));
    r.resume();
    const [a, b] = await Promise.all([p1, p2]);
    assert.equal(a.bytesSent, 2 * MiB);
    assert.equal(b.bytesSent, 1000);
    assert.equal(a.method, 'sendfile');
    const got = await r.finish();
    const all = Buffer.concat(want);
    assert.equal(got.bytes, all.length);
    assert.equal(got.sha256, h.sha256(all));
  });

  it('keeps many interleaved writes and transfers in order', async () => {
    const r = await h.Receiver.open();
    const want = [];
    const ps = [];
    for (let i = 0; i < 30; i++) {
      const b = Buffer.from(`<${i}>`.repeat(i * 100 + 1));
      r.socket.write(b);
      want.push(b);
      const off = i * 4099;
      ps.push(client.sendfile(r.socket, file.path, { offset: off, count: 7000 + i }));
      want.push(file.data.subarray(off, off + 7000 + i));
    }
    r.socket.end('.');
    want.push(Buffer.from('.'));
    const res = await Promise.all(ps);
    res.forEach((x, i) => assert.equal(x.bytesSent, 7000 + i));
    const got = await r.finish();
    assert.equal(got.sha256, h.sha256(Buffer.concat(want)));
  });

  it('sends a corked socket\'s writes first', async () => {
    const r = await h.Receiver.open();
    r.socket.cork();
    r.socket.write('corked');
    const res = await client.sendfile(r.socket, file.path, { count: 100 });
    assert.equal(res.bytesSent, 100);
    const got = await r.finish();
    assert.equal(got.sha256, h.sha256(Buffer.concat([Buffer.from('corked'),
                                                     file.data.subarray(0, 100)])));
  });

  it('never hands a TLS socket to the daemon', async () => {
    const before = daemon.stats();
    const s0 = sendfiled.stats();
    const server = tls.createServer({ key, cert });
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    const received = new Promise((res) => {
      server.once('secureConnection', (c) => {
        const chunks = [];
        c.on('data', (d) => chunks.push(d));
        c.on('end', () => {
          c.end();
          res(Buffer.concat(chunks));
        });
      });
    });
    const s = tls.connect({ port: server.address().port, host: '127.0.0.1', ca: cert,
                            servername: 'localhost' });
    await new Promise((res, rej) => {
      s.once('secureConnect', res);
      s.once('error', rej);
    });
    const fd = fs.openSync(file.path, 'r');
    try {
      await assert.rejects(client.sendfile(s, fd, { fallback: false }),
                           { code: 'ERR_SENDFILED_NOT_AVAILABLE', bytesSent: 0 });
      assert.equal(h.position(fd), 0);
      s.write('hello ');
      const res = await client.sendfile(s, fd, { offset: 100, count: 3 * MiB });
      assert.deepEqual(res, { bytesSent: 3 * MiB, finalOffset: 100 + 3 * MiB,
                              method: 'local' });
      assert.equal(h.position(fd), 100 + 3 * MiB);
      s.end(' bye');
      const got = await received;
      assert.equal(h.sha256(got), h.sha256(Buffer.concat([
        Buffer.from('hello '), file.data.subarray(100, 100 + 3 * MiB), Buffer.from(' bye')])));
      const s1 = sendfiled.stats();
      assert.equal(s1.fallbackTls - s0.fallbackTls, 1);
      assert.equal(s1.offloaded - s0.offloaded, 0);
      // The daemon saw nothing of it.
      const now = daemon.stats();
      assert.equal(now.requests, before.requests);
      assert.equal(now.bytes_sent, before.bytes_sent);
    } finally {
      fs.closeSync(fd);
      s.destroy();
      await new Promise((res) => server.close(res));
    }
  });

  it('writes to an HTTP/2 stream in this process', async () => {
    const before = daemon.stats();
    const server = http2.createServer();
    let served;
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      served = client.sendfile(stream, file.path, { offset: 1, count: MiB })
        .finally(() => stream.end());
    });
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    const session = http2.connect(`http://127.0.0.1:${server.address().port}`);
    try {
      const req = session.request({ ':path': '/' });
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      await new Promise((res, rej) => {
        req.on('end', res);
        req.on('error', rej);
      });
      const res = await served;
      assert.equal(res.bytesSent, MiB);
      assert.equal(res.method, 'local');
      assert.equal(h.sha256(Buffer.concat(chunks)), h.sha256(file.data.subarray(1, 1 + MiB)));
      assert.equal(daemon.stats().requests, before.requests);
    } finally {
      session.close();
      await new Promise((res) => server.close(res));
    }
  });
});
