'use strict';
// Handing a stream's socket to someone else for a while without breaking the
// order of its bytes.
//
// hold(stream) marks the stream's current end. It resolves once everything
// written before the call has left the stream (for a net.Socket: handed to
// the kernel; nothing in the Writable's buffer, nothing in libuv's write
// queue). From then until release(), whatever the application writes is kept
// in the stream's own buffer (write() returns false past its highWaterMark,
// as for a slow peer) and end() waits too; release() lets it through, in
// order. Holds on one stream follow each other in the order they were asked
// for, interleaved correctly with the application's writes between them.
//
// How: the stream's _write, _writev and _final are wrapped (on the instance,
// only while a hold is pending). The Writable machinery calls them one chunk
// (or batch) at a time and waits for each callback, so keeping one call's
// callback holds everything behind it. A hold is marked by an empty Buffer
// written at the time of the call: when the wrapper meets it, everything
// before it has been written.

const kState = Symbol('sendfiled.handover');

class Hold {
  constructor(stream, state) {
    this.stream = stream;
    this._state = state;
    this.closed = false;
    this._onClose = null;
    this.started = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // Awaited by the caller, but it may reject before anyone does.
    this.started.catch(() => {});
    state.holds.add(this);
  }

  _closed() {
    this.closed = true;
    if (this._onClose) this._onClose();
    this._reject(destroyedError());
  }

  // Called once if the stream closes while held.
  onClose(fn) {
    this._onClose = fn;
    if (this.closed) fn();
  }

  // Write @buf now, ahead of the held writes (only while held). Resolves once
  // it has left the stream.
  write(buf) {
    const st = this._state;
    return new Promise((resolve, reject) => {
      if (st.holding !== this) {
        reject(new Error('not held'));
        return;
      }
      st.write.call(this.stream, buf, 'buffer', (err) => (err ? reject(err) : resolve()));
    });
  }

  release() {
    this._reject = () => {};
    const st = this._state;
    st.holds.delete(this);
    if (st.holding === this) {
      st.holding = null;
      resume(this.stream, st);
    } else {
      // Released before its turn came (the caller gave up): forget its
      // marker so that the wrapper lets it pass.
      for (const [m, h] of st.markers) if (h === this) st.markers.delete(m);
    }
    maybeUninstall(this.stream, st);
  }
}

function destroyedError() {
  const e = new Error('the socket was destroyed');
  e.code = 'ERR_STREAM_DESTROYED';
  return e;
}

function ownProp(obj, name) {
  return Object.prototype.hasOwnProperty.call(obj, name) ? { value: obj[name] } : null;
}

function install(stream) {
  let st = stream[kState];
  if (st) return st;
  st = {
    write: stream._write,
    writev: stream._writev,
    final: stream._final,
    saved: { _write: ownProp(stream, '_write'), _writev: ownProp(stream, '_writev'),
             _final: ownProp(stream, '_final') },
    markers: new Map(),
    holding: null,
    stash: null, // the one write (or writev) the Writable is waiting on
    finalCb: null,
    holds: new Set(), // not released yet
    // One listener for all of them.
    onClose: () => {
      for (const h of [...st.holds]) h._closed();
    },
  };
  stream[kState] = st;
  stream.on('close', st.onClose);
  stream._write = function (chunk, enc, cb) {
    if (st.holding) {
      st.stash = { chunks: null, chunk, enc, cb };
      return;
    }
    const h = st.markers.get(chunk);
    if (h) {
      st.markers.delete(chunk);
      st.holding = h;
      cb();
      h._resolve(h);
      return;
    }
    st.write.call(this, chunk, enc, cb);
  };
  if (typeof st.writev === 'function') {
    stream._writev = function (chunks, cb) {
      if (st.holding) {
        st.stash = { chunks, cb };
        return;
      }
      const i = chunks.findIndex((c) => st.markers.has(c.chunk));
      if (i < 0) {
        st.writev.call(this, chunks, cb);
        return;
      }
      const h = st.markers.get(chunks[i].chunk);
      const before = chunks.slice(0, i);
      const after = chunks.slice(i + 1);
      before.allBuffers = after.allBuffers = chunks.allBuffers;
      const reached = (err) => {
        if (err) {
          cb(err);
          return;
        }
        st.markers.delete(chunks[i].chunk);
        st.holding = h;
        if (after.length) st.stash = { chunks: after, cb };
        h._resolve(h);
        if (!after.length) cb();
      };
      if (before.length === 0) reached();
      else if (before.length === 1) st.write.call(this, before[0].chunk, before[0].encoding, reached);
      else st.writev.call(this, before, reached);
    };
  }
  stream._final = function (cb) {
    if (st.holding || st.markers.size) {
      st.finalCb = cb;
      return;
    }
    if (typeof st.final === 'function') st.final.call(this, cb);
    else cb();
  };
  return st;
}

function resume(stream, st) {
  const s = st.stash;
  if (s) {
    st.stash = null;
    if (s.chunks) stream._writev(s.chunks, s.cb);
    else stream._write(s.chunk, s.enc, s.cb);
  }
  if (!st.holding && st.finalCb && st.markers.size === 0) {
    const cb = st.finalCb;
    st.finalCb = null;
    if (typeof st.final === 'function') st.final.call(stream, cb);
    else cb();
  }
}

function maybeUninstall(stream, st) {
  if (st.holding || st.markers.size || st.stash || st.finalCb || st.holds.size) return;
  stream.removeListener('close', st.onClose);
  for (const name of ['_write', '_writev', '_final']) {
    if (st.saved[name]) stream[name] = st.saved[name].value;
    else delete stream[name];
  }
  delete stream[kState];
}

function nothingQueued(stream) {
  const h = stream._handle;
  const queued = h && typeof h.writeQueueSize === 'number' ? h.writeQueueSize : 0;
  return stream.writableLength === 0 && queued === 0;
}

// hold(stream) -> Hold, whose `started` promise resolves when the stream is
// held (rejects if the stream closes or fails first).
function hold(stream) {
  if (stream.destroyed) throw destroyedError();
  if (stream.writableEnded) {
    const e = new Error('write after end: the stream has been ended');
    e.code = 'ERR_STREAM_WRITE_AFTER_END';
    throw e;
  }
  const st = install(stream);
  const h = new Hold(stream, st);
  // A corked stream would keep the marker (and what precedes it) forever:
  // everything written before a transfer goes out before it.
  while (stream.writableCorked) stream.uncork();
  if (!st.holding && st.markers.size === 0 && !st.stash && nothingQueued(stream)) {
    st.holding = h;
    h._resolve(h);
    return h;
  }
  const marker = Buffer.alloc(0);
  st.markers.set(marker, h);
  stream.write(marker, (err) => {
    if (err) {
      st.markers.delete(marker);
      h._reject(err);
    }
  });
  return h;
}

module.exports = { hold };
