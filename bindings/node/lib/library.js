'use strict';
// Finding and loading libsendfiled. The addon dlopen()s the file chosen here,
// so the rules are this binding's own, the same as the Python binding's:
//
//   1. an explicit path (Client({ lib }) or loadLibrary(path));
//   2. $SENDFILED_LIB (an error if set and unusable: no other copy is picked);
//   3. build*/client-lib/libsendfiled.so in this package's directory and each
//      directory above it ("build" first), as in a checkout of sendfiled,
//      skipping builds configured with sanitizers;
//   4. the system: libsendfiled.so.0 through the dynamic linker's search
//      path (LD_LIBRARY_PATH, ld.so.cache, /usr/lib...).
//
// When nothing loads, the error lists every place tried and why.

const fs = require('node:fs');
const path = require('node:path');
const { native } = require('./native');

const SONAME = 'libsendfiled.so.0';

class LibraryNotFoundError extends Error {
  constructor(tried) {
    const lines = tried.map(([place, why]) => `  ${place}: ${why}`).join('\n');
    super('libsendfiled could not be loaded; tried, in order:\n' + lines +
          '\nPass its path with new Client({ lib }) or sendfiled.loadLibrary(path), ' +
          'or set SENDFILED_LIB.');
    this.name = 'LibraryNotFoundError';
    this.code = 'ERR_SENDFILED_LIBRARY_NOT_FOUND';
    this.tried = tried;
  }
}

class Library {
  constructor(file, handle) {
    this.path = file;
    this.handle = handle;
  }

  // The data socket a client given no path connects to.
  defaultSocketPath() {
    const r = native().defaultSocketPath(this.handle);
    return typeof r === 'string' ? r : null;
  }
}

const cache = new Map();
let defaultLib = null;

function tryLoad(file, tried) {
  if (cache.has(file)) return cache.get(file);
  try {
    const lib = new Library(file, native().load(file));
    cache.set(file, lib);
    return lib;
  } catch (e) {
    if (e.code === 'ERR_SENDFILED_ADDON') throw e;
    tried.push([file, e.message]);
    return null;
  }
}

// A build configured with sanitizers (meson's b_sanitize) makes a library that
// loads only into a process started with the sanitizer's runtime: skip it.
function sanitized(buildDir) {
  try {
    const opts = JSON.parse(fs.readFileSync(
      path.join(buildDir, 'meson-info', 'intro-buildoptions.json'), 'utf8'));
    const o = opts.find((x) => x.name === 'b_sanitize');
    return Boolean(o && o.value && o.value !== 'none');
  } catch {
    return false;
  }
}

function buildTreeCandidates() {
  const found = [];
  let d = path.resolve(__dirname, '..');
  for (;;) {
    let builds = [];
    try {
      builds = fs.readdirSync(d, { withFileTypes: true })
        .filter((e) => e.name.startsWith('build') && (e.isDirectory() || e.isSymbolicLink()))
        .map((e) => e.name)
        .sort((a, b) => (a !== 'build') - (b !== 'build') || (a < b ? -1 : a > b ? 1 : 0));
    } catch {
      builds = [];
    }
    for (const b of builds) {
      if (sanitized(path.join(d, b))) continue;
      for (const name of ['libsendfiled.so', SONAME]) {
        const p = path.join(d, b, 'client-lib', name);
        if (fs.existsSync(p)) {
          found.push(p);
          break;
        }
      }
    }
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  return found;
}

function loadDefault() {
  if (defaultLib) return defaultLib;
  const tried = [];
  const env = process.env.SENDFILED_LIB;
  if (env) {
    const lib = tryLoad(env, tried);
    if (!lib) throw new LibraryNotFoundError(tried);
    defaultLib = lib;
    return lib;
  }
  tried.push(['$SENDFILED_LIB', 'not set']);
  const cands = buildTreeCandidates();
  if (cands.length === 0) {
    tried.push([`build*/client-lib/libsendfiled.so in ${path.resolve(__dirname, '..')} and ` +
                'its parents', 'none found']);
  }
  for (const c of cands) {
    const lib = tryLoad(c, tried);
    if (lib) {
      defaultLib = lib;
      return lib;
    }
  }
  const lib = tryLoad(SONAME, tried);
  if (lib) {
    defaultLib = lib;
    return lib;
  }
  throw new LibraryNotFoundError(tried);
}

// loadLibrary(path?) - load libsendfiled and return it. With a path, load
// exactly that file and make it the default for clients made afterwards
// without { lib }; without one, follow the rules above (once per process).
function loadLibrary(file) {
  if (file === undefined || file === null) return loadDefault();
  if (typeof file !== 'string' || file === '') {
    const e = new TypeError('the library path must be a non-empty string');
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }
  const tried = [];
  const lib = tryLoad(file, tried);
  if (!lib) throw new LibraryNotFoundError(tried);
  defaultLib = lib;
  return lib;
}

// A Library from what a caller passed as { lib }.
function resolveLibrary(lib) {
  if (lib instanceof Library) return lib;
  if (lib === undefined || lib === null) return loadDefault();
  if (typeof lib !== 'string' || lib === '') {
    const e = new TypeError('options.lib must be a path or a Library');
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }
  const tried = [];
  const out = tryLoad(lib, tried);
  if (!out) throw new LibraryNotFoundError(tried);
  return out;
}

module.exports = { Library, LibraryNotFoundError, loadLibrary, resolveLibrary, SONAME };
