'use strict';
// Builds the native addon with the node-gyp that npm bundles, against the
// headers of the Node.js that runs this script (found beside its executable,
// as Debian's nodejs and libnode-dev and the official tarballs lay them out)
// and against libsendfiled's public header. Nothing is downloaded: when the
// headers are missing the build fails and says what to install.
//
// Environment: SENDFILED_INCLUDE_DIR (the directory holding sendfiled.h),
// SENDFILED_NODEDIR (the directory holding include/node/node_api.h).

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const pkg = path.resolve(__dirname, '..');

function fail(msg) {
  process.stderr.write(`sendfiled: cannot build the native addon: ${msg}\n`);
  process.exit(1);
}

function nodeDir() {
  const tried = [];
  const cands = [];
  if (process.env.SENDFILED_NODEDIR) cands.push(process.env.SENDFILED_NODEDIR);
  const prefix = process.config && process.config.variables && process.config.variables.node_prefix;
  if (prefix) cands.push(prefix);
  cands.push(path.resolve(path.dirname(process.execPath), '..'));
  cands.push('/usr', '/usr/local');
  for (const d of cands) {
    const h = path.join(d, 'include', 'node', 'node_api.h');
    if (fs.existsSync(h)) return d;
    tried.push(h);
  }
  fail(`the headers of Node.js ${process.version} were not found (tried ${tried.join(', ')}); ` +
       'install them (Debian: apt-get install libnode-dev, or nodejs from a source that ships ' +
       'include/node) or set SENDFILED_NODEDIR');
}

// sendfiled.h: SENDFILED_INCLUDE_DIR, the source tree this package sits in
// (client-lib/include), then the system's include directories.
function includeDir() {
  const tried = [];
  const cands = [];
  if (process.env.SENDFILED_INCLUDE_DIR) cands.push(process.env.SENDFILED_INCLUDE_DIR);
  for (let d = pkg; ; d = path.dirname(d)) {
    cands.push(path.join(d, 'client-lib', 'include'));
    if (path.dirname(d) === d) break;
  }
  cands.push('/usr/local/include', '/usr/include');
  for (const d of cands) {
    if (fs.existsSync(path.join(d, 'sendfiled.h'))) return d;
    tried.push(d);
  }
  fail('sendfiled.h (libsendfiled\'s public header) was not found; set SENDFILED_INCLUDE_DIR ' +
       'or install libsendfiled. Tried:\n  ' + tried.join('\n  '));
}

function nodeGyp() {
  // npm runs install scripts with npm_config_node_gyp pointing at its own
  // bundled node-gyp.
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  const npmDir = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  cands.push(path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  cands.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  cands.push('/usr/share/nodejs/node-gyp/bin/node-gyp.js');
  for (const c of cands) if (fs.existsSync(c)) return c;
  fail('node-gyp was not found (it comes with npm); tried ' + cands.join(', '));
}

const nodedir = nodeDir();
const inc = includeDir();
const gyp = nodeGyp();
const env = { ...process.env, SENDFILED_INCLUDE_DIR: inc };
// Never fetch headers: node-gyp is told where they are, and a download
// attempt (a wrong nodedir) would fail rather than reach the network.
env.npm_config_nodedir = nodedir;
const args = [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'];
const r = spawnSync(process.execPath, args, { cwd: pkg, env, stdio: 'inherit' });
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`node-gyp exited with status ${r.status}`);
