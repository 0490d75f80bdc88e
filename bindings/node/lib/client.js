'use strict';
// The client: one connection to the daemon, watched on Node's event loop,
// any number of transfers in flight on it.

const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { Writable } = require('node:stream');

const { native } = require('./native');
const { resolveLibrary } = require('./library');
const errors = require('./errors');
const stats = require('./stats');
const { hold } = require('./handover');
const { localSend, fdWriter } = require('./local');

const { STATUS, METHODS } = errors;
const SFD_NO_FALLBACK = 1;

const { EAGAIN, EBADF, ENOENT, ECONNREFUSED, ECONNRESET, EPIPE, ENOTCONN, ETIMEDOUT } =
  require('node:os').constants.errno;
// enum sfd_feature (proto Feature): bit number -> the name every binding uses.
const FEATURES = Object.freeze({ 1: 'deadline', 2: 'rate_limit', 3: 'close_when_done',
                                 4: 'idle_timeout' });
const ESHUTDOWN = 108; // Linux's; not among Node's constants
const SEEK_CUR = 1;

// After a daemon restart, connecting is retried like libsendfiled's blocking
// call does: at most RETRY_MAX attempts, pausing 10, 20, ... up to 50 ms.
const RETRY_MAX = 50;
const RETRY_STEP_MS = 10;
const RETRY_MAX_PAUSE_MS = 50;
// Sending one request again after a restart: at most this many times.
const RESEND_MAX = 3;

// Internal outcomes of a request that the daemon never answered.
class NotSent extends Error {
  constructor(errno) {
    super(`not sent: ${errno}`);
    this.errno = errno;
  }
}
class Lost extends Error {
  constructor(errno) {
    super(`connection lost: ${errno}`);
    this.errno = errno;
  }
}
// The daemon did not take the request and nothing was sent: send in-process.
class NotHandedOver extends Error {
  constructor(reason, error) {
    super(reason);
    this.reason = reason;
    this.error = error;
  }
}

function tell(fd) {
  const r = native().lseek(fd, 0, SEEK_CUR);
  return r < 0 ? null : r;
}

// ---- one connection ---------------------------------------------------------

class Request {
  constructor(conn, args) {
    this.conn = conn;
    this.args = args; // [outFd, inFd, offset, count, flags]
    this.id = 0;
    this.state = 'queued'; // -> 'sent' -> 'done'
    this.cancelWanted = false;
    this.promise = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
  }

  // Ask the daemon to stop; the promise still settles with its answer.
  cancel() {
    if (this.state === 'done' || this.cancelWanted) return;
    this.cancelWanted = true;
    if (this.state === 'queued') {
      this.conn._unqueue(this);
      this.state = 'done';
      this._resolve({ id: 0, status: STATUS.CANCELLED, error: 0, method: 0, flags: 0,
                      bytesSent: 0, finalOffset: this.args[2], message: '' });
      return;
    }
    this.conn._cancel(this);
  }
}

class Conn {
  constructor(lib, socketPath) {
    this.lib = lib;
    this.path = socketPath;
    this.byId = new Map();
    this.queue = []; // Requests and cancels that met -EAGAIN, in order
    this.retiring = false;
    this.dead = 0;
    this.watching = false;
    this.refd = false;
    this.last = null; // the request sent last
    this.unread = false;
    const h = native().open(lib.handle, socketPath, (results, err, writable, unread) =>
      this._onEvent(results, err, writable, unread));
    if (typeof h === 'number') {
      const e = new Error('open');
      e.errno = -h;
      throw e;
    }
    this.handle = h;
  }

  get usable() {
    return !this.dead && !this.retiring;
  }

  request(outFd, inFd, offset, count, flags) {
    const req = new Request(this, [outFd, inFd, offset, count, flags]);
    if (this.queue.length) {
      this.queue.push({ req });
      stats.bump('waitedForRoom');
    } else {
      this._submit(req, true);
    }
    this._watch();
    return req;
  }

