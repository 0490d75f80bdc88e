'use strict';

/*
 * sendFile() on node:http against a real daemon: statuses, ranges,
 * conditional requests, keep-alive and pipelining (the common scenarios),
 * then what only the function itself shows: the application's headers and
 * status, descriptors and FileHandles, errors, bad arguments.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { describe, it, before, after } = require('node:test');

const { sendFile } = require('..');
const {
  commonTests, Daemon, makeClient, makeTree, request, sha256, counters, delta, fdCount,
  waitFor, sleep,
} = require('./http-common');

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

function closeServer(server) {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
}

commonTests('sendFile on node:http', async ({ root, files, client }) => {
  const results = [];
  const known = new Set([...Object.keys(files), 'big.bin']);
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(req.url.split('?')[0].slice(1));
    const file = known.has(name) ? path.join(root, name) : path.join(root, 'no such file');
    sendFile(req, res, file, { client }).then((r) => results.push(r), (err) => {
      results.push({ error: err });
      res.destroy();
    });
  });
  const port = await listen(server);
  return { port, results, close: () => closeServer(server) };
});

describe('sendFile on node:http: the application and errors', { timeout: 300000 }, () => {
  const ctx = {};
  let handler = null;

  before(async () => {
    ctx.base = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-app-'));
    ctx.tree = makeTree(ctx.base);
    ctx.daemon = await new Daemon().start();
    ctx.client = makeClient(ctx.daemon);
    ctx.server = http.createServer((req, res) => handler(req, res));
    ctx.port = await listen(ctx.server);
    ctx.file = (n) => path.join(ctx.tree.root, n);
    handler = (req, res) => sendFile(req, res, ctx.file('small.txt'), { client: ctx.client });
    assert.equal((await request(ctx.port, { path: '/' })).status, 200);
    await sleep(300);
    ctx.ownFds = fdCount();
    ctx.daemonFds = ctx.daemon.fds();
  });

  after(async () => {
    if (ctx.server)
      await closeServer(ctx.server);
    if (ctx.client)
      ctx.client.close();
    if (ctx.daemon)
      await ctx.daemon.stop();
    if (ctx.base)
      fs.rmSync(ctx.base, { recursive: true, force: true });
  });

  /* Runs @fn as the handler of one request; returns [response, fn's outcome]. */
  async function one(fn, opts = {}) {
    let outcome;
    const done = new Promise((resolve) => {
      handler = (req, res) => {
        Promise.resolve().then(() => fn(req, res)).then(
          (value) => { outcome = { value }; resolve(); },
          (error) => {
            outcome = { error };
            if (!res.headersSent) {
              res.statusCode = 599;
              res.end();
            } else {
              res.destroy();
            }
            resolve();
          });
      };
    });
    const r = await request(ctx.port, opts).catch((error) => ({ error }));
    await done;
    return [r, outcome];
  }

  it('keeps the headers the application set, and picks a type by extension', async () => {
    const [r] = await one((req, res) => {
      res.setHeader('Content-Type', 'application/x-custom');
      res.setHeader('X-App', 'kept');
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('ETag', '"mine"');
      return sendFile(req, res, ctx.file('small.txt'), { client: ctx.client });
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-custom');
    assert.equal(r.headers['x-app'], 'kept');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers.etag, '"mine"');
    assert.equal(sha256(r.body), sha256(ctx.tree.files['small.txt']));
    const [h] = await one((req, res) =>
      sendFile(req, res, ctx.file('sub/page.html'), { client: ctx.client }));
    assert.equal(h.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(h.headers['cache-control'], 'public, max-age=0');
    const [m] = await one((req, res) => sendFile(req, res, ctx.file('small.txt'), {
      client: ctx.client, maxAge: 86400e3, immutable: true, etag: false, lastModified: false,
      acceptRanges: false, contentType: 'text/x-mine' }), { headers: { range: 'bytes=0-9' } });
    assert.equal(m.status, 200);
    assert.equal(m.headers['cache-control'], 'public, max-age=86400, immutable');
    assert.equal(m.headers.etag, undefined);
    assert.equal(m.headers['last-modified'], undefined);
    assert.equal(m.headers['accept-ranges'], undefined);
    assert.equal(m.headers['content-type'], 'text/x-mine');
    assert.equal(m.body.length, 5000);
  });

  it('keeps a status the application chose, without ranges or 304', async () => {
    const [r, o] = await one((req, res) => {
      res.statusCode = 404;
      return sendFile(req, res, ctx.file('sub/index.html'), { client: ctx.client });
    }, { headers: { range: 'bytes=0-9', 'if-none-match': '*' } });
    assert.equal(r.status, 404);
    assert.equal(sha256(r.body), sha256(ctx.tree.files['sub/index.html']));
    assert.equal(o.value.statusCode, 404);
    assert.equal(o.value.bytesSent, 1234);
  });

  it('resolves with the outcome: status, bytes, method', async () => {
    const c0 = counters(ctx.daemon);
    const [r, o] = await one((req, res) =>
      sendFile(req, res, ctx.file('data.bin'), { client: ctx.client }),
    { headers: { range: 'bytes=10-' } });
    assert.equal(r.status, 206);
    assert.deepEqual(o.value, { statusCode: 206, bytesSent: r.body.length, method: 'sendfile',
      aborted: false });
    assert.deepEqual(delta(c0, counters(ctx.daemon)),
      { bytes: r.body.length, sendfile: 1, ok: 1 });
  });

  it('uses the shared client when given none', async () => {
    const sendfiled = require('..');
    const saved = process.env.SENDFILED_SOCKET;
    process.env.SENDFILED_SOCKET = ctx.daemon.path;
    try {
      const c0 = counters(ctx.daemon);
      const s0 = sendfiled.stats().offloaded;
      const [r, o] = await one((req, res) => sendFile(req, res, ctx.file('sub/page.html')));
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), sha256(ctx.tree.files['sub/page.html']));
      assert.equal(o.value.method, 'sendfile');
      assert.deepEqual(delta(c0, counters(ctx.daemon)), { bytes: 4321, sendfile: 1, ok: 1 });
      assert.equal(sendfiled.stats().offloaded - s0, 1);
    } finally {
      sendfiled.close();
      if (saved === undefined)
        delete process.env.SENDFILED_SOCKET;
      else
        process.env.SENDFILED_SOCKET = saved;
    }
  });

  it('sends from a descriptor and from a FileHandle, leaving both open', async () => {
    const fd = fs.openSync(ctx.file('data.bin'), 'r');
    const fh = await fs.promises.open(ctx.file('sub/page.html'), 'r');
    try {
      const [a] = await one((req, res) => sendFile(req, res, fd, { client: ctx.client }),
        { headers: { range: 'bytes=1-100' } });
      assert.equal(a.status, 206);
      assert.equal(a.headers['content-type'], 'application/octet-stream');
      assert.equal(sha256(a.body), sha256(ctx.tree.files['data.bin'].subarray(1, 101)));
      const [b] = await one((req, res) => sendFile(req, res, fh, { client: ctx.client }));
      assert.equal(b.status, 200);
      assert.equal(sha256(b.body), sha256(ctx.tree.files['sub/page.html']));
      assert.ok(fs.fstatSync(fd).isFile());
      assert.ok((await fh.stat()).isFile());
    } finally {
      fs.closeSync(fd);
      await fh.close();
    }
  });

  it('answers 404 for a missing file or a directory, 403 for an unreadable one', async () => {
    const [r, o] = await one((req, res) =>
      sendFile(req, res, ctx.file('nope.txt'), { client: ctx.client }));
    assert.equal(r.status, 404);
    assert.equal(o.value.statusCode, 404);
    assert.equal(o.value.error.code, 'ENOENT');
    const [d] = await one((req, res) =>
      sendFile(req, res, ctx.file('sub'), { client: ctx.client }));
    assert.equal(d.status, 404);
    if (process.getuid() !== 0) {
      const p = ctx.file('locked.txt');
      fs.writeFileSync(p, 'x', { mode: 0o000 });
      const [l] = await one((req, res) => sendFile(req, res, p, { client: ctx.client }));
      assert.equal(l.status, 403);
    }
    const [f] = await one((req, res) =>
      sendFile(req, res, '/dev/null', { client: ctx.client }));
    assert.equal(f.status, 404);
  });

  it('rejects instead with handleErrors: false, writing nothing', async () => {
    const [r, o] = await one((req, res) =>
      sendFile(req, res, ctx.file('nope.txt'), { client: ctx.client, handleErrors: false }));
    assert.equal(r.status, 599);
    assert.equal(o.error.status, 404);
    assert.equal(o.error.code, 'ENOENT');
  });

  it('rejects bad arguments with a clear error, leaking nothing', async () => {
    const bad = [
      [(req, res) => sendFile(req, res, 1.5, { client: ctx.client }), 'ERR_INVALID_ARG_VALUE'],
      [(req, res) => sendFile(req, res, -1, { client: ctx.client }), 'ERR_INVALID_ARG_VALUE'],
      [(req, res) => sendFile(req, res, {}, { client: ctx.client }), 'ERR_INVALID_ARG_TYPE'],
      [(req, res) => sendFile(req, res, 'a\0b', { client: ctx.client }),
        'ERR_INVALID_ARG_VALUE'],
      [(req, res) => sendFile(req, res, ctx.file('small.txt'), { client: {} }),
        'ERR_INVALID_ARG_TYPE'],
      [(req, res) => sendFile(req, res, ctx.file('small.txt'), { client: ctx.client,
        maxAge: -1 }), 'ERR_INVALID_ARG_VALUE'],
      [(req, res) => sendFile(req, res, ctx.file('small.txt'), { client: ctx.client,
        etag: 'yes' }), 'ERR_INVALID_ARG_TYPE'],
      [(req, res) => sendFile(null, res, ctx.file('small.txt')), 'ERR_INVALID_ARG_TYPE'],
      [(req, res) => sendFile(req, {}, ctx.file('small.txt')), 'ERR_INVALID_ARG_TYPE'],
      [(req, res) => {
        res.writeHead(200).flushHeaders();
        return sendFile(req, res, ctx.file('small.txt'), { client: ctx.client });
      }, 'ERR_HTTP_HEADERS_SENT'],
    ];
    for (const [fn, code] of bad) {
      const [, o] = await one(fn);
      assert.ok(o.error, `${code}: rejected`);
      assert.equal(o.error.code, code);
    }
    assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
  });

  it('keeps the server\'s idle timeout from cutting a body the daemon is sending', async () => {
    const net = require('node:net');
    const big = ctx.file('slow.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 64 << 20);
    const saved = ctx.server.timeout;
    ctx.server.timeout = 300;
    handler = (req, res) => sendFile(req, res, big, { client: ctx.client });
    try {
      const s = net.connect(ctx.port, '127.0.0.1');
      s.write('GET /slow HTTP/1.1\r\nHost: t\r\n\r\n');
      let buf = Buffer.alloc(0);
      let paused = false;
      const total = await new Promise((resolve, reject) => {
        s.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1)
            return;
          if (!paused) {
            /* The reader stalls for longer than the server's idle timeout. */
            paused = true;
            s.pause();
            setTimeout(() => s.resume(), 1500);
          }
          const len = Number(/content-length: (\d+)/i.exec(buf.subarray(0, end))[1]);
          if (buf.length - end - 4 >= len)
            resolve(buf.length - end - 4);
        });
        s.on('close', () => reject(new Error(`cut after ${buf.length} bytes`)));
        s.on('error', reject);
      });
      assert.equal(total, 64 << 20);
      s.destroy();
    } finally {
      ctx.server.timeout = saved;
      fs.unlinkSync(big);
    }
  });

  it('stops the transfer when the signal aborts', async () => {
    const ac = new AbortController();
    const big = ctx.file('big.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 512 << 20);
    const net = require('node:net');
    let outcome;
    const done = new Promise((resolve) => {
      handler = (req, res) => {
        sendFile(req, res, big, { client: ctx.client, signal: ac.signal }).then((v) => {
          outcome = v;
          resolve();
        });
      };
    });
    const s = net.connect(ctx.port, '127.0.0.1');
    s.write('GET /big HTTP/1.1\r\nHost: t\r\n\r\n');
    let got = 0;
    await new Promise((resolve) => {
      s.on('data', (d) => {
        got += d.length;
        if (got > 1 << 20) {
          s.pause();
          resolve();
        }
      });
    });
    ac.abort();
    await done;
    s.destroy();
    assert.equal(outcome.aborted, true);
    assert.ok(outcome.bytesSent < 512 << 20);
    assert.ok(outcome.error);
    fs.unlinkSync(big);
    assert.equal(await waitFor(() => ctx.daemon.fds(), ctx.daemonFds), ctx.daemonFds);
    assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
  });
});

