'use strict';
// The conformance runner of the Node.js binding (see ../README.md).
//
// Each case goes through the public API, client.sendfile(socket, fd, {offset,
// count, fallback, signal}), with an AbortSignal for a cancel mid-transfer. It
// reports what it saw and judges nothing.

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { spawn, execFileSync } = require('node:child_process');

const sendfiled = require('../../../bindings/node');

const TMP = process.env.CONFORMANCE_TMP || '/tmp';
const STATUS_OF_CODE = {
  ERR_SENDFILED_NOT_AVAILABLE: 'not_available',
  ERR_SENDFILED_INVALID_ARGUMENT: 'invalid_argument',
  ERR_SENDFILED_PEER_CLOSED: 'peer_closed',
  ERR_SENDFILED_IO: 'io_error',
  ERR_SENDFILED_CANCELLED: 'cancelled',
  ERR_SENDFILED_LIMIT: 'limit',
  ERR_SENDFILED_PROTOCOL: 'protocol',
  ERR_SENDFILED_SHUTTING_DOWN: 'shutting_down',
  ERR_SENDFILED_PERMISSION_DENIED: 'permission_denied',
  ABORT_ERR: 'cancelled',
};

function content(start, n) {
  const b = Buffer.allocUnsafe(n);
  for (let j = 0; j < n; j++) {
    const i = start + j;
    b[j] = (i * 31 + Math.floor(i / 4096)) & 0xff;
  }
  return b;
}

function parse(line) {
  const k = Object.fromEntries(line.trim().split(/\s+/).map((f) => {
    const at = f.indexOf('=');
    return [f.slice(0, at), f.slice(at + 1)];
  }));
  for (const key of ['size', 'offset', 'at']) k[key] = Number(k[key]);
  k.count = k.count === '-' ? null : Number(k.count);
  k.fallback = k.fallback === '1';
  return k;
}

// The reading end: counts and hashes; with an action, stops at `at` bytes.
class Receiver {
  constructor(k) {
    this.k = k;
    this.len = 0;
    this.hash = crypto.createHash('sha256');
    this.reached = new Promise((resolve) => { this.onReached = resolve; });
    this.done = null;
  }

  attach(stream) {
    this.stream = stream;
    let stopAt = this.k.action !== 'none';
    this.done = new Promise((resolve) => {
      stream.on('data', (chunk) => {
        this.hash.update(chunk);
        this.len += chunk.length;
        if (stopAt && this.len >= this.k.at) {
          stopAt = false;
          if (this.k.action === 'reset') {
            stream.resetAndDestroy();
          } else {
            stream.pause();
          }
          this.onReached();
        }
      });
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', resolve);
    });
  }

  resume() {
    if (this.stream && !this.stream.destroyed) this.stream.resume();
  }
}

async function streamPair(k) {
  const server = net.createServer();
  const where = k.dest === 'unix' ? path.join(TMP, `sock-${k.name}`) : 0;
  await new Promise((resolve) => server.listen(where, '127.0.0.1', resolve));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const address = k.dest === 'unix' ? { path: where } : { port: server.address().port, host: '127.0.0.1' };
  const client = net.connect(address);
  await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
  const peer = await accepted;
  server.close();
  if (k.dest === 'unix') fs.rmSync(where, { force: true });
  return [client, peer];
}

async function makeSource(k) {
  if (k.source === 'file') {
    const p = path.join(TMP, `src-${k.name}`);
    const fd = fs.openSync(p, 'w');
    for (let start = 0; start < k.size; start += 1 << 20) {
      fs.writeSync(fd, content(start, Math.min(1 << 20, k.size - start)));
    }
    fs.closeSync(fd);
    const src = fs.openSync(p, 'r');
    fs.unlinkSync(p);
    return { fd: src };
  }
  if (k.source === 'pipe') {
    // Node makes no anonymous pipes: a FIFO, filled by a child process. The
    // blocking open returns once the child has opened the other end.
    const p = path.join(TMP, `fifo-${k.name}`);
    execFileSync('mkfifo', [p]);
    const script = `const fs=require('fs');const n=${k.size};const b=Buffer.allocUnsafe(n);` +
      'for(let i=0;i<n;i++)b[i]=(i*31+Math.floor(i/4096))&255;' +
      `try{fs.writeFileSync(${JSON.stringify(p)},b)}catch(e){}`;
    const writer = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const exited = new Promise((resolve) => writer.on('exit', resolve));
    const src = fs.openSync(p, 'r');
    fs.unlinkSync(p);
    return { fd: src, exited, fifo: true };
  }
  return { fd: fs.openSync(k.path, 'r') };
}