  // Return: false when the connection is full (the caller queues).
  _submit(req, queueOnFull) {
    if (this.dead) {
      req.state = 'done';
      req._reject(new NotSent(this.dead));
      return true;
    }
    const r = native().submit(this.handle, ...req.args);
    if (r === -EAGAIN) {
      if (queueOnFull) {
        this.queue.push({ req });
        stats.bump('waitedForRoom');
      }
      return false;
    }
    if (r < 0) {
      req.state = 'done';
      // -EPIPE and -ECONNRESET: the daemon went away; nothing was sent.
      if (r === -EPIPE || r === -ECONNRESET || r === -ENOTCONN) {
        req._reject(new NotSent(-r));
        this.retiring = true;
      } else {
        req._reject(Object.assign(new Error(errors.strerror(-r)),
                                  errors.sysProps(-r, 'sendmsg')));
      }
      return true;
    }
    req.id = r;
    req.state = 'sent';
    this.last = req;
    this.byId.set(r, req);
    stats.bump('inFlight');
    if (req.cancelWanted) this._cancel(req);
    return true;
  }

  _cancel(req) {
    if (this.dead || req.state !== 'sent') return;
    if (this.queue.length) {
      this.queue.push({ cancel: req });
      this._watch();
      return;
    }
    const r = native().cancel(this.handle, req.id);
    if (r === -EAGAIN) {
      this.queue.push({ cancel: req });
      this._watch();
    }
    // -ENOENT: its completion is already here, waiting for dispatch.
  }

  _unqueue(req) {
    this.queue = this.queue.filter((q) => q.req !== req);
    this._watch();
  }

  _flush() {
    while (this.queue.length && !this.dead) {
      const q = this.queue[0];
      if (q.req) {
        if (!this._submit(q.req, false)) break;
      } else if (q.cancel.state === 'sent') {
        if (native().cancel(this.handle, q.cancel.id) === -EAGAIN) break;
      }
      this.queue.shift();
    }
  }

  // Writable is watched only while something waits for room; the loop is
  // kept alive only while something is in flight or waiting.
  _watch() {
    if (this.dead || !this.handle) return;
    const writable = this.queue.length > 0;
    const ref = writable || this.byId.size > 0;
    if (writable === this.watching && ref === this.refd) return;
    this.watching = writable;
    this.refd = ref;
    native().setWatch(this.handle, writable, ref);
  }

  _onEvent(results, err, writable, unread) {
    if (unread) this.unread = true;
    for (const res of results) {
      const req = this.byId.get(res.id);
      if (!req) continue;
      this.byId.delete(res.id);
      stats.bump('inFlight', -1);
      req.state = 'done';
      req._resolve(res);
    }
    if (err < 0) {
      this._lose(-err);
      return;
    }
    if (writable) this._flush();
    this._watch();
    if (this.retiring && this.byId.size === 0 && this.queue.length === 0) this.close();
  }

  _lose(errno) {
    if (this.dead) return;
    // Which requests have an unknown outcome is decided below, per request.
    if (errno === errors.SFD_EOUTCOME_UNKNOWN) errno = ECONNRESET;
    this.dead = errno;
    const inflight = [...this.byId.values()];
    const queued = this.queue.filter((q) => q.req).map((q) => q.req);
    this.byId.clear();
    this.queue = [];
    stats.bump('inFlight', -inflight.length);
    native().close(this.handle);
    for (const req of inflight) {
      req.state = 'done';
      // The daemon closed with the last request unread: it did nothing
      // with it (as libsendfiled's blocking call concludes). Of the
      // others, it may have sent any part.
      req._reject(this.unread && req === this.last ? new NotSent(errno) : new Lost(errno));
    }
    for (const req of queued) {
      req.state = 'done';
      req._reject(new NotSent(errno));
    }
  }

  // Take no new requests; close once those in flight are answered.
  retire() {
    this.retiring = true;
    if (this.byId.size === 0 && this.queue.length === 0) this.close();
  }

  close() {
    this._lose(ESHUTDOWN);
  }
}

// ---- the process-wide warning ------------------------------------------------

let warned = false;

function warnUnavailable(err) {
  stats.setLastError(err.message);
  if (warned) return;
  warned = true;
  process.emitWarning(`${err.message}; sending in-process instead`,
                      { type: 'SendfiledWarning', code: 'SENDFILED_UNAVAILABLE' });
}

function daemonReached() {
  warned = false;
}

// ---- argument checks ------------------------------------------------------------