describe('sendFile over TLS and HTTP/2: never through the daemon', { timeout: 300000 }, () => {
  const https = require('node:https');
  const http2 = require('node:http2');
  const sendfiled = require('..');
  const ctx = {};
  const tlsOpts = {
    key: fs.readFileSync(path.join(__dirname, 'tls-key.pem')),
    cert: fs.readFileSync(path.join(__dirname, 'tls-cert.pem')),
  };

  before(async () => {
    ctx.base = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-tls-'));
    ctx.tree = makeTree(ctx.base);
    ctx.daemon = await new Daemon().start();
    ctx.client = makeClient(ctx.daemon);
    ctx.results = [];
    const handler = (req, res) => {
      sendFile(req, res, path.join(ctx.tree.root, 'data.bin'), { client: ctx.client })
        .then((r) => ctx.results.push(r));
    };
    ctx.https = https.createServer(tlsOpts, handler);
    ctx.h2 = http2.createSecureServer(tlsOpts, handler);
    ctx.httpsPort = await listen(ctx.https);
    ctx.h2Port = await listen(ctx.h2);
  });

  after(async () => {
    if (ctx.https)
      await closeServer(ctx.https);
    if (ctx.h2)
      await new Promise((resolve) => ctx.h2.close(resolve));
    if (ctx.client)
      ctx.client.close();
    if (ctx.daemon)
      await ctx.daemon.stop();
    if (ctx.base)
      fs.rmSync(ctx.base, { recursive: true, force: true });
  });

  function httpsGet(headers) {
    return new Promise((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: ctx.httpsPort, path: '/', headers, agent: false,
        rejectUnauthorized: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
  }

  function h2Get(headers) {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`https://127.0.0.1:${ctx.h2Port}`,
        { rejectUnauthorized: false });
      session.on('error', reject);
      const req = session.request({ ':path': '/', ...headers });
      const chunks = [];
      let head;
      req.on('response', (h) => { head = h; });
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        session.close();
        resolve({ status: head[':status'], headers: head, body: Buffer.concat(chunks) });
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('sends an https body in this process, byte-exact', async () => {
    const data = ctx.tree.files['data.bin'];
    const c0 = counters(ctx.daemon);
    const tls0 = sendfiled.stats().fallbackTls;
    const a = await httpsGet({});
    assert.equal(a.status, 200);
    assert.equal(sha256(a.body), sha256(data));
    const b = await httpsGet({ range: 'bytes=1000-' });
    assert.equal(b.status, 206);
    assert.equal(sha256(b.body), sha256(data.subarray(1000)));
    assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
    assert.equal(sendfiled.stats().fallbackTls - tls0, 2);
    assert.ok(ctx.results.slice(-2).every((r) => !r.aborted && r.method !== 'sendfile'));
  });

  it('streams an HTTP/2 body, with ranges', async () => {
    const data = ctx.tree.files['data.bin'];
    const c0 = counters(ctx.daemon);
    const a = await h2Get({});
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-length'], String(data.length));
    assert.equal(sha256(a.body), sha256(data));
    const b = await h2Get({ range: 'bytes=-100' });
    assert.equal(b.status, 206);
    assert.equal(sha256(b.body), sha256(data.subarray(data.length - 100)));
    assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
    assert.deepEqual(ctx.results.slice(-2).map((r) => [r.method, r.aborted]),
      [['stream', false], ['stream', false]]);
  });
});
