'use strict';
// Errors, and the mapping of the daemon's statuses to them. Every error about
// a transfer carries what a caller needs to resume or account for it:
// bytesSent, finalOffset (the source's file position afterwards, when known),
// and, for a daemon reply, status (its name), method and the daemon's
// message. System causes carry errno (negative, as Node's own system errors),
// errnoName ('EPIPE') and syscall.

const util = require('node:util');

const STATUS = Object.freeze({
  OK: 0,
  NOT_AVAILABLE: 1,
  INVALID_ARGUMENT: 2,
  PEER_CLOSED: 3,
  IO_ERROR: 4,
  CANCELLED: 5,
  LIMIT: 6,
  PROTOCOL: 7,
  SHUTTING_DOWN: 8,
  PERMISSION_DENIED: 9,
  TIMED_OUT: 10,
});

const STATUS_NAMES = ['ok', 'not available', 'invalid argument', 'peer closed', 'I/O error',
  'cancelled', 'limit reached', 'protocol error', 'shutting down', 'permission denied',
  'timed out'];

const METHODS = ['none', 'sendfile', 'splice', 'read_write'];

// The `code` of the error for each status.
const CODES = Object.freeze({
  [STATUS.NOT_AVAILABLE]: 'ERR_SENDFILED_NOT_AVAILABLE',
  [STATUS.INVALID_ARGUMENT]: 'ERR_SENDFILED_INVALID_ARGUMENT',
  [STATUS.PEER_CLOSED]: 'ERR_SENDFILED_PEER_CLOSED',
  [STATUS.IO_ERROR]: 'ERR_SENDFILED_IO',
  [STATUS.CANCELLED]: 'ERR_SENDFILED_CANCELLED',
  [STATUS.LIMIT]: 'ERR_SENDFILED_LIMIT',
  [STATUS.PROTOCOL]: 'ERR_SENDFILED_PROTOCOL',
  [STATUS.SHUTTING_DOWN]: 'ERR_SENDFILED_SHUTTING_DOWN',
  [STATUS.PERMISSION_DENIED]: 'ERR_SENDFILED_PERMISSION_DENIED',
  [STATUS.TIMED_OUT]: 'ERR_SENDFILED_TIMED_OUT',
});

class SendfiledError extends Error {
  constructor(code, message, props) {
    super(message);
    this.name = 'SendfiledError';
    this.code = code;
    this.bytesSent = 0;
    this.finalOffset = null;
    if (props) Object.assign(this, props);
  }
}

// An AbortSignal ended the transfer: the DOMException-like shape Node's own
// APIs reject with, plus what was sent.
class AbortError extends Error {
  constructor(message = 'The operation was aborted', options) {
    super(message, options);
    this.name = 'AbortError';
    this.code = 'ABORT_ERR';
    this.bytesSent = 0;
    this.finalOffset = null;
  }
}

function errnoName(errno) {
  if (!errno) return undefined;
  try {
    return util.getSystemErrorName(-Math.abs(errno));
  } catch {
    return undefined;
  }
}

function sysProps(errno, syscall) {
  if (!errno) return {};
  const e = Math.abs(errno);
  return { errno: -e, errnoName: errnoName(e), syscall };
}

function strerror(errno) {
  const name = errnoName(errno);
  if (!name) return `errno ${errno}`;
  try {
    return util.getSystemErrorMessage ? util.getSystemErrorMessage(-Math.abs(errno)) : name;
  } catch {
    return name;
  }
}

// The error for a daemon reply whose status is not OK.
function fromResult(res) {
  const code = CODES[res.status] || 'ERR_SENDFILED_UNKNOWN_STATUS';
  const name = STATUS_NAMES[res.status] || `status ${res.status}`;
  const why = res.message || (res.error ? strerror(res.error) : '');
  const msg = `sendfiled: ${name}${why ? `: ${why}` : ''}`;
  return new SendfiledError(code, msg, {
    ...sysProps(res.error, res.status === STATUS.PEER_CLOSED ||
                res.status === STATUS.IO_ERROR ? 'sendfile' : undefined),
    status: name,
    method: METHODS[res.method] || 'unknown',
    bytesSent: res.bytesSent,
    finalOffset: res.finalOffset,
    daemonMessage: res.message || '',
  });
}

function notAvailable(reason) {
  return new SendfiledError('ERR_SENDFILED_NOT_AVAILABLE',
    `sendfiled: not available: ${reason}`, { status: 'not available', method: 'none' });
}

// The daemon could not be reached, refused us, or went away.
function unavailable(errno, socketPath, what = 'cannot reach the daemon') {
  const where = socketPath ? ` at ${socketPath}` : '';
  return new SendfiledError('ERR_SENDFILED_UNAVAILABLE',
    `sendfiled: ${what}${where}: ${strerror(errno)}`,
    { ...sysProps(errno, 'connect'), path: socketPath || null });
}

// libsendfiled's -SFD_EOUTCOME_UNKNOWN: not an errno.
const SFD_EOUTCOME_UNKNOWN = 4096;

// The connection to the daemon was lost (it was killed, or crashed) with the
// transfer in flight: no reply will come. The file position tells what was
// sent; the caller sets bytesSent and finalOffset from it.
function outcomeUnknown(socketPath) {
  const where = socketPath ? ` at ${socketPath}` : '';
  return new SendfiledError('ERR_SENDFILED_OUTCOME_UNKNOWN',
    `sendfiled: lost the connection to the daemon${where}: outcome unknown: see the file position`,
    { ...sysProps(104 /* ECONNRESET */, 'recvmsg'), path: socketPath || null });
}

function typeError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

function rangeError(message) {
  const e = new RangeError(message);
  e.code = 'ERR_OUT_OF_RANGE';
  return e;
}

module.exports = {
  SFD_EOUTCOME_UNKNOWN, outcomeUnknown,
  STATUS, STATUS_NAMES, METHODS, CODES, SendfiledError, AbortError, fromResult, notAvailable,
  unavailable, typeError, rangeError, strerror, sysProps,
};
