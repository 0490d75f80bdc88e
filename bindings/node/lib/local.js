'use strict';
// Sending a file range in this process: the path taken when the daemon is
// not used (unreachable, a TLS socket, a stream without a descriptor). Same
// contract as the daemon's: offset/count, a short count at end of file, the
// file position offset + bytesSent afterwards whenever anything was sent.
// The file is read with positional reads (pread) when it can seek, and the
// position set once at the end; a pipe is read as it comes.

const fs = require('node:fs');
const { native } = require('./native');
const { AbortError } = require('./errors');

const CHUNK = 256 * 1024;

function read(fd, buf, len, position) {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, len, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeFd(fd, buf, off, len) {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

// A writer for a destination given as a descriptor: fs.write() from the
// thread pool, partial writes continued. A non-blocking descriptor that is
// full is waited for with a short back-off.
function fdWriter(fd) {
  return async (buf) => {
    let off = 0;
    let pause = 1;
    while (off < buf.length) {
      try {
        off += await writeFd(fd, buf, off, buf.length - off);
        pause = 1;
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 50);
      }
    }
  };
}

// localSend({ fd, seekable, offset, count, write, signal, isCancelled })
// -> { bytesSent, finalOffset, method: 'local' }. On failure the error
// carries bytesSent and finalOffset.
async function localSend({ fd, seekable, offset, count, write, signal }) {
  let sent = 0;
  const limit = count ? count : Infinity;
  try {
    while (sent < limit) {
      if (signal && signal.aborted) {
        throw new AbortError(undefined, { cause: signal.reason });
      }
      const want = Math.min(CHUNK, limit - sent);
      // A fresh buffer each time: the stream may keep it queued.
      const buf = Buffer.allocUnsafe(want);
      const n = await read(fd, buf, want, seekable ? offset + sent : null);
      if (n === 0) break;
      await write(n === want ? buf : buf.subarray(0, n));
      sent += n;
    }
  } catch (e) {
    settle(fd, seekable, offset, sent);
    if (e && typeof e === 'object') {
      e.bytesSent = sent;
      e.finalOffset = offset + sent;
    }
    throw e;
  }
  settle(fd, seekable, offset, sent);
  return { bytesSent: sent, finalOffset: offset + sent, method: 'local' };
}

function settle(fd, seekable, offset, sent) {
  if (seekable && sent > 0) native().lseek(fd, offset + sent, 0);
}

module.exports = { localSend, fdWriter };
