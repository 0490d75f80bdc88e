'use strict';
// Process-wide counters: what went through the daemon, what was sent in this
// process instead, and why.

const COUNTERS = [
  'offloaded', // requests the daemon answered (any status)
  'offloadedBytes', // bytes it sent for them
  'errors', // of those, ended in an error
  'cancelled', // of those, cancelled (AbortSignal, destroyed socket)
  'fallback', // transfers sent in this process instead
  'fallbackBytes', // bytes sent so
  'fallbackNoDaemon', // ... because the daemon could not be reached
  'fallbackTls', // ... because the socket encrypts in user space (TLS)
  'fallbackStream', // ... because the destination has no descriptor (HTTP/2 stream, ...)
  'fallbackLimit', // ... because the daemon declined (limit, shutting down) with nothing sent
  'waitedForRoom', // requests that found the connection full and waited for room
  'retried', // requests sent again on a new connection after a daemon restart
  'inFlight', // requests submitted and not answered yet
];

let s;

function reset() {
  s = {};
  for (const k of COUNTERS) s[k] = 0;
  s.methods = { sendfile: 0, splice: 0, read_write: 0, none: 0 };
  s.lastError = null;
}
reset();

function bump(name, n = 1) {
  s[name] += n;
}

function method(name) {
  s.methods[name] = (s.methods[name] || 0) + 1;
}

function setLastError(msg) {
  s.lastError = msg;
}

// stats() - a snapshot of the counters above, plus methods (how many daemon
// transfers used sendfile, splice, read_write, none) and lastError (why the
// daemon was last unusable, or null).
function stats() {
  return { ...s, methods: { ...s.methods } };
}

module.exports = { stats, resetStats: reset, bump, method, setLastError };
