'use strict';
// sendfiled: zero-copy file sending for Node.js through the sendfiled daemon.

const client = require('./lib/client');
const errors = require('./lib/errors');
const library = require('./lib/library');
const stats = require('./lib/stats');

module.exports = {
  Client: client.Client,
  sendfile: client.sendfile,
  defaultClient: client.defaultClient,
  close: client.close,
  stats: stats.stats,
  resetStats: stats.resetStats,
  loadLibrary: library.loadLibrary,
  Library: library.Library,
  LibraryNotFoundError: library.LibraryNotFoundError,
  SendfiledError: errors.SendfiledError,
  AbortError: errors.AbortError,
  errors: {
    SendfiledError: errors.SendfiledError,
    AbortError: errors.AbortError,
    LibraryNotFoundError: library.LibraryNotFoundError,
    codes: errors.CODES,
  },
};

// HTTP: file responses, a static-directory middleware (the Fastify plugin is sendfiled/fastify).
module.exports.sendFile = require('./lib/http').sendFile;
module.exports.serveStatic = require('./lib/static').serveStatic;
