'use strict';

/*
 * sendFile(req, res, file, options): an HTTP/1.1 file response whose body is
 * sent by the daemon. Node writes the status line and the headers; the body
 * goes from the file to the connection's socket with sendfile(2) in the
 * daemon; then the response ends as usual, so the connection serves the next
 * keep-alive (or pipelined) request.
 *
 * The HTTP semantics are those of the `send` package (Express's res.sendFile
 * and serve-static): 200, 206 for one byte range, 416, HEAD, 304 for
 * If-None-Match / If-Modified-Since, 412 for If-Match / If-Unmodified-Since,
 * If-Range. Several ranges are coalesced; when more than one remains the
 * whole file is sent with 200 (as `send` does; no multipart/byteranges).
 */

const fs = require('node:fs');
const http = require('node:http');
const { pipeline } = require('node:stream/promises');
const mime = require('./mime');

/*
 * O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
 * after fstat); it has no effect on reading a regular file. libuv adds
 * O_CLOEXEC.
 */
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EISDIR',
  'ERR_SENDFILED_NOT_REGULAR_FILE']);
const FORBIDDEN = new Set(['EACCES', 'EPERM']);

const STATUS_TEXT = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
};

/* The headers that describe a body, removed from 304, 412 and error responses. */
const CONTENT_HEADERS = ['content-encoding', 'content-language', 'content-length',
  'content-range', 'content-type'];

function typeError(code, message) {
  const err = new TypeError(message);
  err.code = code;
  return err;
}

/*
 * An error carrying the HTTP status it maps to (status, statusCode, expose,
 * as http-errors does), with the system error's code when there is one.
 */
function httpError(status, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined);
  err.status = err.statusCode = status;
  err.expose = status < 500;
  if (cause && cause.code)
    err.code = cause.code;
  if (cause && cause.path)
    err.path = cause.path;
  return err;
}

function statusFor(err) {
  if (NOT_FOUND.has(err.code))
    return 404;
  if (FORBIDDEN.has(err.code))
    return 403;
  return 500;
}

function notRegular(path) {
  const err = new Error(`not a regular file: ${path}`);
  err.code = 'ERR_SENDFILED_NOT_REGULAR_FILE';
  err.path = path;
  return err;
}

function isDirectory(path) {
  const err = new Error(`EISDIR: illegal operation on a directory: ${path}`);
  err.code = 'EISDIR';
  err.errno = -21;
  err.path = path;
  return err;
}

/* A descriptor this module opened; close() is idempotent. */
class OwnedFd {
  constructor(fd) {
    this.fd = fd;
  }

  close() {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
    }
  }
}

/*
 * Opens @path for reading and checks that it is a regular file.
 * Return: { handle, stat, owned: true }; the caller closes the handle. On
 * failure nothing stays open; the error is the system error (ENOENT, EACCES,
 * EISDIR, ...) or ERR_SENDFILED_NOT_REGULAR_FILE.
 */
async function openRegular(path) {
  /*
   * Only the open goes to the thread pool (a path lookup may wait for the
   * disk); fstat and close of a descriptor opened for reading never wait
   * for I/O, and each trip through the pool costs more than they do.
   */
  const fd = await new Promise((resolve, reject) => {
    fs.open(path, OPEN_FLAGS, (err, d) => (err ? reject(err) : resolve(d)));
  });
  const handle = new OwnedFd(fd);
  try {
    const stat = fs.fstatSync(fd);
    if (stat.isDirectory())
      throw isDirectory(String(path));
    if (!stat.isFile())
      throw notRegular(String(path));
    return { handle, fd, stat, owned: true, path: String(path) };
  } catch (err) {
    handle.close();
    throw err;
  }
}

function isFileHandle(v) {
  return v !== null && typeof v === 'object' && typeof v.fd === 'number' &&
    typeof v.stat === 'function' && typeof v.close === 'function';
}

/* A file argument the caller keeps: an fd number or a FileHandle (borrowed). */
async function borrowed(file) {
  const fd = typeof file === 'number' ? file : file.fd;
  if (fd < 0)
    throw typeError('ERR_INVALID_ARG_VALUE', 'The file handle is closed');
  const stat = fs.fstatSync(fd);
  if (stat.isDirectory())
    throw isDirectory(`fd ${fd}`);
  if (!stat.isFile())
    throw notRegular(`fd ${fd}`);
  return { handle: null, fd, stat, owned: false, path: null };
}

