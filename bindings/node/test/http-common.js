'use strict';

/*
 * What the HTTP tests share: a daemon of their own (from the build tree, or
 * $SENDFILED_BIN), its counters (sendfilectl stats --json), descriptor
 * counts, files with known contents, an HTTP client, a raw pipelining
 * client, and the scenarios every server (node:http, Express, Fastify) must
 * pass.
 */

const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const TOP = path.resolve(__dirname, '..', '..', '..');
const MiB = 1 << 20;

function daemonBinary() {
  if (process.env.SENDFILED_BIN)
    return process.env.SENDFILED_BIN;
  for (const b of ['build', 'build-release']) {
    const p = path.join(TOP, b, 'daemon', 'sendfiled');
    if (fs.existsSync(p))
      return p;
  }
  throw new Error('no daemon: build it (meson setup build && ninja -C build) or set SENDFILED_BIN');
}

function ctlBinary(daemonBin) {
  if (process.env.SENDFILED_CTL)
    return process.env.SENDFILED_CTL;
  const p = path.join(path.dirname(path.dirname(daemonBin)), 'tools', 'sendfilectl');
  if (!fs.existsSync(p))
    throw new Error(`no sendfilectl beside the daemon: ${p}`);
  return p;
}

function fdCount(pid = 'self') {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls until @fn() returns @want or the time is up; returns the last value. */
async function waitFor(fn, want, ms = 20000) {
  const end = Date.now() + ms;
  let v = fn();
  while (v !== want && Date.now() < end) {
    await sleep(25);
    v = fn();
  }
  return v;
}

class Daemon {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-'));
    this.path = path.join(this.dir, 'sendfiled.sock');
    this.bin = daemonBinary();
    this.ctl = ctlBinary(this.bin);
    this.proc = null;
  }

  async start() {
    this.proc = spawn(this.bin, ['--socket', this.path, '--log-level', 'warning'],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    const end = Date.now() + 20000;
    while (!this.stats(true)) {
      if (this.proc.exitCode !== null)
        throw new Error(`the daemon exited with ${this.proc.exitCode}`);
      if (Date.now() > end)
        throw new Error('the daemon did not come up');
      await sleep(50);
    }
    return this;
  }

  get pid() {
    return this.proc.pid;
  }

  /* The daemon's own counters, over its control plane. */
  stats(quiet = false) {
    try {
      return JSON.parse(execFileSync(this.ctl, ['--socket', this.path, 'stats', '--json'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', quiet ? 'ignore' : 'inherit'],
          timeout: 20000 }));
    } catch (err) {
      if (quiet)
        return null;
      throw err;
    }
  }

  fds() {
    return fdCount(this.pid);
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/* A client of the package, connected to @daemon, that must not fall back. */
function makeClient(daemon) {
  const { Client } = require('..');
  return new Client({ path: daemon.path, requireDaemon: true });
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/* A file of @size pseudo-random bytes; returns its contents too. */
function makeFile(p, size, seed = 1) {
  const out = Buffer.alloc(size);
  let block = crypto.createHash('sha256').update(String(seed)).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, size - off));
    block = crypto.createHash('sha256').update(block).digest();
  }
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, out);
  return out;
}

/*
 * The tree served in the tests: @root/{data.bin, small.txt, empty.bin,
 * index.html, sub/{index.html, page.html}, noindex/, .hidden, a b.txt}
 * and, beside the root, a secret file that no URL may reach.
 */
function makeTree(base) {
  const root = path.join(base, 'www');
  const files = {
    'data.bin': makeFile(path.join(root, 'data.bin'), 8 * MiB + 123, 1),
    'small.txt': makeFile(path.join(root, 'small.txt'), 5000, 2),
    'empty.bin': makeFile(path.join(root, 'empty.bin'), 0, 3),
    'index.html': makeFile(path.join(root, 'index.html'), 777, 4),
    'sub/index.html': makeFile(path.join(root, 'sub', 'index.html'), 1234, 5),
    'sub/page.html': makeFile(path.join(root, 'sub', 'page.html'), 4321, 6),
    '.hidden': makeFile(path.join(root, '.hidden'), 100, 7),
    'a b.txt': makeFile(path.join(root, 'a b.txt'), 300, 8),
  };
  fs.mkdirSync(path.join(root, 'noindex'), { recursive: true });
  const secret = makeFile(path.join(base, 'secret.txt'), 64, 9);
  return { root, files, secret, secretPath: path.join(base, 'secret.txt') };
}