function checkOptions(opts) {
  if (opts === undefined || opts === null) opts = {};
  if (typeof opts !== 'object') throw errors.typeError('options must be an object');
  const { offset = 0, count = null, fallback = true, signal } = opts;
  if (typeof offset !== 'number' || !Number.isInteger(offset)) {
    throw errors.typeError(`offset must be a non-negative integer (got ${String(offset)})`);
  }
  if (offset < 0 || offset > Number.MAX_SAFE_INTEGER) {
    throw errors.rangeError(`offset must be a non-negative integer (got ${offset})`);
  }
  if (count !== null && count !== undefined) {
    if (typeof count !== 'number' || !Number.isInteger(count)) {
      throw errors.typeError(`count must be a positive integer (got ${String(count)})`);
    }
    if (count <= 0 || count > Number.MAX_SAFE_INTEGER) {
      throw errors.rangeError(`count must be a positive integer (got ${count})`);
    }
  }
  if (typeof fallback !== 'boolean') throw errors.typeError('fallback must be a boolean');
  if (signal !== undefined && signal !== null &&
      !(typeof signal === 'object' && 'aborted' in signal &&
        typeof signal.addEventListener === 'function')) {
    throw errors.typeError('signal must be an AbortSignal');
  }
  // A range reaching past 2^53 - 1 is clamped: no file is that large, and a
  // count past the end of the file sends what there is.
  const c = count ? Math.min(count, Number.MAX_SAFE_INTEGER - offset) : 0;
  return { offset, count: c, fallback, signal: signal || null };
}

function isFd(v) {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff;
}

// What the destination is: a descriptor, a socket that may be handed over,
// or a stream whose bytes must be written in this process.
function destination(socket) {
  if (typeof socket === 'number') {
    if (!isFd(socket)) throw errors.typeError(`socket must be a descriptor (got ${socket})`);
    return { kind: 'fd', fd: socket };
  }
  if (socket instanceof net.Socket) {
    if (socket instanceof tls.TLSSocket || socket.encrypted) return { kind: 'stream', why: 'tls' };
    return { kind: 'socket' };
  }
  if (socket instanceof Writable || (socket && typeof socket._write === 'function' &&
                                      typeof socket.write === 'function')) {
    return { kind: 'stream', why: 'stream' };
  }
  throw errors.typeError('socket must be a net.Socket, a writable stream or a descriptor');
}

// The socket's own descriptor, once it is connected.
async function socketFd(socket) {
  if (socket.connecting) {
    await new Promise((resolve, reject) => {
      const ok = () => { socket.removeListener('close', bad); resolve(); };
      const bad = () => { socket.removeListener('connect', ok); reject(destroyed()); };
      socket.once('connect', ok);
      socket.once('close', bad);
    });
  }
  const h = socket._handle;
  if (socket.destroyed || !h) throw destroyed();
  return typeof h.fd === 'number' && h.fd >= 0 ? h.fd : -1;
}

function destroyed() {
  const e = new errors.SendfiledError('ERR_STREAM_DESTROYED', 'the socket was destroyed');
  return e;
}

// The source: { fd, close }, close true when this call opened it.
async function source(file) {
  if (typeof file === 'number') {
    if (!isFd(file)) throw errors.typeError(`file must be a descriptor (got ${file})`);
    return { fd: file, handle: null };
  }
  if (file && typeof file === 'object' && typeof file.fd === 'number' &&
      typeof file.close === 'function' && !(file instanceof URL)) {
    if (file.fd < 0) {
      throw new errors.SendfiledError('EBADF', 'the FileHandle is closed',
                                      errors.sysProps(EBADF, 'fstat'));
    }
    return { fd: file.fd, handle: null };
  }
  if (typeof file === 'string' || Buffer.isBuffer(file) || file instanceof URL) {
    const fh = await fs.promises.open(file, 'r');
    return { fd: fh.fd, handle: fh };
  }
  throw errors.typeError('file must be a descriptor, a FileHandle or a path');
}

// fstat() of an open descriptor reads the inode already in memory and never
// waits for a disk, so it is made here, on the loop: a trip through libuv's
// thread pool cost more than the call itself (a third of this binding's CPU
// per 1 MiB response under load).
function fstat(fd) {
  return fs.fstatSync(fd);
}

// Calls for one destination descriptor, in call order: each waits for the
// one before it to be submitted (or to end) before it submits.
const turns = new Map();

function takeTurn(fd) {
  const prev = turns.get(fd);
  let done;
  const mine = new Promise((resolve) => { done = resolve; });
  const turn = {
    ready: prev || Promise.resolve(),
    done: () => {
      done();
      if (turns.get(fd) === mine) turns.delete(fd);
    },
  };
  turns.set(fd, mine);
  return turn;
}

// ---- the client ---------------------------------------------------------------