function checkFile(file) {
  if (typeof file === 'string' || Buffer.isBuffer(file) || file instanceof URL) {
    if (String(file).includes('\0'))
      throw typeError('ERR_INVALID_ARG_VALUE', 'The file path must not contain NUL bytes');
    return;
  }
  if (typeof file === 'number') {
    if (!Number.isInteger(file) || file < 0)
      throw typeError('ERR_INVALID_ARG_VALUE',
        `The file descriptor must be an integer >= 0, got ${file}`);
    return;
  }
  if (isFileHandle(file))
    return;
  throw typeError('ERR_INVALID_ARG_TYPE',
    'The "file" argument must be a path (string, Buffer, URL), a file descriptor or a FileHandle');
}

const BOOL_OPTIONS = ['etag', 'lastModified', 'acceptRanges', 'cacheControl', 'immutable',
  'handleErrors'];

/* Validates and completes the options shared by sendFile and the middleware. */
function normalizeOptions(options) {
  if (options === undefined || options === null)
    options = {};
  if (typeof options !== 'object')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "options" argument must be an object');
  for (const k of BOOL_OPTIONS) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean')
      throw typeError('ERR_INVALID_ARG_TYPE', `The "${k}" option must be a boolean`);
  }
  let maxAge = options.maxAge ?? 0;
  if (typeof maxAge !== 'number' || !(maxAge >= 0) || !Number.isFinite(maxAge))
    throw typeError('ERR_INVALID_ARG_VALUE',
      'The "maxAge" option must be a finite number of milliseconds >= 0');
  maxAge = Math.min(Math.floor(maxAge / 1000), 365 * 24 * 3600);
  const ct = options.contentType;
  if (ct !== undefined && ct !== false && typeof ct !== 'string' && typeof ct !== 'function')
    throw typeError('ERR_INVALID_ARG_TYPE',
      'The "contentType" option must be a string, a function or false');
  const client = options.client;
  if (client !== undefined && (client === null || typeof client.sendfile !== 'function'))
    throw typeError('ERR_INVALID_ARG_TYPE',
      'The "client" option must be a sendfiled Client (an object with sendfile())');
  const signal = options.signal;
  if (signal !== undefined && (signal === null || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function'))
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "signal" option must be an AbortSignal');
  return {
    etag: options.etag !== false,
    lastModified: options.lastModified !== false,
    acceptRanges: options.acceptRanges !== false,
    cacheControl: options.cacheControl !== false,
    immutable: options.immutable === true,
    maxAge,
    contentType: ct,
    handleErrors: options.handleErrors !== false,
    client,
    signal,
  };
}

function checkReqRes(req, res) {
  if (req === null || typeof req !== 'object' || req.headers === null ||
      typeof req.headers !== 'object')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "req" argument must be an http.IncomingMessage');
  if (res === null || typeof res !== 'object' || typeof res.setHeader !== 'function' ||
      typeof res.writeHead !== 'function')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "res" argument must be an http.ServerResponse');
}

let sharedSendfile = null;

/* The transfer function: the given client's, else the package's shared client. */
function transferFunction(opts) {
  if (opts.client)
    return (socket, fd, o) => opts.client.sendfile(socket, fd, o);
  if (!sharedSendfile) {
    const pkg = require('..');
    if (typeof pkg.sendfile !== 'function')
      throw new Error('sendfiled: the package exports no sendfile()');
    sharedSendfile = pkg.sendfile;
  }
  return sharedSendfile;
}

/* -- Validators and conditional requests -------------------------------- */

function etagFor(stat) {
  return `"${Math.floor(stat.mtimeMs).toString(16)}-${stat.size.toString(16)}"`;
}

function parseEtags(value) {
  return String(value).split(',').map((s) => s.trim()).filter(Boolean);
}

function opaque(tag) {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

function weakMatch(list, etag) {
  const mine = opaque(etag);
  return parseEtags(list).some((t) => t === '*' || opaque(t) === mine);
}

function strongMatch(list, etag) {
  if (etag.startsWith('W/'))
    return false;
  return parseEtags(list).some((t) => t === '*' || t === etag);
}

/* Seconds since the epoch of an HTTP date, or NaN. */
function httpDate(value) {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? NaN : Math.floor(ms / 1000);
}

function header(res, name) {
  const v = res.getHeader(name);
  return Array.isArray(v) ? v[0] : v === undefined ? undefined : String(v);
}

/* RFC 9110 13.2.2: 412 when If-Match or If-Unmodified-Since fails. */
function preconditionFailed(req, res) {
  const ifMatch = req.headers['if-match'];
  if (ifMatch) {
    const etag = header(res, 'etag');
    return !(ifMatch.trim() === '*' || (etag && strongMatch(ifMatch, etag)));
  }
  const ius = httpDate(req.headers['if-unmodified-since']);
  const lm = httpDate(header(res, 'last-modified'));
  return !Number.isNaN(ius) && !Number.isNaN(lm) && lm > ius;
}

/* Whether the client's cached copy is current (304). */
function fresh(req, res) {
  const cc = req.headers['cache-control'];
  if (cc && /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(cc))
    return false;
  const inm = req.headers['if-none-match'];
  if (inm) {
    const etag = header(res, 'etag');
    return inm.trim() === '*' || (etag !== undefined && weakMatch(inm, etag));
  }
  const ims = httpDate(req.headers['if-modified-since']);
  const lm = httpDate(header(res, 'last-modified'));
  return !Number.isNaN(ims) && !Number.isNaN(lm) && lm <= ims;
}

/* If-Range: the Range applies only if the representation is unchanged. */
function ifRangeHolds(req, res) {
  const v = req.headers['if-range'];
  if (!v)
    return true;
  const t = v.trim();
  if (t.startsWith('"') || t.startsWith('W/')) {
    const etag = header(res, 'etag');
    return etag !== undefined && !t.startsWith('W/') && t === etag && !etag.startsWith('W/');
  }
  const lm = httpDate(header(res, 'last-modified'));
  const d = httpDate(t);
  return !Number.isNaN(lm) && !Number.isNaN(d) && lm === d;
}

/*
 * Parses a Range header against a representation of @size bytes.
 * Return: null when the header is to be ignored (not bytes, bad syntax),
 * -1 when no range is satisfiable, else the satisfiable ranges
 * [{ start, end }] (end inclusive), sorted and coalesced.
 */
function parseRange(size, value) {
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(value);
  if (!m)
    return null;
  const ranges = [];
  let any = false;
  for (const part of m[1].split(',')) {
    const spec = part.trim();
    if (spec === '')
      continue;
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === ''))
      return null;
    any = true;
    let start;
    let end;
    if (r[1] === '') {
      const n = Number(r[2]);
      if (n === 0)
        continue;
      start = Math.max(0, size - n);
      end = size - 1;
    } else {
      start = Number(r[1]);
      if (r[2] !== '' && Number(r[2]) < start)
        return null;
      end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
    }
    if (start < size && start <= end)
      ranges.push({ start, end });
  }
  if (!any)
    return null;
  if (ranges.length === 0)
    return -1;
  ranges.sort((a, b) => a.start - b.start);
  const out = [ranges[0]];
  for (const r of ranges.slice(1)) {
    const last = out[out.length - 1];
    if (r.start <= last.end + 1)
      last.end = Math.max(last.end, r.end);
    else
      out.push(r);
  }
  return out;
}