/* One request with node:http; the whole body is collected. */
function request(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: opts.method || 'GET',
      path: opts.path || '/',
      headers: opts.headers || {},
      agent: opts.agent || false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(chunks),
        socket: req.socket,
        reused: req.reusedSocket,
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60000, () => req.destroy(new Error('request timed out')));
    req.end(opts.body);
  });
}

/*
 * Parses HTTP/1.1 responses from @buf (responses to @methods, in order):
 * returns the complete ones and the bytes left over.
 */
function parseResponses(buf, methods) {
  const out = [];
  let off = 0;
  while (out.length < methods.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end === -1)
      break;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const bodyless = methods[out.length] === 'HEAD' || status === 304 || status === 204;
    const len = bodyless ? 0 : Number(headers['content-length']);
    assert.ok(Number.isInteger(len), `no Content-Length in ${head[0]}`);
    if (buf.length < end + 4 + len)
      break;
    out.push({ status, headers, body: buf.subarray(end + 4, end + 4 + len) });
    off = end + 4 + len;
  }
  return { responses: out, rest: buf.subarray(off) };
}

/*
 * Writes @requests (raw request texts) on one TCP connection in a single
 * write, before any response, and reads the responses.
 */
function pipelined(port, requests) {
  const methods = requests.map((r) => r.split(' ')[0]);
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`pipelined responses timed out (${buf.length} bytes read)`));
    }, 60000);
    s.on('connect', () => s.write(requests.join('')));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const { responses, rest } = parseResponses(buf, methods);
      if (responses.length === requests.length) {
        clearTimeout(timer);
        s.end();
        resolve({ responses, rest });
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`the connection closed after ${buf.length} bytes`));
    });
  });
}

function get(p, headers = {}) {
  const h = Object.entries(Object.assign({ Host: 'test' }, headers))
    .map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `GET ${p} HTTP/1.1\r\n${h}\r\n`;
}

/* Counters of the daemon before/after: bytes, transfers with sendfile(2), ok replies. */
function counters(daemon) {
  const s = daemon.stats();
  return { bytes: s.bytes_sent, sendfile: s.by_method.sendfile, ok: s.by_status.ok };
}

function delta(a, b) {
  return { bytes: b.bytes - a.bytes, sendfile: b.sendfile - a.sendfile, ok: b.ok - a.ok };
}

/*
 * The scenarios every server must pass. @name names the suite; @start({
 * root, files, client }) starts a server that maps the URL /NAME to the file
 * NAME under root, and returns { port, close(), results? }.
 */
