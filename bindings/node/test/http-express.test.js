'use strict';

/*
 * serveStatic() as Express middleware against a real daemon: the common
 * scenarios, then the rules of a directory: path traversal, dotfiles, index
 * files, redirects, methods, fallthrough, extensions, setHeaders.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { describe, it, before, after } = require('node:test');

const compression = require('compression');
const express = require('express');
const { serveStatic } = require('..');
const {
  commonTests, Daemon, makeClient, makeTree, request, pipelined, get, sha256, counters, delta,
  fdCount, waitFor, sleep,
} = require('./http-common');

function listen(app) {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function closeServer(server) {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
}

commonTests('serveStatic on Express', async ({ root, client }) => {
  const app = express();
  app.use(serveStatic(root, { client }));
  const server = await listen(app);
  return { port: server.address().port, close: () => closeServer(server) };
});

describe('serveStatic on Express: the rules of a directory', { timeout: 300000 }, () => {
  const ctx = {};

  before(async () => {
    ctx.base = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-express-'));
    ctx.tree = makeTree(ctx.base);
    const root = ctx.tree.root;
    ctx.daemon = await new Daemon().start();
    const client = ctx.client = makeClient(ctx.daemon);
    const app = express();
    app.use('/s', serveStatic(root, { client }));
    app.use('/strict', serveStatic(root, { client, fallthrough: false }));
    app.use('/deny', serveStatic(root, { client, dotfiles: 'deny', fallthrough: false }));
    app.use('/allow', serveStatic(root, { client, dotfiles: 'allow' }));
    app.use('/noredirect', serveStatic(root, { client, redirect: false }));
    app.use('/z', compression({ threshold: 0 }), serveStatic(root, { client }));
    app.use('/ext', serveStatic(root, { client, extensions: ['html'], index: false,
      maxAge: 60e3, setHeaders: (res, p) => res.setHeader('X-File', path.basename(p)) }));
    app.use((req, res) => {
      res.status(404).set('X-Fell', 'through').send('fell through');
    });
    app.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
      res.status(err.status || 500).set('X-Err', String(err.code || err.status)).send('error');
    });
    ctx.server = await listen(app);
    ctx.port = ctx.server.address().port;
    assert.equal((await request(ctx.port, { path: '/s/small.txt' })).status, 200);
    await sleep(300);
    ctx.ownFds = fdCount();
    ctx.daemonFds = ctx.daemon.fds();
  });

  after(async () => {
    if (ctx.server)
      await closeServer(ctx.server);
    if (ctx.client)
      ctx.client.close();
    if (ctx.daemon)
      await ctx.daemon.stop();
    if (ctx.base)
      fs.rmSync(ctx.base, { recursive: true, force: true });
  });

  const TRAVERSALS = [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/sub/../../secret.txt',
    '/%2e%2e%2fsecret.txt',
    '/..%2Fsecret.txt',
    '/sub%2f..%2f..%2fsecret.txt',
    '/%2e%2e%5csecret.txt',
  ];

  it('refuses path traversal, plain and encoded', async () => {
    const secret = sha256(ctx.tree.secret);
    const c0 = counters(ctx.daemon);
    for (const p of TRAVERSALS) {
      const { responses } = await pipelined(ctx.port, [get(`/s${p}`), get(`/strict${p}`)]);
      const [fell, strict] = responses;
      assert.equal(fell.status, 404, p);
      assert.equal(fell.headers['x-fell'], 'through', p);
      assert.ok([403, 404].includes(strict.status), `${p}: ${strict.status}`);
      for (const r of responses)
        assert.notEqual(sha256(r.body), secret, p);
    }
    const { responses } = await pipelined(ctx.port, [get('/strict/../secret.txt')]);
    assert.equal(responses[0].status, 403);
    assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
  });

  it('refuses NUL bytes and malformed encodings with 400', async () => {
    for (const p of ['/small.txt%00.html', '/%00', '/%ff%fe', '/%']) {
      const { responses } = await pipelined(ctx.port, [get(`/strict${p}`), get(`/s${p}`)]);
      assert.equal(responses[0].status, 400, p);
      assert.equal(responses[1].headers['x-fell'], 'through', p);
    }
  });

  it('ignores dotfiles by default; denies or allows them when told', async () => {
    const { responses } = await pipelined(ctx.port, [
      get('/s/.hidden'), get('/deny/.hidden'), get('/allow/.hidden'), get('/strict/.hidden'),
    ]);
    assert.equal(responses[0].status, 404);
    assert.equal(responses[0].headers['x-fell'], 'through');
    assert.equal(responses[1].status, 403);
    assert.equal(responses[2].status, 200);
    assert.equal(sha256(responses[2].body), sha256(ctx.tree.files['.hidden']));
    assert.equal(responses[3].status, 404);
    assert.equal(responses[3].headers['x-fell'], undefined);
  });

  it('serves index files and redirects a directory without its slash', async () => {
    const c0 = counters(ctx.daemon);
    const { responses } = await pipelined(ctx.port, [
      get('/s/'), get('/s/sub/'), get('/s/sub'), get('/s/sub?x=1'), get('/s/noindex/'),
      get('/noredirect/sub'), get('/s'),
    ]);
    assert.equal(responses[0].status, 200);
    assert.equal(responses[0].headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(sha256(responses[0].body), sha256(ctx.tree.files['index.html']));
    assert.equal(responses[1].status, 200);
    assert.equal(sha256(responses[1].body), sha256(ctx.tree.files['sub/index.html']));
    assert.equal(responses[2].status, 301);
    assert.equal(responses[2].headers.location, '/s/sub/');
    assert.equal(responses[3].status, 301);
    assert.equal(responses[3].headers.location, '/s/sub/?x=1');
    assert.equal(responses[4].headers['x-fell'], 'through');
    assert.equal(responses[5].headers['x-fell'], 'through');
    assert.equal(responses[6].status, 301);
    assert.equal(responses[6].headers.location, '/s/');
    assert.deepEqual(delta(c0, counters(ctx.daemon)), { bytes: 777 + 1234, sendfile: 2, ok: 2 });
  });

  it('serves GET and HEAD only', async () => {
    const post = await request(ctx.port, { path: '/s/small.txt', method: 'POST', body: 'x' });
    assert.equal(post.status, 404);
    assert.equal(post.headers['x-fell'], 'through');
    const strict = await request(ctx.port, { path: '/strict/small.txt', method: 'PUT' });
    assert.equal(strict.status, 405);
    assert.equal(strict.headers.allow, 'GET, HEAD');
    const head = await request(ctx.port, { path: '/s/small.txt', method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '5000');
  });

  it('falls through on a missing file, or passes a 404 error on', async () => {
    const a = await request(ctx.port, { path: '/s/nope.txt' });
    assert.equal(a.headers['x-fell'], 'through');
    const b = await request(ctx.port, { path: '/strict/nope.txt' });
    assert.equal(b.status, 404);
    assert.equal(b.headers['x-err'], 'ENOENT');
    const c = await request(ctx.port, { path: '/strict/small.txt/x' });
    assert.equal(c.status, 404);
  });

  it('decodes names, tries extensions, calls setHeaders', async () => {
    const a = await request(ctx.port, { path: '/s/a%20b.txt' });
    assert.equal(a.status, 200);
    assert.equal(sha256(a.body), sha256(ctx.tree.files['a b.txt']));
    const b = await request(ctx.port, { path: '/ext/sub/page' });
    assert.equal(b.status, 200);
    assert.equal(b.headers['x-file'], 'page.html');
    assert.equal(b.headers['cache-control'], 'public, max-age=60');
    assert.equal(sha256(b.body), sha256(ctx.tree.files['sub/page.html']));
    const c = await request(ctx.port, { path: '/ext/sub/' });
    assert.equal(c.headers['x-fell'], 'through');
  });

  it('sends the body through a middleware that transforms it (compression)', async () => {
    const zlib = require('node:zlib');
    const c0 = counters(ctx.daemon);
    const z = await request(ctx.port, { path: '/z/small.txt',
      headers: { 'accept-encoding': 'gzip' } });
    assert.equal(z.status, 200);
    assert.equal(z.headers['content-encoding'], 'gzip');
    assert.equal(sha256(zlib.gunzipSync(z.body)), sha256(ctx.tree.files['small.txt']));
    const r = await request(ctx.port, { path: '/z/small.txt', headers: { range: 'bytes=10-29' } });
    assert.equal(r.status, 206);
    assert.equal(sha256(r.body), sha256(ctx.tree.files['small.txt'].subarray(10, 30)));
    const b = await request(ctx.port, { path: '/z/data.bin',
      headers: { 'accept-encoding': 'gzip' } });
    assert.equal(b.status, 200);
    const body = b.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(b.body) : b.body;
    assert.equal(sha256(body), sha256(ctx.tree.files['data.bin']));
    /* Node wrote these bodies itself: none of them went around the middleware. */
    assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
  });

  it('rejects bad options when the middleware is made', () => {
    const cases = [
      [() => serveStatic(''), 'ERR_INVALID_ARG_TYPE'],
      [() => serveStatic(42), 'ERR_INVALID_ARG_TYPE'],
      [() => serveStatic('/tmp', { dotfiles: 'maybe' }), 'ERR_INVALID_ARG_VALUE'],
      [() => serveStatic('/tmp', { index: [1] }), 'ERR_INVALID_ARG_VALUE'],
      [() => serveStatic('/tmp', { index: '../x' }), 'ERR_INVALID_ARG_VALUE'],
      [() => serveStatic('/tmp', { fallthrough: 'no' }), 'ERR_INVALID_ARG_TYPE'],
      [() => serveStatic('/tmp', { setHeaders: 1 }), 'ERR_INVALID_ARG_TYPE'],
      [() => serveStatic('/tmp', { client: { } }), 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [fn, code] of cases)
      assert.throws(fn, (err) => err.code === code);
  });

  it('leaves no descriptor behind', async () => {
    assert.equal(await waitFor(() => ctx.daemon.fds(), ctx.daemonFds), ctx.daemonFds);
    assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
  });
});
