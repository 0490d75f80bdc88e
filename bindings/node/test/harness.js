'use strict';
// What the client tests share: a real sendfiled daemon on a socket in a
// temporary directory ($SENDFILED_BIN, or the build tree above), its counters
// (sendfilectl stats --json), TCP loopback receivers that hash what they
// read, files of known contents, file positions and descriptor counts as
// /proc shows them.

const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const PKG = path.resolve(__dirname, '..');
const MiB = 1 << 20;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// build*/<rel> in a directory above the package ("build" first).
function findInBuild(rel) {
  for (let d = PKG; ; d = path.dirname(d)) {
    let names = [];
    try {
      names = fs.readdirSync(d).filter((n) => n.startsWith('build'))
        .sort((a, b) => (a !== 'build') - (b !== 'build') || (a < b ? -1 : 1));
    } catch {
      names = [];
    }
    for (const n of names) {
      const p = path.join(d, n, rel);
      if (fs.existsSync(p)) return p;
    }
    if (path.dirname(d) === d) return null;
  }
}

function daemonBinary() {
  const p = process.env.SENDFILED_BIN || findInBuild('daemon/sendfiled');
  if (!p || !fs.existsSync(p)) {
    throw new Error('the sendfiled daemon was not found: set SENDFILED_BIN or build it ' +
                    '(meson setup build && ninja -C build)');
  }
  return p;
}

function ctlBinary() {
  if (process.env.SENDFILED_CTL) return process.env.SENDFILED_CTL;
  const p = path.join(path.dirname(path.dirname(daemonBinary())), 'tools', 'sendfilectl');
  return fs.existsSync(p) ? p : findInBuild('tools/sendfilectl');
}

function tmpdir(prefix = 'sfd-node-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

class Daemon {
  constructor(dir = tmpdir(), args = []) {
    this.dir = dir;
    this.path = path.join(dir, 'sendfiled.sock');
    this.args = args;
    this.proc = null;
    this.exited = null;
  }

  async start() {
    // No control-listener probe: it briefly holds two sockets, which would
    // disturb the exact descriptor counts compared.
    this.proc = spawn(daemonBinary(), ['--socket', this.path, '--control-probe-ms', '0',
                                       '--log-level', 'warning', ...this.args],
                      { stdio: ['ignore', 'ignore', 'inherit'] });
    this.exited = new Promise((r) => this.proc.once('exit', (code, sig) => r({ code, sig })));
    const end = Date.now() + 30000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`sendfiled exited: ${this.proc.exitCode}`);
      if (await canConnect(this.path)) return this;
      if (Date.now() > end) throw new Error('sendfiled did not start');
      await sleep(20);
    }
  }

  get pid() {
    return this.proc.pid;
  }

  alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  fdCount() {
    return fs.readdirSync(`/proc/${this.pid}/fd`).length;
  }

  // Wait until the daemon holds @n descriptors (it closes a request's a
  // moment after its reply); return the count seen last.
  async waitFdCount(n, ms = 20000) {
    const end = Date.now() + ms;
    let c = this.fdCount();
    while (c !== n && Date.now() < end) {
      await sleep(20);
      c = this.fdCount();
    }
    return c;
  }

  // The daemon's own counters, over its control plane.
  stats() {
    const out = execFileSync(ctlBinary(), ['--socket', this.path, 'stats', '--json'],
                             { encoding: 'utf8', timeout: 30000 });
    return JSON.parse(out);
  }

  signal(sig) {
    if (this.alive()) this.proc.kill(sig);
  }

  async stop(sig = 'SIGTERM') {
    if (this.alive()) {
      this.proc.kill(sig);
      await this.exited;
    }
  }
}

function canConnect(p) {
  return new Promise((resolve) => {
    // SOCK_SEQPACKET is not in node:net; a stream connect to a seqpacket
    // listener fails with EPROTOTYPE once it exists and listens.
    if (!fs.existsSync(p)) {
      resolve(false);
      return;
    }
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', (e) => resolve(e.code === 'EPROTOTYPE'));
  });
}

// ---- files -------------------------------------------------------------------