function commonTests(name, start) {
  const { describe, it, before, after } = require('node:test');

  describe(name, { timeout: 300000 }, () => {
    const ctx = {};

    before(async () => {
      ctx.base = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-tree-'));
      ctx.tree = makeTree(ctx.base);
      ctx.files = ctx.tree.files;
      ctx.size = ctx.files['data.bin'].length;
      ctx.big = path.join(ctx.tree.root, 'big.bin');
      fs.writeFileSync(ctx.big, '');
      fs.truncateSync(ctx.big, 256 * MiB);
      ctx.daemon = await new Daemon().start();
      ctx.client = makeClient(ctx.daemon);
      ctx.server = await start({ root: ctx.tree.root, files: ctx.files, client: ctx.client });
      ctx.port = ctx.server.port;
      /* A first request connects the client to the daemon: the baselines come after it. */
      const r = await request(ctx.port, { path: '/small.txt' });
      assert.equal(r.status, 200);
      await sleep(300);
      ctx.ownFds = fdCount();
      ctx.daemonFds = ctx.daemon.fds();
    });

    after(async () => {
      if (ctx.server)
        await ctx.server.close();
      if (ctx.client)
        ctx.client.close();
      if (ctx.daemon)
        await ctx.daemon.stop();
      if (ctx.base)
        fs.rmSync(ctx.base, { recursive: true, force: true });
    });

    it('sends a whole file: 200, headers, body through the daemon', async () => {
      const c0 = counters(ctx.daemon);
      const r = await request(ctx.port, { path: '/data.bin' });
      const c1 = counters(ctx.daemon);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(ctx.size));
      assert.equal(r.headers['content-type'], 'application/octet-stream');
      assert.equal(r.headers['accept-ranges'], 'bytes');
      assert.match(r.headers.etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
      assert.equal(r.headers['last-modified'],
        fs.statSync(path.join(ctx.tree.root, 'data.bin')).mtime.toUTCString());
      assert.equal(r.body.length, ctx.size);
      assert.equal(sha256(r.body), sha256(ctx.files['data.bin']));
      assert.deepEqual(delta(c0, c1), { bytes: ctx.size, sendfile: 1, ok: 1 });
    });

    it('sends one byte range: bytes=a-b, a-, -n', async () => {
      const data = ctx.files['data.bin'];
      const size = ctx.size;
      const cases = [
        ['bytes=100-199', 100, 199],
        ['bytes=1000000-', 1000000, size - 1],
        ['bytes=-5000', size - 5000, size - 1],
        ['bytes=0-0', 0, 0],
        [`bytes=5-${size * 2}`, 5, size - 1],
        ['bytes=0-99,50-199', 0, 199],
      ];
      const c0 = counters(ctx.daemon);
      let total = 0;
      for (const [range, a, b] of cases) {
        const r = await request(ctx.port, { path: '/data.bin', headers: { range } });
        assert.equal(r.status, 206, range);
        assert.equal(r.headers['content-range'], `bytes ${a}-${b}/${size}`, range);
        assert.equal(r.headers['content-length'], String(b - a + 1), range);
        assert.equal(sha256(r.body), sha256(data.subarray(a, b + 1)), range);
        total += b - a + 1;
      }
      const c1 = counters(ctx.daemon);
      assert.deepEqual(delta(c0, c1), { bytes: total, sendfile: cases.length, ok: cases.length });
    });

    it('serves the whole file for several ranges or a Range it ignores', async () => {
      for (const range of ['bytes=0-9,100-109', 'bytes=abc', 'items=0-5', 'bytes=9-5']) {
        const r = await request(ctx.port, { path: '/data.bin', headers: { range } });
        assert.equal(r.status, 200, range);
        assert.equal(r.headers['content-range'], undefined, range);
        assert.equal(sha256(r.body), sha256(ctx.files['data.bin']), range);
      }
    });

    it('answers 416 to an unsatisfiable range', async () => {
      const c0 = counters(ctx.daemon);
      for (const range of [`bytes=${ctx.size}-`, `bytes=${ctx.size + 10}-${ctx.size + 20}`,
        'bytes=-0']) {
        const r = await request(ctx.port, { path: '/data.bin', headers: { range } });
        assert.equal(r.status, 416, range);
        assert.equal(r.headers['content-range'], `bytes */${ctx.size}`);
        assert.equal(r.body.length, 0);
      }
      assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
    });

    it('answers HEAD with the headers of GET and no body', async () => {
      const c0 = counters(ctx.daemon);
      const r = await request(ctx.port, { path: '/data.bin', method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(ctx.size));
      assert.equal(r.body.length, 0);
      const p = await request(ctx.port, { path: '/data.bin', method: 'HEAD',
        headers: { range: 'bytes=10-19' } });
      assert.equal(p.status, 206);
      assert.equal(p.headers['content-length'], '10');
      assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
    });

    it('answers 304 to If-None-Match and If-Modified-Since, 200 when stale', async () => {
      const first = await request(ctx.port, { path: '/small.txt' });
      const { etag } = first.headers;
      const lm = first.headers['last-modified'];
      const c0 = counters(ctx.daemon);
      for (const headers of [{ 'if-none-match': etag }, { 'if-none-match': `"x", W/${etag}` },
        { 'if-modified-since': lm }, { 'if-none-match': '*' }]) {
        const r = await request(ctx.port, { path: '/small.txt', headers });
        assert.equal(r.status, 304, JSON.stringify(headers));
        assert.equal(r.body.length, 0);
        assert.equal(r.headers.etag, etag);
        assert.equal(r.headers['content-length'], undefined);
      }
      assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
      const old = new Date(Date.parse(lm) - 3600e3).toUTCString();
      for (const headers of [{ 'if-none-match': '"other"' }, { 'if-modified-since': old },
        { 'if-none-match': '"other"', 'if-modified-since': lm },
        { 'if-modified-since': lm, 'cache-control': 'no-cache' }]) {
        const r = await request(ctx.port, { path: '/small.txt', headers });
        assert.equal(r.status, 200, JSON.stringify(headers));
        assert.equal(sha256(r.body), sha256(ctx.files['small.txt']));
      }
    });

    it('applies Range only when If-Range matches; 412 when If-Match fails', async () => {
      const { etag } = (await request(ctx.port, { path: '/small.txt', method: 'HEAD' })).headers;
      const lm = (await request(ctx.port, { path: '/small.txt', method: 'HEAD' }))
        .headers['last-modified'];
      const small = ctx.files['small.txt'];
      for (const ifRange of [etag, lm]) {
        const r = await request(ctx.port, { path: '/small.txt',
          headers: { range: 'bytes=10-19', 'if-range': ifRange } });
        assert.equal(r.status, 206, ifRange);
        assert.equal(sha256(r.body), sha256(small.subarray(10, 20)));
      }
      for (const ifRange of ['"changed"', `W/${etag}`,
        new Date(Date.parse(lm) - 1000).toUTCString()]) {
        const r = await request(ctx.port, { path: '/small.txt',
          headers: { range: 'bytes=10-19', 'if-range': ifRange } });
        assert.equal(r.status, 200, ifRange);
        assert.equal(sha256(r.body), sha256(small));
      }
      const pf = await request(ctx.port, { path: '/small.txt', headers: { 'if-match': '"x"' } });
      assert.equal(pf.status, 412);
      const ok = await request(ctx.port, { path: '/small.txt', headers: { 'if-match': etag } });
      assert.equal(ok.status, 200);
    });

    it('sends an empty file', async () => {
      const r = await request(ctx.port, { path: '/empty.bin' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '0');
      assert.equal(r.body.length, 0);
    });

    it('serves two requests on one keep-alive connection', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const c0 = counters(ctx.daemon);
        const a = await request(ctx.port, { path: '/data.bin', agent });
        const b = await request(ctx.port, { path: '/data.bin', agent,
          headers: { range: 'bytes=7-1000006' } });
        assert.equal(a.status, 200);
        assert.equal(b.status, 206);
        assert.equal(b.reused, true);
        assert.equal(a.socket, b.socket);
        assert.equal(sha256(a.body), sha256(ctx.files['data.bin']));
        assert.equal(sha256(b.body), sha256(ctx.files['data.bin'].subarray(7, 1000007)));
        assert.deepEqual(delta(c0, counters(ctx.daemon)),
          { bytes: ctx.size + 1000000, sendfile: 2, ok: 2 });
      } finally {
        agent.destroy();
      }
    });

    it('answers requests pipelined on one connection, in order', async () => {
      const c0 = counters(ctx.daemon);
      const { responses, rest } = await pipelined(ctx.port, [
        get('/data.bin'),
        get('/small.txt', { Range: 'bytes=100-4099' }),
        'HEAD /data.bin HTTP/1.1\r\nHost: test\r\n\r\n',
        get('/empty.bin'),
        get('/data.bin', { Range: 'bytes=-77' }),
        get('/sub/page.html'),
      ]);
      const data = ctx.files['data.bin'];
      assert.deepEqual(responses.map((r) => r.status), [200, 206, 200, 200, 206, 200]);
      assert.equal(sha256(responses[0].body), sha256(data));
      assert.equal(sha256(responses[1].body), sha256(ctx.files['small.txt'].subarray(100, 4100)));
      assert.equal(responses[2].headers['content-length'], String(ctx.size));
      assert.equal(responses[3].body.length, 0);
      assert.equal(sha256(responses[4].body), sha256(data.subarray(data.length - 77)));
      assert.equal(sha256(responses[5].body), sha256(ctx.files['sub/page.html']));
      assert.equal(rest.length, 0);
      assert.deepEqual(delta(c0, counters(ctx.daemon)),
        { bytes: ctx.size + 4000 + 77 + 4321, sendfile: 4, ok: 4 });
    });

    it('serves many concurrent keep-alive connections, every body exact', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const data = ctx.files['data.bin'];
      const small = ctx.files['small.txt'];
      try {
        const c0 = counters(ctx.daemon);
        const jobs = [];
        let expected = 0;
        for (let i = 0; i < 64; i++) {
          if (i % 4 === 0) {
            expected += data.length;
            jobs.push(request(ctx.port, { path: '/data.bin', agent })
              .then((r) => [r, 200, data]));
          } else if (i % 4 === 1) {
            const a = i * 1000;
            const b = a + 100000 + i;
            expected += b - a + 1;
            jobs.push(request(ctx.port, { path: '/data.bin', agent,
              headers: { range: `bytes=${a}-${b}` } }).then((r) => [r, 206,
              data.subarray(a, b + 1)]));
          } else if (i % 4 === 2) {
            expected += small.length;
            jobs.push(request(ctx.port, { path: '/small.txt', agent })
              .then((r) => [r, 200, small]));
          } else {
            jobs.push(request(ctx.port, { path: '/data.bin', agent, method: 'HEAD' })
              .then((r) => [r, 200, Buffer.alloc(0)]));
          }
        }
        for (const [r, status, want] of await Promise.all(jobs)) {
          assert.equal(r.status, status);
          assert.equal(sha256(r.body), sha256(want));
        }
        const d = delta(c0, counters(ctx.daemon));
        assert.deepEqual(d, { bytes: expected, sendfile: 48, ok: 48 });
      } finally {
        agent.destroy();
      }
    });

    it('survives a client that goes away mid-body, leaking nothing', async () => {
      const s = net.connect(ctx.port, '127.0.0.1');
      await new Promise((resolve, reject) => {
        s.once('connect', resolve);
        s.once('error', reject);
      });
      s.write(get('/big.bin'));
      let got = 0;
      await new Promise((resolve) => {
        s.on('data', (d) => {
          got += d.length;
          if (got > 4 * MiB) {
            s.pause();
            resolve();
          }
        });
      });
      s.resetAndDestroy();
      /* The server keeps serving, and descriptors go back to what they were. */
      const r = await request(ctx.port, { path: '/small.txt' });
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), sha256(ctx.files['small.txt']));
      assert.equal(await waitFor(() => ctx.daemon.fds(), ctx.daemonFds), ctx.daemonFds);
      assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
      if (ctx.server.results) {
        const aborted = () => ctx.server.results.some((x) => x.aborted);
        assert.equal(await waitFor(aborted, true), true, 'the big transfer ended as aborted');
        const last = ctx.server.results.find((x) => x.aborted);
        assert.ok(last.bytesSent < 256 * MiB, `${last.bytesSent} bytes sent`);
        assert.ok(last.error, 'an aborted transfer carries its error');
      }
    });

    it('leaves no descriptor behind', async () => {
      assert.equal(await waitFor(() => ctx.daemon.fds(), ctx.daemonFds), ctx.daemonFds);
      assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
    });
  });
}

module.exports = {
  commonTests,
  MiB,
  Daemon,
  makeClient,
  sha256,
  makeFile,
  makeTree,
  request,
  pipelined,
  parseResponses,
  get,
  counters,
  delta,
  fdCount,
  waitFor,
  sleep,
};