/* -- Responses without a file body ---------------------------------------- */

function removeContentHeaders(res) {
  for (const h of CONTENT_HEADERS)
    res.removeHeader(h);
}

function finishedPromise(res) {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed)
      return resolve();
    const done = () => {
      res.off('finish', done);
      res.off('close', done);
      resolve();
    };
    res.on('finish', done);
    res.on('close', done);
  });
}

async function endEmpty(res, status, extra) {
  res.statusCode = status;
  if (extra)
    extra(res);
  res.end();
  await finishedPromise(res);
  return { statusCode: status, bytesSent: 0, method: 'none', aborted: false };
}

/* A short plain-text error response, unless the headers already left. */
async function sendError(res, status, error) {
  if (res.headersSent) {
    if (res.socket)
      res.socket.destroy();
    return { statusCode: res.statusCode, bytesSent: 0, method: 'none', aborted: true, error };
  }
  for (const h of ['etag', 'last-modified', 'accept-ranges', 'cache-control'])
    res.removeHeader(h);
  removeContentHeaders(res);
  const body = STATUS_TEXT[status] || http.STATUS_CODES[status] || 'Error';
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(body);
  await finishedPromise(res);
  return { statusCode: status, bytesSent: 0, method: 'none', aborted: false, error };
}

/* -- The body ------------------------------------------------------------- */

/*
 * The connection's socket once this response owns it. A response to a
 * pipelined request is queued without a socket until the responses before
 * it have finished. Return: the socket, or null if the connection closed
 * first.
 */