// A file of @size pseudo-random bytes in @dir; returns { path, data }.
function makeFile(dir, name, size, seed = 1) {
  const data = Buffer.alloc(size);
  let block = crypto.createHash('sha256').update(`${name}:${seed}`).digest();
  let x = block.readUInt32LE(0) | 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    data.writeInt32LE(x | 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) data[i] = i & 0xff;
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return { path: p, data };
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// The file position of @fd, as the kernel reports it.
function position(fd) {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  return Number(/^pos:\s+(\d+)/m.exec(info)[1]);
}

// The descriptors this process holds (numbers and targets).
function fdSet(pid = 'self') {
  const out = new Map();
  for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(n, fs.readlinkSync(`/proc/${pid}/fd/${n}`));
    } catch {
      // the directory listing's own descriptor
    }
  }
  return out;
}

// Wait until this process holds exactly the descriptors of @before again
// (sockets are closed by libuv a turn after destroy()); fail otherwise.
async function assertFdsBack(before, ms = 20000) {
  const end = Date.now() + ms;
  let now = fdSet();
  const same = () => now.size === before.size &&
    [...before].every(([n, t]) => now.get(n) === t);
  while (!same() && Date.now() < end) {
    await sleep(20);
    now = fdSet();
  }
  if (!same()) {
    const extra = [...now].filter(([n]) => !before.has(n));
    const gone = [...before].filter(([n]) => !now.has(n));
    assert.fail(`descriptors changed: new ${JSON.stringify(extra)}, gone ${JSON.stringify(gone)}`);
  }
}

// ---- receivers -----------------------------------------------------------------

// A TCP loopback connection: `socket` is ours (a net.Socket), the receiver
// reads the other end, hashing and counting. `paused` leaves it unread until
// resume(); `resetAfter` destroys it with a reset after that many bytes.
class Receiver {
  static async open({ paused = false, resetAfter = 0 } = {}) {
    const r = new Receiver();
    const server = net.createServer();
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    const accepted = new Promise((res) => server.once('connection', res));
    r.socket = net.connect(server.address().port, '127.0.0.1');
    await new Promise((res, rej) => {
      r.socket.once('connect', res);
      r.socket.once('error', rej);
    });
    r.peer = await accepted;
    server.close();
    r.hash = crypto.createHash('sha256');
    r.bytes = 0;
    r.chunks = [];
    r.keep = false;
    r.pauseAt = 0;
    r.onPause = () => {};
    r.ended = new Promise((res) => {
      r.peer.on('end', () => res());
      r.peer.on('close', () => res());
    });
    r.closed = Promise.all([r.socket, r.peer].map((s) => new Promise((res) => {
      if (s.closed) res();
      else s.once('close', res);
    })));
    r.peer.on('error', () => {});
    r.socket.on('error', () => {});
    r.peer.on('data', (d) => {
      r.bytes += d.length;
      r.hash.update(d);
      if (r.keep) r.chunks.push(d);
      if (r.pauseAt && r.bytes >= r.pauseAt) {
        r.pauseAt = 0;
        r.peer.pause();
        r.onPause();
      }
      if (resetAfter && r.bytes >= resetAfter) r.peer.resetAndDestroy();
    });
    if (paused) r.peer.pause();
    return r;
  }

  resume() {
    this.peer.resume();
  }

  // Read until at least @n bytes have come, then pause again.
  readUntil(n) {
    return new Promise((resolve) => {
      this.pauseAt = n;
      this.onPause = resolve;
      this.peer.resume();
    });
  }

  // End our side and wait for the receiver to see the end: { bytes, sha256 }.
  async finish() {
    if (!this.socket.destroyed) this.socket.end();
    this.peer.resume();
    await this.ended;
    const out = { bytes: this.bytes, sha256: this.hash.digest('hex') };
    this.peer.destroy();
    this.socket.destroy();
    await this.closed;
    return out;
  }

  async destroy() {
    this.socket.destroy();
    this.peer.destroy();
    await this.closed;
  }
}

module.exports = {
  MiB, sleep, Daemon, makeFile, sha256, position, fdSet, assertFdsBack, Receiver, tmpdir,
  findInBuild, daemonBinary, ctlBinary,
};
