'use strict';
// Run by run-tests.sh in a scratch project where the package was installed as
// a user installs it: the installed copy (not this checkout) loads, finds
// libsendfiled by its own lookup rules, and sends a file through a real
// daemon.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');

async function main() {
  const entry = require.resolve('sendfiled', { paths: [process.cwd()] });
  assert.ok(entry.startsWith(path.join(process.cwd(), 'node_modules') + path.sep),
            `sendfiled resolved to ${entry}, not to the installed copy`);
  const sendfiled = require(entry);
  const addon = path.join(path.dirname(entry), 'build', 'Release', 'sendfiled.node');
  assert.ok(fs.existsSync(addon), `no addon at ${addon}`);
  delete process.env.SENDFILED_LIB;
  const lib = sendfiled.loadLibrary();
  const dir = h.tmpdir();
  const daemon = await new h.Daemon(dir, ['--no-control']).start();
  const client = new sendfiled.Client({ path: daemon.path, requireDaemon: true });
  try {
    const file = h.makeFile(dir, 'f.bin', 300000);
    const r = await h.Receiver.open();
    const res = await client.sendfile(r.socket, file.path);
    const got = await r.finish();
    assert.equal(res.bytesSent, file.data.length);
    assert.equal(got.sha256, h.sha256(file.data));
    process.stdout.write(`installed sendfiled works: ${entry}, libsendfiled ${lib.path}, ` +
                         `${res.bytesSent} bytes by ${res.method}\n`);
  } finally {
    client.close();
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`install check failed: ${e.stack || e}\n`);
  process.exit(1);
});
