'use strict';

/*
 * The Fastify plugin against a real daemon: the common scenarios on the
 * directory route, then reply.sendFile(), prefixes, redirects, the
 * not-found handler, traversal.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { describe, it, before, after } = require('node:test');

const Fastify = require('fastify');
const sendfiledFastify = require('../fastify');
const {
  commonTests, Daemon, makeClient, makeTree, request, pipelined, get, sha256, counters, delta,
  fdCount, waitFor, sleep,
} = require('./http-common');

async function start(app) {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app.server.address().port;
}

commonTests('the Fastify plugin', async ({ root, client }) => {
  const app = Fastify({ forceCloseConnections: true });
  await app.register(sendfiledFastify, { root, client });
  const port = await start(app);
  return { port, close: () => app.close() };
});

describe('the Fastify plugin: reply.sendFile, prefixes, errors', { timeout: 300000 }, () => {
  const ctx = {};

  before(async () => {
    ctx.base = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-http-fastify-'));
    ctx.tree = makeTree(ctx.base);
    ctx.daemon = await new Daemon().start();
    ctx.client = makeClient(ctx.daemon);
    const app = ctx.app = Fastify({ forceCloseConnections: true });
    await app.register(sendfiledFastify, { root: ctx.tree.root, prefix: '/static', client:
      ctx.client });
    app.setNotFoundHandler((request, reply) => {
      reply.code(404).header('x-not-found', 'yes').send('not found');
    });
    app.get('/download', (request, reply) => {
      reply.header('x-app', 'kept').header('content-type', 'application/x-mine');
      return reply.sendFile('data.bin');
    });
    app.get('/async', async (request, reply) => reply.sendFile('sub/page.html'));
    app.get('/elsewhere', (request, reply) =>
      reply.sendFile('page.html', path.join(ctx.tree.root, 'sub'), { maxAge: 3600e3 }));
    app.get('/missing', (request, reply) => reply.sendFile('nope.bin'));
    app.get('/escape', (request, reply) => reply.sendFile('../secret.txt'));
    app.get('/teapot', (request, reply) => {
      reply.code(418);
      return reply.sendFile('small.txt');
    });
    ctx.port = await start(app);
    assert.equal((await request(ctx.port, { path: '/static/small.txt' })).status, 200);
    await sleep(300);
    ctx.ownFds = fdCount();
    ctx.daemonFds = ctx.daemon.fds();
  });

  after(async () => {
    if (ctx.app)
      await ctx.app.close();
    if (ctx.client)
      ctx.client.close();
    if (ctx.daemon)
      await ctx.daemon.stop();
    if (ctx.base)
      fs.rmSync(ctx.base, { recursive: true, force: true });
  });

  it('reply.sendFile() keeps the reply headers and status, through the daemon', async () => {
    const c0 = counters(ctx.daemon);
    const a = await request(ctx.port, { path: '/download', headers: { range: 'bytes=5-1004' } });
    assert.equal(a.status, 206);
    assert.equal(a.headers['x-app'], 'kept');
    assert.equal(a.headers['content-type'], 'application/x-mine');
    assert.equal(a.headers['content-range'], `bytes 5-1004/${ctx.tree.files['data.bin'].length}`);
    assert.equal(sha256(a.body), sha256(ctx.tree.files['data.bin'].subarray(5, 1005)));
    const b = await request(ctx.port, { path: '/async' });
    assert.equal(b.status, 200);
    assert.equal(b.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(sha256(b.body), sha256(ctx.tree.files['sub/page.html']));
    const c = await request(ctx.port, { path: '/elsewhere' });
    assert.equal(c.status, 200);
    assert.equal(c.headers['cache-control'], 'public, max-age=3600');
    assert.equal(sha256(c.body), sha256(ctx.tree.files['sub/page.html']));
    const t = await request(ctx.port, { path: '/teapot' });
    assert.equal(t.status, 418);
    assert.equal(sha256(t.body), sha256(ctx.tree.files['small.txt']));
    assert.deepEqual(delta(c0, counters(ctx.daemon)),
      { bytes: 1000 + 4321 + 4321 + 5000, sendfile: 4, ok: 4 });
  });

  it('sends what it cannot find to the not-found handler', async () => {
    for (const p of ['/missing', '/static/nope.bin', '/static/.hidden', '/static/noindex/']) {
      const r = await request(ctx.port, { path: p });
      assert.equal(r.status, 404, p);
      assert.equal(r.headers['x-not-found'], 'yes', p);
    }
  });

  it('refuses path traversal, plain and encoded', async () => {
    const secret = sha256(ctx.tree.secret);
    const c0 = counters(ctx.daemon);
    const e = await request(ctx.port, { path: '/escape' });
    assert.equal(e.status, 403);
    for (const p of ['/static/../secret.txt', '/static/%2e%2e/secret.txt',
      '/static/sub/%2E%2E/%2e%2e/secret.txt', '/static/%2e%2e%2fsecret.txt',
      '/static/..%2fsecret.txt', '/static/small.txt%00', '/static/%ff']) {
      const { responses } = await pipelined(ctx.port, [get(p)]);
      assert.ok([400, 403, 404].includes(responses[0].status), `${p}: ${responses[0].status}`);
      assert.notEqual(sha256(responses[0].body), secret, p);
    }
    assert.equal(delta(c0, counters(ctx.daemon)).bytes, 0);
  });

  it('serves index files under the prefix and redirects directories', async () => {
    const { responses } = await pipelined(ctx.port, [
      get('/static/'), get('/static/sub/'), get('/static/sub'), get('/static'),
      get('/static/sub?q=1'), get('/static/a%20b.txt'),
    ]);
    assert.equal(responses[0].status, 200);
    assert.equal(sha256(responses[0].body), sha256(ctx.tree.files['index.html']));
    assert.equal(responses[1].status, 200);
    assert.equal(sha256(responses[1].body), sha256(ctx.tree.files['sub/index.html']));
    assert.equal(responses[2].status, 301);
    assert.equal(responses[2].headers.location, '/static/sub/');
    assert.equal(responses[3].status, 301);
    assert.equal(responses[3].headers.location, '/static/');
    assert.equal(responses[4].headers.location, '/static/sub/?q=1');
    assert.equal(responses[5].status, 200);
    assert.equal(sha256(responses[5].body), sha256(ctx.tree.files['a b.txt']));
  });

  it('answers HEAD and conditional requests on the directory route', async () => {
    const h = await request(ctx.port, { path: '/static/data.bin', method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], String(ctx.tree.files['data.bin'].length));
    assert.equal(h.body.length, 0);
    const n = await request(ctx.port, { path: '/static/data.bin',
      headers: { 'if-none-match': h.headers.etag } });
    assert.equal(n.status, 304);
    const p = await request(ctx.port, { path: '/static/data.bin', method: 'POST' });
    assert.equal(p.status, 404);
  });

  it('rejects bad plugin options at registration', async () => {
    for (const opts of [{ root: 42 }, { root: '/tmp', prefix: 'x' },
      { root: '/tmp', dotfiles: 'sometimes' }]) {
      const app = Fastify();
      await assert.rejects(app.register(sendfiledFastify, opts).ready(),
        (err) => /ERR_INVALID_ARG/.test(err.code));
      await app.close();
    }
  });

  it('leaves no descriptor behind', async () => {
    assert.equal(await waitFor(() => ctx.daemon.fds(), ctx.daemonFds), ctx.daemonFds);
    assert.equal(await waitFor(() => fdCount(), ctx.ownFds), ctx.ownFds);
  });
});
