'use strict';

/*
 * serveStatic(root, options): a connect/Express middleware serving the files
 * under @root, with the behaviour of serve-static (express.static), the
 * bodies sent by the daemon. Also the path resolution that the Fastify
 * plugin shares.
 */

const path = require('node:path');
const { internal } = require('./http');

const { serve, openRegular, normalizeOptions, httpError, statusFor, sendError } = internal;

function typeError(code, message) {
  const err = new TypeError(message);
  err.code = code;
  return err;
}

/* Validates the directory options on top of sendFile's. */
function staticOptions(options) {
  const opts = normalizeOptions(options);
  const o = options || {};
  let index = o.index === undefined ? ['index.html'] : o.index;
  if (index === false)
    index = [];
  else if (typeof index === 'string')
    index = [index];
  if (!Array.isArray(index) || index.some((n) => typeof n !== 'string' || n === '' ||
      n.includes('/') || n.includes('\0')))
    throw typeError('ERR_INVALID_ARG_VALUE',
      'The "index" option must be false, a file name or an array of file names');
  const dotfiles = o.dotfiles === undefined ? 'ignore' : o.dotfiles;
  if (!['ignore', 'allow', 'deny'].includes(dotfiles))
    throw typeError('ERR_INVALID_ARG_VALUE',
      'The "dotfiles" option must be "ignore", "allow" or "deny"');
  let extensions = o.extensions === undefined || o.extensions === false ? [] : o.extensions;
  if (typeof extensions === 'string')
    extensions = [extensions];
  if (!Array.isArray(extensions) || extensions.some((e) => typeof e !== 'string' || e === '' ||
      e.includes('/') || e.includes('\0')))
    throw typeError('ERR_INVALID_ARG_VALUE',
      'The "extensions" option must be false, an extension or an array of extensions');
  for (const k of ['fallthrough', 'redirect']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean')
      throw typeError('ERR_INVALID_ARG_TYPE', `The "${k}" option must be a boolean`);
  }
  if (o.setHeaders !== undefined && typeof o.setHeaders !== 'function')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "setHeaders" option must be a function');
  return Object.assign(opts, {
    index,
    dotfiles,
    extensions: extensions.map((e) => e.replace(/^\./, '')),
    fallthrough: o.fallthrough !== false,
    redirect: o.redirect !== false,
    setHeaders: o.setHeaders,
    handleErrors: false,
  });
}

function checkRoot(root) {
  if (typeof root !== 'string' || root === '')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The "root" argument must be a non-empty string');
  if (root.includes('\0'))
    throw typeError('ERR_INVALID_ARG_VALUE', 'The "root" path must not contain NUL bytes');
  return path.resolve(root);
}