function responseSocket(req, res) {
  if (res.socket)
    return Promise.resolve(res.socket);
  const conn = req.socket;
  if (!conn || conn.destroyed)
    return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = (s) => {
      res.off('socket', onSocket);
      res.off('close', onClose);
      conn.off('close', onClose);
      resolve(s);
    };
    const onSocket = (s) => done(s);
    const onClose = () => done(res.socket || null);
    res.on('socket', onSocket);
    res.on('close', onClose);
    conn.on('close', onClose);
  });
}

/* The body through the daemon, on an HTTP/1 response that has a net.Socket. */
async function bodyThroughDaemon(req, res, file, start, count, opts) {
  const sendfile = transferFunction(opts);
  const encoding = res.getHeader('content-encoding');
  res.flushHeaders();
  /*
   * A middleware that rewrote the headers as they went out (compression
   * drops Content-Length and adds Content-Encoding) expects the body
   * through res.write(): give it that.
   */
  if (res.chunkedEncoding || String(res.getHeader('content-length')) !== String(count) ||
      res.getHeader('content-encoding') !== encoding)
    return bodyStreamed(res, file, start, count);
  const socket = await responseSocket(req, res);
  if (!socket || socket.destroyed) {
    const error = httpError(499, 'the connection closed before the body was sent');
    error.code = 'ECONNRESET';
    return { statusCode: res.statusCode, bytesSent: 0, method: 'none', aborted: true, error };
  }

  /*
   * The daemon writes to the socket while Node sees no traffic on it: an
   * idle timeout set by the server must not fire meanwhile. The connection
   * closing, or the caller's signal, stops the transfer.
   */
  const timeout = socket.timeout;
  if (timeout)
    socket.setTimeout(0);
  const ac = new AbortController();
  const onClose = () => ac.abort(httpError(499, 'the connection closed'));
  const onAbort = () => ac.abort(opts.signal.reason);
  socket.on('close', onClose);
  if (opts.signal) {
    if (opts.signal.aborted)
      onAbort();
    else
      opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  let result;
  let error = null;
  try {
    result = await sendfile(socket, file.fd, { offset: start, count, signal: ac.signal });
  } catch (err) {
    error = err;
  } finally {
    socket.off('close', onClose);
    if (opts.signal)
      opts.signal.removeEventListener('abort', onAbort);
  }
  if (!error && result.bytesSent !== count) {
    error = new Error(`the file ended after ${result.bytesSent} of ${count} bytes ` +
      '(was it truncated?)');
    error.code = 'ERR_SENDFILED_SHORT_FILE';
  }
  if (error) {
    /* The response cannot be completed: the client must see it cut. */
    socket.destroy();
    return {
      statusCode: res.statusCode,
      bytesSent: result ? result.bytesSent : error.bytesSent || 0,
      method: result ? result.method : 'none',
      aborted: true,
      error,
    };
  }
  if (timeout && !socket.destroyed)
    socket.setTimeout(timeout);
  /* The body left outside Node's stream: it must not count what it did not see. */
  res.strictContentLength = false;
  res.end();
  await finishedPromise(res);
  return { statusCode: res.statusCode, bytesSent: result.bytesSent, method: result.method,
    aborted: false };
}

/* HTTP/2 (compatibility API) or another response object: Node streams the body. */
async function bodyStreamed(res, file, start, count) {
  const stream = fs.createReadStream('', { fd: file.fd, start, end: start + count - 1,
    autoClose: false, highWaterMark: 256 * 1024 });
  let sent = 0;
  stream.on('data', (chunk) => { sent += chunk.length; });
  try {
    await pipeline(stream, res);
  } catch (error) {
    return { statusCode: res.statusCode, bytesSent: sent, method: 'stream', aborted: true,
      error };
  }
  return { statusCode: res.statusCode, bytesSent: sent, method: 'stream', aborted: false };
}

/*
 * Whether a middleware replaced res.write or res.end on this response to
 * transform the body (compression, a body-hashing ETag): bytes that go
 * around Node would skip it.
 */
function bodyWrapped(res) {
  return Object.prototype.hasOwnProperty.call(res, 'write');
}

/* -- The response --------------------------------------------------------- */

function setDefaultHeaders(res, file, opts) {
  const { stat } = file;
  if (opts.cacheControl && !res.hasHeader('cache-control')) {
    res.setHeader('Cache-Control',
      `public, max-age=${opts.maxAge}${opts.immutable ? ', immutable' : ''}`);
  }
  if (opts.lastModified && !res.hasHeader('last-modified'))
    res.setHeader('Last-Modified', stat.mtime.toUTCString());
  if (opts.etag && !res.hasHeader('etag'))
    res.setHeader('ETag', etagFor(stat));
  if (opts.acceptRanges && !res.hasHeader('accept-ranges'))
    res.setHeader('Accept-Ranges', 'bytes');
  if (opts.contentType !== false && !res.hasHeader('content-type')) {
    let type;
    if (typeof opts.contentType === 'string')
      type = opts.contentType;
    else if (typeof opts.contentType === 'function')
      type = opts.contentType(file.path);
    else
      type = file.path ? mime.lookup(file.path) : mime.DEFAULT_TYPE;
    if (type)
      res.setHeader('Content-Type', type);
  }
}

/*
 * Answers @req with the opened @file: decides the status, writes the
 * headers, sends the body. Does not close the file.
 */
async function respond(req, res, file, opts) {
  const size = file.stat.size;
  const method = req.method;
  const getOrHead = method === 'GET' || method === 'HEAD';
  /* A status the application chose (a 404 page, say) is kept, without 304 or ranges. */
  const plain = res.statusCode === 200;

  setDefaultHeaders(res, file, opts);

  if (plain && getOrHead) {
    if (preconditionFailed(req, res)) {
      removeContentHeaders(res);
      return endEmpty(res, 412, (r) => r.setHeader('Content-Length', 0));
    }
    if (fresh(req, res)) {
      removeContentHeaders(res);
      return endEmpty(res, 304);
    }
  }

  let status = res.statusCode;
  let start = 0;
  let count = size;
  if (plain && getOrHead && opts.acceptRanges && req.headers.range && ifRangeHolds(req, res)) {
    const ranges = parseRange(size, req.headers.range);
    if (ranges === -1) {
      removeContentHeaders(res);
      return endEmpty(res, 416, (r) => {
        r.setHeader('Content-Range', `bytes */${size}`);
        r.setHeader('Content-Length', 0);
      });
    }
    if (ranges && ranges.length === 1) {
      status = 206;
      start = ranges[0].start;
      count = ranges[0].end - ranges[0].start + 1;
      res.setHeader('Content-Range', `bytes ${start}-${ranges[0].end}/${size}`);
    }
  }

  res.statusCode = status;
  res.setHeader('Content-Length', count);
  if (method === 'HEAD' || count === 0)
    return endEmpty(res, status);
  if (res instanceof http.ServerResponse && !bodyWrapped(res))
    return bodyThroughDaemon(req, res, file, start, count, opts);
  return bodyStreamed(res, file, start, count);
}

/*
 * Opens (or stats) @file, answers, and closes what it opened, on every path.
 * Errors opening the file are answered with 404/403/500 when handleErrors
 * is on, else rejected (with .status) and nothing is written.
 */
async function serve(req, res, file, opts, preopened) {
  let f = preopened || null;
  try {
    if (!f) {
      try {
        f = typeof file === 'number' || isFileHandle(file)
          ? await borrowed(file)
          : await openRegular(file);
      } catch (err) {
        const status = statusFor(err);
        const error = httpError(status, err.message, err);
        if (!opts.handleErrors)
          throw error;
        return await sendError(res, status, error);
      }
    }
    return await respond(req, res, f, opts);
  } finally {
    if (f && f.owned)
      f.handle.close();
  }
}

/**
 * sendFile(req, res, file, options) -> Promise<{ statusCode, bytesSent,
 * method, aborted, error? }>
 *
 * @file is a path (opened and closed here), or a descriptor number or
 * FileHandle (borrowed: not closed, its position is moved by the transfer).
 * The promise resolves once the response has ended, or was cut because the
 * client went away or the transfer failed (aborted: true, the socket is
 * destroyed, error says why). It rejects on invalid arguments, when the
 * headers were already sent, and, with handleErrors: false, when the file
 * cannot be opened (error.status 404/403/500).
 */
async function sendFile(req, res, file, options) {
  checkReqRes(req, res);
  checkFile(file);
  const opts = normalizeOptions(options);
  if (res.headersSent) {
    const err = new Error('Cannot send a file: the headers were already sent');
    err.code = 'ERR_HTTP_HEADERS_SENT';
    throw err;
  }
  return serve(req, res, file, opts, null);
}

module.exports = {
  sendFile,
  /* For lib/static.js and lib/fastify.js. */
  internal: { serve, openRegular, normalizeOptions, checkReqRes, sendError, httpError,
    statusFor, parseRange },
};