function position(fd) {
  if (fs.fstatSync(fd).isFIFO()) return null;
  const m = /^pos:\s+(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return m ? Number(m[1]) : null;
}

// A ping case: who answers, through client.ping().
async function runPing(client, k) {
  const rep = { client: 'node', case: k.name, error: '' };
  try {
    const info = await client.ping({ timeout: 10000 });
    Object.assign(rep, { status: 'ok', protocol_version: info.protocolVersion,
                         daemon_version: info.daemonVersion, features: info.features });
  } catch (e) {
    rep.status = STATUS_OF_CODE[e.code] || `error:${e.code}`;
    rep.error = `${e.name}: ${e.message}`;
  }
  return rep;
}

async function runCase(client, k) {
  if (k.op === 'ping') return runPing(client, k);
  const rep = { client: 'node', case: k.name };
  const src = await makeSource(k);
  const rcv = new Receiver(k);
  let dst;
  let dstFd = null;
  let appendPath = null;
  if (k.dest === 'tcp' || k.dest === 'unix') {
    const [c, peer] = await streamPair(k);
    dst = c;
    rcv.attach(peer);
  } else if (k.dest === 'pipe') {
    const p = path.join(TMP, `dfifo-${k.name}`);
    execFileSync('mkfifo', [p]);
    const r = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    dstFd = fs.openSync(p, 'w');
    fs.unlinkSync(p);
    // libuv reads a non-blocking FIFO as a stream; fs streams would meet EAGAIN.
    rcv.attach(new net.Socket({ fd: r, readable: true, writable: false }));
    dst = dstFd;
  } else {
    appendPath = path.join(TMP, `dst-${k.name}`);
    dstFd = fs.openSync(appendPath, 'a');
    dst = dstFd;
  }

  const ac = new AbortController();
  if (k.action === 'cancel') rcv.reached.then(() => ac.abort());
  Object.assign(rep, { status: 'ok', final_offset: null, error: '' });
  try {
    const res = await client.sendfile(dst, src.fd, {
      offset: k.offset, count: k.count, fallback: k.fallback, signal: ac.signal,
    });
    Object.assign(rep, { bytes: res.bytesSent, final_offset: res.finalOffset, method: res.method });
  } catch (e) {
    rep.status = STATUS_OF_CODE[e.code] || `error:${e.code}`;
    rep.bytes = typeof e.bytesSent === 'number' ? e.bytesSent : null;
    rep.final_offset = typeof e.finalOffset === 'number' ? e.finalOffset : null;
    rep.method = e.method || null;
    rep.error = `${e.name}: ${e.message}`;
  }
  if (rep.method === 'none') rep.method = null;
  rep.position = position(src.fd);

  if (typeof dst === 'number') fs.closeSync(dst);
  else dst.end();
  rcv.resume();
  if (rcv.done) await rcv.done;
  if (appendPath) {
    const data = fs.readFileSync(appendPath);
    rcv.hash.update(data);
    rcv.len = data.length;
    fs.rmSync(appendPath);
  }
  fs.closeSync(src.fd);
  if (src.exited) await src.exited;
  if (dst.destroy) dst.destroy();
  rep.received_len = rcv.len;
  rep.received_sha256 = rcv.hash.digest('hex');
  return rep;
}

async function main() {
  const client = new sendfiled.Client({ requireDaemon: true });
  const rl = readline.createInterface({ input: process.stdin });
  const lines = [];
  for await (const line of rl) if (line.trim()) lines.push(line);
  for (const line of lines) {
    process.stdout.write(JSON.stringify(await runCase(client, parse(line))) + '\n');
  }
  client.close();
}

main().catch((e) => { console.error(e); process.exit(2); });