function pathname(url) {
  const s = String(url || '/');
  const end = s.search(/[?#]/);
  return end === -1 ? s : s.slice(0, end);
}

/*
 * Resolves the URL path @urlPath (still percent-encoded) under @root.
 * Return one of
 *   { kind: 'file', file, path }     an opened regular file (the caller closes file.handle)
 *   { kind: 'redirect' }             a directory named without its trailing slash
 *   { kind: 'error', status, error } 400 (bad encoding, NUL), 403 (a ".." segment,
 *                                    a denied dotfile), 404, or the open's failure
 * Nothing stays open on a non-file answer.
 */
async function resolve(root, urlPath, opts) {
  let rel;
  try {
    rel = decodeURIComponent(urlPath);
  } catch (err) {
    return { kind: 'error', status: 400, error: httpError(400, 'malformed URL encoding', err) };
  }
  return resolveDecoded(root, rel, opts);
}

/* resolve() for a path already decoded (a file name given by the application). */
async function resolveDecoded(root, rel, opts) {
  if (rel.includes('\0'))
    return { kind: 'error', status: 400, error: httpError(400, 'NUL byte in the path') };
  const segments = rel.split('/');
  if (segments.includes('..'))
    return { kind: 'error', status: 403, error: httpError(403, 'path traversal refused') };
  if (opts.dotfiles !== 'allow' && segments.some((s) => s.length > 1 && s[0] === '.')) {
    const status = opts.dotfiles === 'deny' ? 403 : 404;
    return { kind: 'error', status, error: httpError(status, 'dotfile') };
  }
  const full = path.join(root, rel);
  if (full !== root && !full.startsWith(root.endsWith(path.sep) ? root : root + path.sep))
    return { kind: 'error', status: 403, error: httpError(403, 'path traversal refused') };

  /* '' is the root named without its slash (a mount point): redirected like any directory. */
  const trailing = rel.endsWith('/');
  const tryOpen = async (p) => {
    try {
      return { file: await openRegular(p) };
    } catch (err) {
      return { err };
    }
  };
  if (!trailing) {
    let r = await tryOpen(full);
    if (r.file)
      return { kind: 'file', file: r.file, path: full };
    if (r.err.code === 'EISDIR') {
      return opts.redirect
        ? { kind: 'redirect' }
        : { kind: 'error', status: 404, error: httpError(404, 'is a directory', r.err) };
    }
    const first = r.err;
    if (first.code === 'ENOENT') {
      for (const ext of opts.extensions) {
        r = await tryOpen(`${full}.${ext}`);
        if (r.file)
          return { kind: 'file', file: r.file, path: `${full}.${ext}` };
      }
    }
    const status = statusFor(first);
    return { kind: 'error', status, error: httpError(status, first.message, first) };
  }
  for (const name of opts.index) {
    const p = path.join(full, name);
    const r = await tryOpen(p);
    if (r.file)
      return { kind: 'file', file: r.file, path: p };
    if (!['ENOENT', 'EISDIR', 'ENOTDIR', 'ERR_SENDFILED_NOT_REGULAR_FILE'].includes(r.err.code)) {
      const status = statusFor(r.err);
      return { kind: 'error', status, error: httpError(status, r.err.message, r.err) };
    }
  }
  return { kind: 'error', status: 404, error: httpError(404, 'no index file') };
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/* 301 to the same URL with a trailing slash, as serve-static does. */
async function redirectToDirectory(req, res) {
  const url = String(req.originalUrl || req.url || '/');
  const p = pathname(url);
  const loc = (p + '/').replace(/^\/{2,}/, '/') + url.slice(p.length);
  const body = `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n` +
    `<title>Redirecting</title>\n</head>\n<body>\n<pre>Redirecting to ${escapeHtml(loc)}</pre>\n` +
    '</body>\n</html>\n';
  res.statusCode = 301;
  res.setHeader('Content-Type', 'text/html; charset=UTF-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Content-Security-Policy', "default-src 'none'");
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Location', loc);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/* Serves an opened file from resolve(), closing it on every path. */
async function serveResolved(req, res, r, opts) {
  try {
    if (opts.setHeaders)
      opts.setHeaders(res, r.path, r.file.stat);
  } catch (err) {
    r.file.handle.close();
    throw err;
  }
  return serve(req, res, null, opts, r.file);
}

/**
 * serveStatic(root, options) -> (req, res, next) middleware.
 *
 * GET and HEAD only (others: next(), or 405 with fallthrough: false).
 * Options: those of sendFile, plus index, dotfiles, extensions,
 * fallthrough, redirect, setHeaders(res, path, stat).
 */
function serveStatic(root, options) {
  const dir = checkRoot(root);
  const opts = staticOptions(options);

  const fail = (req, res, next, status, error) => {
    if (typeof next === 'function') {
      if (opts.fallthrough && status < 500)
        return next();
      return next(error);
    }
    return sendError(res, status, error);
  };

  return function sendfiledStatic(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      if (opts.fallthrough && typeof next === 'function')
        return next();
      res.statusCode = 405;
      res.setHeader('Allow', 'GET, HEAD');
      res.setHeader('Content-Length', '0');
      res.end();
      return undefined;
    }
    const run = async () => {
      let p = pathname(req.url);
      if (p === '/' && req.originalUrl && !pathname(req.originalUrl).endsWith('/'))
        p = '';
      const r = await resolve(dir, p, opts);
      if (r.kind === 'redirect') {
        if (typeof next === 'function' && opts.fallthrough && !opts.redirect)
          return next();
        return redirectToDirectory(req, res);
      }
      if (r.kind === 'error')
        return fail(req, res, next, r.status, r.error);
      return serveResolved(req, res, r, opts);
    };
    return run().catch((err) => {
      if (typeof next === 'function' && !res.headersSent)
        return next(err);
      if (!res.headersSent)
        return sendError(res, 500, err);
      if (res.socket)
        res.socket.destroy();
      return undefined;
    });
  };
}

module.exports = { serveStatic, internal: { resolve, resolveDecoded, staticOptions, checkRoot, pathname,
  serveResolved, redirectToDirectory } };
