'use strict';
// Finding libsendfiled: an explicit path, $SENDFILED_LIB, a build tree above
// the package, the system; the error that lists every place tried. And the
// addon in a worker thread that exits with its client open.

const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { describe, it, before, after } = require('node:test');

const sendfiled = require('..');
const h = require('./harness');

const PKG = path.resolve(__dirname, '..');

// Run @code in a fresh node with the package at @pkg; returns { status, out, err }.
function runNode(pkg, code, env) {
  const r = spawnSync(process.execPath, ['-e', code], {
    env: { PATH: process.env.PATH, ...env, SFD_PKG: pkg },
    encoding: 'utf8',
    timeout: 60000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe('libsendfiled lookup', () => {
  let dir;
  let copy;
  let built;

  before(() => {
    dir = h.tmpdir();
    built = sendfiled.loadLibrary().path;
    // A copy of the package with no build tree above it.
    copy = path.join(dir, 'pkg');
    fs.mkdirSync(path.join(copy, 'build', 'Release'), { recursive: true });
    for (const f of ['index.js', 'package.json']) fs.copyFileSync(path.join(PKG, f), path.join(copy, f));
    fs.cpSync(path.join(PKG, 'lib'), path.join(copy, 'lib'), { recursive: true });
    fs.copyFileSync(path.join(PKG, 'build', 'Release', 'sendfiled.node'),
                    path.join(copy, 'build', 'Release', 'sendfiled.node'));
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tryLoad = `
    const s = require(process.env.SFD_PKG);
    try { console.log('LOADED ' + s.loadLibrary().path); }
    catch (e) { console.log(e.code); console.log(e.message); process.exit(3); }`;

  it('lists every place tried when nothing loads', () => {
    const r = runNode(copy, tryLoad, { LD_LIBRARY_PATH: path.join(dir, 'nothing') });
    // The system may have libsendfiled installed: then it is found there.
    if (r.status === 0) {
      assert.match(r.out, /^LOADED libsendfiled\.so\.0$/m);
      return;
    }
    assert.equal(r.status, 3, r.err);
    assert.match(r.out, /^ERR_SENDFILED_LIBRARY_NOT_FOUND$/m);
    assert.match(r.out, /\$SENDFILED_LIB: not set/);
    assert.ok(r.out.includes(`build*/client-lib/libsendfiled.so in ${copy} and its parents: none found`), r.out);
    assert.match(r.out, /libsendfiled\.so\.0: .*(cannot open|No such file)/);
  });

  it('uses $SENDFILED_LIB, and only it', () => {
    let r = runNode(copy, tryLoad, { SENDFILED_LIB: built });
    assert.equal(r.status, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`^LOADED ${built}$`, 'm'));
    const bogus = path.join(dir, 'libnot.so');
    fs.writeFileSync(bogus, 'not a library');
    r = runNode(PKG, tryLoad, { SENDFILED_LIB: bogus });
    assert.equal(r.status, 3);
    assert.ok(r.out.includes(bogus), r.out);
    assert.doesNotMatch(r.out, /build\*/);
  });

  it('finds a build tree above the package', () => {
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(path.join(tree, 'build-x', 'client-lib'), { recursive: true });
    fs.copyFileSync(built, path.join(tree, 'build-x', 'client-lib', 'libsendfiled.so'));
    fs.cpSync(copy, path.join(tree, 'bindings', 'node'), { recursive: true });
    const r = runNode(path.join(tree, 'bindings', 'node'), tryLoad, {});
    assert.equal(r.status, 0, r.out + r.err);
    assert.ok(r.out.includes(`LOADED ${path.join(tree, 'build-x', 'client-lib', 'libsendfiled.so')}`), r.out);
  });

  it('skips a build tree configured with sanitizers', () => {
    // Its library would load only into a process started with the
    // sanitizer's runtime. The tree named first ("build-a") is skipped.
    const tree = path.join(dir, 'tree-san');
    for (const [b, value] of [['build-a', 'address,undefined'], ['build-b', 'none']]) {
      fs.mkdirSync(path.join(tree, b, 'client-lib'), { recursive: true });
      fs.mkdirSync(path.join(tree, b, 'meson-info'), { recursive: true });
      fs.copyFileSync(built, path.join(tree, b, 'client-lib', 'libsendfiled.so'));
      fs.writeFileSync(path.join(tree, b, 'meson-info', 'intro-buildoptions.json'),
                       JSON.stringify([{ name: 'b_sanitize', value }]));
    }
    fs.cpSync(copy, path.join(tree, 'bindings', 'node'), { recursive: true });
    const r = runNode(path.join(tree, 'bindings', 'node'), tryLoad, {});
    assert.equal(r.status, 0, r.out + r.err);
    assert.ok(r.out.includes(`LOADED ${path.join(tree, 'build-b', 'client-lib', 'libsendfiled.so')}`), r.out);
  });

  it('takes an explicit path, and rejects a file that is not the library', () => {
    const r = runNode(copy, `
      const s = require(process.env.SFD_PKG);
      const lib = s.loadLibrary(${JSON.stringify(built)});
      const c = new s.Client({ lib: ${JSON.stringify(built)}, path: '/nonexistent/x.sock' });
      console.log(lib.path === c.library.path ? 'SAME' : 'DIFFERENT');
      try { new s.Client({ lib: '/etc/hostname' }); } catch (e) { console.log(e.code); }
      try { new s.Client({ lib: 42 }); } catch (e) { console.log(e.code); }`, {});
    assert.equal(r.status, 0, r.out + r.err);
    assert.deepEqual(r.out.trim().split('\n'),
                     ['SAME', 'ERR_SENDFILED_LIBRARY_NOT_FOUND', 'ERR_INVALID_ARG_TYPE']);
  });

  it('frees a client left open in a worker thread that exits', async () => {
    const d = await new h.Daemon(h.tmpdir(), ['--no-control']).start();
    try {
      const file = h.makeFile(d.dir, 'f.bin', 100000);
      const out = execFileSync(process.execPath, ['-e', `
        const { Worker } = require('node:worker_threads');
        const code = \`
          const { parentPort, workerData } = require('node:worker_threads');
          const net = require('node:net');
          const s = require(workerData.pkg);
          const c = new s.Client({ path: workerData.sock, requireDaemon: true });
          const srv = net.createServer((p) => p.resume()).listen(0, '127.0.0.1', () => {
            const k = net.connect(srv.address().port, '127.0.0.1', async () => {
              const r = await c.sendfile(k, workerData.file);
              parentPort.postMessage(r.bytesSent);
              k.destroy(); srv.close();
            });
          });\`;
        let n = 0;
        const run = () => new Promise((res, rej) => {
          const w = new Worker(code, { eval: true, workerData: { pkg: process.env.SFD_PKG,
            sock: ${JSON.stringify(d.path)}, file: ${JSON.stringify(file.path)} } });
          w.on('message', (m) => { n += m; });
          w.on('error', rej);
          w.on('exit', res);
        });
        (async () => { for (let i = 0; i < 3; i++) await run(); console.log('SENT ' + n); })();`],
      { env: { ...process.env, SFD_PKG: PKG }, encoding: 'utf8', timeout: 120000 });
      assert.match(out, /^SENT 300000$/m);
      assert.ok(d.alive());
    } finally {
      await d.stop();
      fs.rmSync(d.dir, { recursive: true, force: true });
    }
  });
});