class Client {
  // new Client({ path, lib, requireDaemon, retryInterval })
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw errors.typeError('options must be an object');
    }
    const { path = null, lib = null, requireDaemon = false, retryInterval = 1000 } = options;
    if (path !== null && (typeof path !== 'string' || path === '')) {
      throw errors.typeError('options.path must be a non-empty string');
    }
    if (typeof requireDaemon !== 'boolean') {
      throw errors.typeError('options.requireDaemon must be a boolean');
    }
    if (typeof retryInterval !== 'number' || !(retryInterval >= 0)) {
      throw errors.typeError('options.retryInterval must be a non-negative number');
    }
    this.library = resolveLibrary(lib);
    this.path = path;
    this.requireDaemon = requireDaemon;
    this.retryInterval = retryInterval;
    this._conn = null;
    this._retryAt = 0;
    this._closed = false;
  }

  // The data socket this client connects to.
  get socketPath() {
    return this.path || this.library.defaultSocketPath();
  }

  // Whether a connection to the daemon is open now.
  get connected() {
    return !!(this._conn && this._conn.usable);
  }

  // Close the connection. Transfers still in flight are cancelled by the
  // daemon (their file positions settled); their calls reject with
  // ERR_SENDFILED_UNAVAILABLE. Idempotent.
  close() {
    this._closed = true;
    if (this._conn) this._conn.close();
    this._conn = null;
  }

  _open() {
    const c = new Conn(this.library, this.path);
    daemonReached();
    return c;
  }

  // The connection, made now if needed; null while the daemon cannot be
  // reached (tried again once per retryInterval).
  _connect() {
    if (this._closed) {
      throw new errors.SendfiledError('ERR_SENDFILED_CLOSED', 'the client is closed');
    }
    if (this._conn && this._conn.usable) return this._conn;
    if (this._conn && this._conn.dead) this._conn = null;
    if (Date.now() < this._retryAt) return null;
    try {
      const old = this._conn;
      this._conn = this._open();
      if (old) old.retire();
      return this._conn;
    } catch (e) {
      this._retryAt = Date.now() + this.retryInterval;
      this._lastError = errors.unavailable(e.errno, this.socketPath);
      warnUnavailable(this._lastError);
      return null;
    }
  }

  // A new connection after the daemon said it stops, or closed on us: the
  // next daemon may take a moment to listen.
  async _reconnect() {
    if (this._conn) this._conn.retire();
    this._conn = null;
    for (let attempt = 1; ; attempt++) {
      if (this._closed) return null;
      try {
        this._conn = this._open();
        return this._conn;
      } catch (e) {
        this._lastError = errors.unavailable(e.errno, this.socketPath);
        if ((e.errno !== ECONNREFUSED && e.errno !== ENOENT && e.errno !== EAGAIN) ||
            attempt >= RETRY_MAX) {
          this._retryAt = Date.now() + this.retryInterval;
          warnUnavailable(this._lastError);
          return null;
        }
        const ms = Math.min(attempt * RETRY_STEP_MS, RETRY_MAX_PAUSE_MS);
        await new Promise((r) => setTimeout(r, ms));
      }
    }
  }

  // sendfile(socket, file, { offset, count, fallback, signal })
  //   -> Promise<{ bytesSent, finalOffset, method }>
  // ping({ timeout }) -> Promise<{ protocolVersion, daemonVersion, features }>:
  // is the daemon at this client's socket alive, and who is it. features
  // names the optional features it implements ('deadline', 'rate_limit',
  // 'close_when_done', 'idle_timeout'; unknown ones left out): ask before
  // using one, since a daemon without it refuses the request. The library
  // waits for the answer, so it runs on libuv's thread pool, on a connection
  // of its own: transfers in flight on this client go on meanwhile.
  // Rejects with ERR_SENDFILED_UNAVAILABLE when no daemon answers (errno
  // ETIMEDOUT after timeout ms), ERR_SENDFILED_NOT_SUPPORTED when the
  // library is older than sfd_client_ping().
  async ping(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw errors.typeError('options must be an object');
    }
    const { timeout = -1 } = options;
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
      throw errors.typeError('options.timeout must be a number of milliseconds');
    }
    if (this._closed) {
      throw new errors.SendfiledError('ERR_SENDFILED_CLOSED', 'the client is closed');
    }
    const p = native().ping(this.library.handle, this.path, Math.floor(timeout));
    if (typeof p === 'number') {
      throw new errors.SendfiledError('ERR_SENDFILED_NOT_SUPPORTED',
        `sendfiled: ${this.library.path} has no sfd_client_ping(): ` +
        'libsendfiled 0.3 or later is needed for ping()');
    }
    const r = await p;
    if (r.r < 0) {
      const what = -r.r === ETIMEDOUT ? 'the daemon did not answer the ping in time'
        : 'cannot reach the daemon';
      throw errors.unavailable(-r.r, this.socketPath, what);
    }
    return {
      protocolVersion: r.protocolVersion,
      daemonVersion: r.daemonVersion,
      features: Object.keys(FEATURES).filter((bit) => r.features & (1 << bit))
        .map((bit) => FEATURES[bit]),
    };
  }

  async sendfile(socket, file, options) {
    const opts = checkOptions(options);
    const dst = destination(socket);
    if (opts.signal && opts.signal.aborted) {
      throw new errors.AbortError(undefined, { cause: opts.signal.reason });
    }
    // Streams: hold the application's writes from now on (before anything
    // is awaited), so that the file's bytes sit exactly where the call was
    // made among them.
    const h = dst.kind === 'fd' ? null : hold(socket);
    // A descriptor: calls for the same one reach the daemon in call order
    // (it runs them in the order received).
    const turn = dst.kind === 'fd' ? takeTurn(dst.fd) : null;
    let src = null;
    try {
      src = await source(file);
      return await this._send(socket, dst, h, src.fd, opts, turn);
    } finally {
      if (h) h.release();
      if (turn) turn.done();
      if (src && src.handle) await src.handle.close();
    }
  }

  async _send(socket, dst, h, fd, opts, turn) {
    const st = fstat(fd);
    const seekable = st.isFile() || st.isBlockDevice();
    const src = { fd, seekable, offset: opts.offset, count: opts.count };

    if (dst.kind === 'fd') {
      await turn.ready;
      return this._offloadOrLocal(dst.fd, null, src, opts, turn);
    }
    await h.started;
    if (opts.signal && opts.signal.aborted) {
      throw new errors.AbortError(undefined, { cause: opts.signal.reason });
    }
    if (dst.kind === 'stream') {
      if (!opts.fallback) {
        throw errors.notAvailable(dst.why === 'tls'
          ? 'a TLS socket encrypts in this process: its file descriptor carries ciphertext'
          : 'the destination has no socket descriptor');
      }
      stats.bump(dst.why === 'tls' ? 'fallbackTls' : 'fallbackStream');
      return await this._local(src, (b) => h.write(b), opts);
    }
    const outFd = await socketFd(socket);
    if (outFd < 0) {
      if (!opts.fallback) throw errors.notAvailable('the socket has no descriptor');
      stats.bump('fallbackStream');
      return await this._local(src, (b) => h.write(b), opts);
    }
    return await this._offloadOrLocal(outFd, h, src, opts);
  }

  async _local(src, write, opts) {
    stats.bump('fallback');
    try {
      const r = await localSend({ ...src, write, signal: opts.signal });
      stats.bump('fallbackBytes', r.bytesSent);
      return r;
    } catch (e) {
      stats.bump('fallbackBytes', e.bytesSent || 0);
      if (e instanceof errors.AbortError) throw e;
      throw localError(e);
    }
  }

  async _offloadOrLocal(outFd, h, src, opts, turn = null) {
    let conn = this._connect();
    if (!conn) {
      if (this.requireDaemon) throw this._lastError;
      stats.bump('fallbackNoDaemon');
      return this._local(src, h ? (b) => h.write(b) : fdWriter(outFd), opts);
    }
    try {
      return await this._offload(conn, outFd, h, src, opts, turn);
    } catch (e) {
      if (!(e instanceof NotHandedOver)) throw e;
      if (this.requireDaemon) throw e.error;
      stats.bump(e.reason);
      return this._local(src, h ? (b) => h.write(b) : fdWriter(outFd), opts);
    }
  }

  async _offload(conn, outFd, h, src, opts, turn) {
    const flags = opts.fallback ? 0 : SFD_NO_FALLBACK;
    const { fd, offset, count } = src;
    let res;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        stats.bump('retried');
        conn = await this._reconnect();
        if (!conn) throw new NotHandedOver('fallbackNoDaemon', this._lastError);
      }
      const before = src.seekable ? tell(fd) : null;
      const req = conn.request(outFd, fd, offset, count, flags);
      // In the connection's order now: the next call for this
      // destination may go (a retry after a restart may pass it).
      if (turn) turn.done();
      const onAbort = () => req.cancel();
      let socketClosed = false;
      if (opts.signal) {
        opts.signal.addEventListener('abort', onAbort, { once: true });
        // Aborted while this call waited for its turn or its socket.
        if (opts.signal.aborted) req.cancel();
      }
      if (h) {
        h.onClose(() => {
          // The daemon holds its own duplicate of the socket and would
          // go on sending to the peer: stop it.
          socketClosed = true;
          req.cancel();
        });
      }
      try {
        res = await req.promise;
      } catch (e) {
        if (e instanceof NotSent) {
          if (attempt < RESEND_MAX) continue;
          throw new NotHandedOver('fallbackNoDaemon',
                                  errors.unavailable(e.errno, this.socketPath));
        }
        if (e instanceof Lost) {
          // The daemon may have sent some of it: never sent twice. What
          // was sent is known only from the file position, as far as the
          // daemon settled it before it went away.
          const after = src.seekable ? tell(fd) : null;
          const sent = after !== null && before !== null && after !== before
            ? Math.max(0, after - offset) : 0;
          const err = errors.outcomeUnknown(this.socketPath);
          err.bytesSent = sent;
          err.finalOffset = offset + sent;
          stats.setLastError(err.message);
          throw err;
        }
        throw e;
      } finally {
        if (opts.signal) opts.signal.removeEventListener('abort', onAbort);
        if (h) h.onClose(() => {});
      }
      if (res.status === STATUS.SHUTTING_DOWN && res.bytesSent === 0 && attempt < RESEND_MAX) {
        continue;
      }
      if (socketClosed && res.status === STATUS.CANCELLED) {
        record(res);
        throw Object.assign(destroyed(), { bytesSent: res.bytesSent,
                                           finalOffset: res.finalOffset });
      }
      break;
    }
    if (!this.requireDaemon && res.bytesSent === 0 &&
        (res.status === STATUS.LIMIT || res.status === STATUS.SHUTTING_DOWN)) {
      throw new NotHandedOver('fallbackLimit', errors.fromResult(res));
    }
    record(res);
    if (res.status === STATUS.OK) {
      return { bytesSent: res.bytesSent, finalOffset: res.finalOffset,
               method: METHODS[res.method] || 'unknown' };
    }
    if (res.status === STATUS.CANCELLED && opts.signal && opts.signal.aborted) {
      const e = new errors.AbortError(undefined, { cause: opts.signal.reason });
      e.bytesSent = res.bytesSent;
      e.finalOffset = res.finalOffset;
      throw e;
    }
    throw errors.fromResult(res);
  }
}

function record(res) {
  stats.bump('offloaded');
  stats.bump('offloadedBytes', res.bytesSent);
  stats.method(METHODS[res.method] || 'none');
  if (res.status === STATUS.CANCELLED) stats.bump('cancelled');
  else if (res.status !== STATUS.OK) stats.bump('errors');
}

// An error of the in-process path, in the daemon's terms where they apply.
function localError(e) {
  if (e instanceof errors.SendfiledError) return e;
  const peer = ['EPIPE', 'ECONNRESET', 'ECONNABORTED', 'ENOTCONN', 'ERR_STREAM_DESTROYED',
                'ERR_SOCKET_CLOSED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_HTTP2_INVALID_STREAM',
                'ERR_HTTP2_STREAM_ERROR'];
  const code = e && e.code;
  const out = new errors.SendfiledError(
    peer.includes(code) ? 'ERR_SENDFILED_PEER_CLOSED' : 'ERR_SENDFILED_IO',
    `sendfiled: ${e && e.message}`, { cause: e, method: 'local' });
  if (typeof e.errno === 'number') Object.assign(out, errors.sysProps(e.errno, e.syscall));
  out.bytesSent = e.bytesSent || 0;
  out.finalOffset = e.finalOffset === undefined ? null : e.finalOffset;
  return out;
}

// ---- the shared client -------------------------------------------------------------

let shared = null;

// defaultClient() - the client sendfile() below uses, made at its first use
// with the default socket and library.
function defaultClient() {
  if (!shared || shared._closed) shared = new Client();
  return shared;
}

// sendfile(socket, file, options) - defaultClient().sendfile(...).
function sendfile(socket, file, options) {
  let c;
  try {
    c = defaultClient();
  } catch (e) {
    return Promise.reject(e);
  }
  return c.sendfile(socket, file, options);
}

// close() - close the shared client, if one was made.
function close() {
  if (shared) shared.close();
  shared = null;
}

module.exports = { Client, sendfile, defaultClient, close };
