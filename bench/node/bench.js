#!/usr/bin/env node
'use strict';

/*
 * HTTP file serving from Node.js with and without sendfiled, and nginx, in
 * one run.
 *
 * Servers, each its own process, serving the same files:
 *   offload  node:http + sendfiled's sendFile(): Node writes the headers, the
 *            daemon sends the body with sendfile(2)
 *   stream   node:http + fs.createReadStream(path).pipe(res), the same headers
 *            (what serve-static and res.sendFile do)
 *   nginx    nginx, sendfile on, 2 workers, from a generated configuration
 *
 * Loads:
 *   big  one keep-alive connection downloads a 1 GiB file --downloads times
 *        (the client is a small Node process reading into one 4 MiB buffer);
 *        offload and stream.
 *   mib  wrk -t2 -c32 on 16 distinct 1 MiB files; offload, stream, nginx.
 *
 * The servers run side by side (idle while another is measured); each load
 * runs --rounds rounds, and the order within a round alternates (A B C, then
 * C B A, ...), so that the machine's other work weighs on every server alike.
 * The statistic, fixed in advance: for each ratio (offload over stream,
 * offload over nginx) the ratio is taken within each round, and the median of
 * those per-round ratios is reported, with every round's value beside it.
 *
 * CPU: user + system seconds from /proc/PID/stat, of the Node server process,
 * of the daemon, and of nginx (master and workers), over each run.
 *
 * Usage: bench.js [--rounds N] [--downloads N] [--seconds S] [--connections N]
 *                 [--files N] [--dir DIR] [--out FILE]
 * Environment: SENDFILED_BIN (the daemon), SENDFILED_LIB (libsendfiled).
 */

const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { pipeline } = require('node:stream');

const HERE = __dirname;
const TOP = path.resolve(HERE, '..', '..');
const PKG = path.join(TOP, 'bindings', 'node');
const MiB = 1 << 20;
const GiB = 1 << 30;
const TICK = 100; /* USER_HZ: /proc/PID/stat counts in 1/100 s on Linux. */

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const k = a.slice(2);
      out[k] = argv[i + 1];
      i++;
    } else {
      out._.push(a);
    }
  }
  return out;
}

/* -- the servers (child processes) --------------------------------------- */

function etag(st) {
  return `"${Math.floor(st.mtimeMs).toString(16)}-${st.size.toString(16)}"`;
}

function serve(args) {
  const dir = args.dir;
  const mode = args.mode;
  let sendFile = null;
  let client = null;
  let aborted = 0;
  if (mode === 'offload') {
    const sendfiled = require(PKG);
    sendFile = sendfiled.sendFile;
    client = new sendfiled.Client({ path: args.socket, requireDaemon: true });
  }
  const fileFor = (url) => {
    if (url === '/big')
      return path.join(dir, 'big.bin');
    const m = /^\/mib\/(\d+)$/.exec(url);
    return m ? path.join(dir, `mib${m[1]}.bin`) : null;
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/stats') {
      const body = JSON.stringify(mode === 'offload'
        ? { ...require(PKG).stats(), responsesCut: aborted } : {});
      res.setHeader('Content-Type', 'application/json');
      return res.end(body);
    }
    const file = fileFor(req.url);
    if (!file) {
      res.statusCode = 404;
      return res.end();
    }
    if (mode === 'offload') {
      sendFile(req, res, file, { client }).then((r) => {
        /* wrk closes its connections mid-response when its time is up. */
        if (r.aborted)
          aborted++;
      }, (err) => {
        process.stderr.write(`sendFile: ${err.message}\n`);
        res.destroy();
      });
      return undefined;
    }
    fs.stat(file, (err, st) => {
      if (err) {
        res.statusCode = 404;
        return res.end();
      }
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Length', st.size);
      res.setHeader('Last-Modified', st.mtime.toUTCString());
      res.setHeader('ETag', etag(st));
      res.setHeader('Accept-Ranges', 'bytes');
      res.setHeader('Cache-Control', 'public, max-age=0');
      return pipeline(fs.createReadStream(file), res, () => {});
    });
    return undefined;
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${server.address().port}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => {
      if (client)
        client.close();
      process.exit(0);
    });
  });
}

/* -- the big-file client (a child process) ------------------------------- */

function fetch(args) {
  const n = Number(args.n || 3);
  const buf = Buffer.allocUnsafe(4 * MiB);
  let left = 0;
  let head = Buffer.alloc(0);
  let done = 0;
  let total = 0;
  let t0 = 0;
  const reqText = `GET ${args.path || '/big'} HTTP/1.1\r\nHost: bench\r\n\r\n`;
  const s = net.connect({
    port: Number(args.port),
    host: '127.0.0.1',
    onread: {
      buffer: buf,
      callback(nread, b) {
        let off = 0;
        while (off < nread) {
          if (left === 0) {
            head = Buffer.concat([head, b.subarray(off, nread)]);
            const end = head.indexOf('\r\n\r\n');
            if (end === -1)
              return true;
            const h = head.subarray(0, end).toString('latin1');
            if (!h.startsWith('HTTP/1.1 200'))
              throw new Error(`unexpected response: ${h.split('\r\n')[0]}`);
            left = Number(/content-length:\s*(\d+)/i.exec(h)[1]);
            const rest = head.length - (end + 4);
            off = nread - rest;
            head = Buffer.alloc(0);
            continue;
          }
          const take = Math.min(left, nread - off);
          left -= take;
          total += take;
          off += take;
          if (left === 0) {
            done++;
            if (done === n) {
              const dt = Number(process.hrtime.bigint() - t0) / 1e9;
              process.stdout.write(`${total} ${dt}\n`);
              s.destroy();
              return false;
            }
            s.write(reqText);
          }
        }
        return true;
      },
    },
  });
  s.on('connect', () => {
    t0 = process.hrtime.bigint();
    s.write(reqText);
  });
  s.on('error', (err) => {
    process.stderr.write(`fetch: ${err.message}\n`);
    process.exit(1);
  });
}

/* -- orchestration --------------------------------------------------------- */

function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

/* The pid and its children (nginx's workers). */
function family(pid) {
  const out = [pid];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d))
      continue;
    try {
      const f = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid)
        out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

function cpuOf(pids) {
  let t = 0;
  for (const p of pids) {
    try {
      t += cpuSeconds(p);
    } catch {
      /* gone */
    }
  }
  return t;
}

function makeFiles(dir, nFiles) {
  const block = Buffer.alloc(MiB);
  let x = 0x12345678;
  for (let i = 0; i < MiB; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    block.writeUInt32LE(x, i);
  }
  const big = path.join(dir, 'big.bin');
  if (!fs.existsSync(big) || fs.statSync(big).size !== GiB) {
    const fd = fs.openSync(big, 'w');
    for (let i = 0; i < 1024; i++) {
      block.writeUInt32LE(i, 0);
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
  }
  for (let i = 0; i < nFiles; i++) {
    const p = path.join(dir, `mib${i}.bin`);
    if (!fs.existsSync(p)) {
      block.writeUInt32LE(0x10000 + i, 0);
      fs.writeFileSync(p, block);
    }
  }
  fs.chmodSync(dir, 0o755);
}

/* Reads every file once, so that each load starts from the page cache. */
function warm(dir) {
  const buf = Buffer.allocUnsafe(16 * MiB);
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.bin'))
      continue;
    const fd = fs.openSync(path.join(dir, f), 'r');
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0)
      ;
    fs.closeSync(fd);
  }
}

function lineOf(proc) {
  return new Promise((resolve, reject) => {
    let acc = '';
    const onData = (d) => {
      acc += d;
      const i = acc.indexOf('\n');
      if (i !== -1) {
        proc.stdout.off('data', onData);
        resolve(acc.slice(0, i).trim());
      }
    };
    proc.stdout.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`${proc.spawnargs.join(' ')} exited (${code})`)));
  });
}

function run(argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out)
      : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`))));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok)
      return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startNginx(tmp, dir) {
  const port = await freePort();
  const prefix = path.join(tmp, 'nginx');
  fs.mkdirSync(prefix, { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, `daemon off;
master_process on;
worker_processes 2;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${dir};
    location /mib/ { rewrite ^/mib/(\\d+)$ /mib$1.bin break; }
    location = /big { rewrite ^ /big.bin break; }
  }
}
`);
  const p = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port);
  return { proc: p, port, pids: () => family(p.pid), conf };
}

const WRK_LUA = (files) => `
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/mib/" .. (n % ${files}))
end
`;

async function runBig(port, downloads, serverPids, daemonPid) {
  const c0 = cpuOf(serverPids());
  const d0 = cpuOf([daemonPid]);
  const out = await run([process.execPath, __filename, 'fetch', '--port', String(port), '--n',
    String(downloads)]);
  const c1 = cpuOf(serverPids());
  const d1 = cpuOf([daemonPid]);
  const [bytes, secs] = out.trim().split(' ').map(Number);
  return { gbs: bytes / secs / 1e9, bytes, secs, cpu: c1 - c0, dcpu: d1 - d0 };
}

async function runMib(port, o, script, serverPids, daemonPid) {
  const c0 = cpuOf(serverPids());
  const d0 = cpuOf([daemonPid]);
  const out = await run(['wrk', '-t2', `-c${o.connections}`, `-d${o.seconds}s`, '-s', script,
    `http://127.0.0.1:${port}`]);
  const c1 = cpuOf(serverPids());
  const d1 = cpuOf([daemonPid]);
  const rps = Number(/Requests\/sec:\s*([\d.]+)/.exec(out)[1]);
  const reqs = Number(/(\d+) requests in/.exec(out)[1]);
  const errs = /Non-2xx or 3xx responses: (\d+)|Socket errors: .*/.exec(out);
  return { rps, reqs, cpu: c1 - c0, dcpu: d1 - d0, errs: errs ? errs[0] : '' };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function congestion(want) {
  const key = 'net.ipv4.tcp_congestion_control';
  try {
    const before = execFileSync('sysctl', ['-n', key], { encoding: 'utf8' }).trim();
    if (before === want)
      return { before, after: want, restore: () => {} };
    execFileSync('sysctl', ['-q', '-w', `${key}=${want}`], { stdio: 'ignore' });
    const after = execFileSync('sysctl', ['-n', key], { encoding: 'utf8' }).trim();
    return {
      before,
      after,
      restore: () => execFileSync('sysctl', ['-q', '-w', `${key}=${before}`], { stdio: 'ignore' }),
    };
  } catch (err) {
    return { before: 'unknown', after: 'unchanged', restore: () => {}, error: err.message };
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a._[0] === 'serve')
    return serve(a);
  if (a._[0] === 'fetch')
    return fetch(a);
  const o = {
    rounds: Number(a.rounds || 7),
    downloads: Number(a.downloads || 4),
    seconds: Number(a.seconds || 4),
    connections: Number(a.connections || 32),
    files: Number(a.files || 16),
    out: a.out || path.join(HERE, 'RESULTS.md'),
  };
  const daemonBin = process.env.SENDFILED_BIN || path.join(TOP, 'build-release', 'daemon',
    'sendfiled');
  const uptime0 = execFileSync('uptime', { encoding: 'utf8' }).trim();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sfd-node-bench-'));
  const dir = a.dir || path.join(tmp, 'data');
  fs.mkdirSync(dir, { recursive: true });
  process.stdout.write(`making the files in ${dir} ...\n`);
  makeFiles(dir, o.files);
  const script = path.join(tmp, 'mib.lua');
  fs.writeFileSync(script, WRK_LUA(o.files));

  const cc = congestion('cubic');
  process.stdout.write(`tcp_congestion_control: ${cc.before} -> ${cc.after}\n`);
  const sock = path.join(tmp, 'sendfiled.sock');
  const daemon = spawn(daemonBin, ['--socket', sock, '--log-level', 'warning'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  const procs = [];
  const cleanup = () => {
    for (const p of procs) {
      if (p.exitCode === null)
        p.kill('SIGTERM');
    }
    if (daemon.exitCode === null)
      daemon.kill('SIGTERM');
    cc.restore();
  };
  process.on('exit', cleanup);
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  for (let i = 0; i < 200 && !fs.existsSync(sock); i++)
    await sleep(25);

  const servers = {};
  for (const mode of ['offload', 'stream']) {
    const p = spawn(process.execPath, [__filename, 'serve', '--mode', mode, '--socket', sock,
      '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    procs.push(p);
    const port = Number(await lineOf(p));
    servers[mode] = { port, pids: () => [p.pid] };
  }
  const ngx = await startNginx(tmp, dir);
  procs.push(ngx.proc);
  servers.nginx = { port: ngx.port, pids: ngx.pids };

  const order = (names, r) => (r % 2 === 0 ? names : [...names].reverse());
  const big = { offload: [], stream: [] };
  const mib = { offload: [], stream: [], nginx: [] };
  try {
    warm(dir);
    for (const k of ['offload', 'stream'])
      await runBig(servers[k].port, 1, servers[k].pids, daemon.pid); /* warm-up */
    for (let r = 0; r < o.rounds; r++) {
      warm(dir);
      for (const k of order(['offload', 'stream'], r)) {
        const x = await runBig(servers[k].port, o.downloads, servers[k].pids, daemon.pid);
        big[k].push(x);
        process.stdout.write(`  1 GiB  round ${r} ${k.padEnd(8)} ${x.gbs.toFixed(2)} GB/s, ` +
          `server ${x.cpu.toFixed(2)} s, daemon ${x.dcpu.toFixed(2)} s CPU\n`);
      }
    }
    warm(dir);
    for (const k of ['offload', 'stream', 'nginx'])
      await runMib(servers[k].port, { ...o, seconds: 1 }, script, servers[k].pids, daemon.pid);
    for (let r = 0; r < o.rounds; r++) {
      warm(dir);
      for (const k of order(['offload', 'stream', 'nginx'], r)) {
        const x = await runMib(servers[k].port, o, script, servers[k].pids, daemon.pid);
        mib[k].push(x);
        process.stdout.write(`  1 MiB  round ${r} ${k.padEnd(8)} ${x.rps.toFixed(0)} req/s, ` +
          `server ${x.cpu.toFixed(2)} s, daemon ${x.dcpu.toFixed(2)} s CPU ${x.errs}\n`);
      }
    }
  } finally {
    const st = await new Promise((resolve) => {
      http.get(`http://127.0.0.1:${servers.offload.port}/stats`, (res) => {
        let b = '';
        res.on('data', (d) => { b += d; });
        res.on('end', () => resolve(JSON.parse(b)));
      }).on('error', () => resolve(null));
    });
    o.clientStats = st;
    o.daemonStats = (() => {
      try {
        const ctl = path.join(path.dirname(path.dirname(daemonBin)), 'tools', 'sendfilectl');
        return JSON.parse(execFileSync(ctl, ['--socket', sock, 'stats', '--json'],
          { encoding: 'utf8' }));
      } catch {
        return null;
      }
    })();
    cleanup();
    await sleep(300);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  o.uptime0 = uptime0;
  o.uptime1 = execFileSync('uptime', { encoding: 'utf8' }).trim();
  o.cc = cc;
  o.nginxVersion = 'nginx';
  try {
    o.nginxVersion = execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim();
  } catch {
    /* keep */
  }
  report(o, big, mib);
  return undefined;
}

function report(o, big, mib) {
  const f2 = (x) => x.toFixed(2);
  const f3 = (x) => x.toFixed(3);
  const pairs = (a, b, fn) => a.map((x, i) => fn(x, b[i]));
  const fmt = (xs) => [...xs].sort((p, q) => p - q).map(f2).join(' ');
  const gbOf = (x) => x.bytes / 1e9;

  const bigRatio = pairs(big.offload, big.stream, (x, y) => x.gbs / y.gbs);
  const cpuPerByte = (x) => x.cpu / gbOf(x);
  const bigCpuRatio = pairs(big.offload, big.stream, (x, y) => cpuPerByte(x) / cpuPerByte(y));
  const mibRatio = pairs(mib.offload, mib.stream, (x, y) => x.rps / y.rps);
  const ngxRatio = pairs(mib.offload, mib.nginx, (x, y) => x.rps / y.rps);
  const perReq = (x, k) => (x[k] / x.reqs) * 1e6; /* microseconds of CPU per request */

  const cmd = `flock /work/bench.lock bench/node/run.sh ${process.argv.slice(2).join(' ')}`.trim();
  const L = [];
  L.push('# Node.js HTTP file serving: sendfiled vs fs.createReadStream, and nginx', '');
  L.push(`Command, from the top of the tree: \`${cmd}\` (it installs wrk and nginx-light from ` +
    'Debian, builds a release daemon and the addon, and runs `bench/node/bench.js`).', '');
  L.push(`Machine: ${os.cpus().length} CPUs, Linux ${os.release()}, Node.js ` +
    `${process.version}, ${o.nginxVersion}; ${new Date().toISOString().slice(0, 10)}. ` +
    'Loopback TCP, files in the page cache (read again before every round). GB/s is 10^9 ' +
    'bytes of body per second. CPU is user + system seconds (from /proc/PID/stat) of the Node ' +
    'server process, of the daemon, and of nginx (master + workers), over each run.');
  L.push('');
  L.push(`TCP congestion control: ${o.cc.before} -> ${o.cc.after} for the run ` +
    '(`sysctl -w net.ipv4.tcp_congestion_control=cubic`, restored at the end: Node cannot set ' +
    'TCP_CONGESTION on its own sockets, nor can wrk or nginx).');
  L.push('');
  L.push(`Load: at the start \`${o.uptime0}\`; at the end \`${o.uptime1}\`. The machine is ` +
    'shared: anything else running shows in the spread of the rounds.');
  L.push('');
  L.push(`Statistic, chosen before the run: each load runs ${o.rounds} rounds; in each round ` +
    'every server is measured once, in alternating order (A B C, C B A, ...). Each ratio is ' +
    'computed within a round; the figure is the **median of the per-round ratios**, with all ' +
    'of them listed (sorted).');
  L.push('');
  L.push(`## 1 GiB file, one keep-alive connection (${o.downloads} downloads per run)`, '');
  L.push('| server | GB/s (median) | all rounds | Node CPU s per GB | daemon CPU s per GB |');
  L.push('| --- | ---: | --- | ---: | ---: |');
  for (const k of ['offload', 'stream']) {
    const xs = big[k];
    L.push(`| ${k} | ${f2(median(xs.map((x) => x.gbs)))} | ${fmt(xs.map((x) => x.gbs))} ` +
      `| ${f3(median(xs.map(cpuPerByte)))} | ${f3(median(xs.map((x) => x.dcpu / gbOf(x))))} |`);
  }
  L.push('');
  L.push(`## 1 MiB files, wrk -t2 -c${o.connections} -d${o.seconds}s (${o.files} distinct files)`,
    '');
  L.push('| server | requests/s (median) | all rounds | server CPU µs per request ' +
    '| daemon CPU µs per request | server + daemon |');
  L.push('| --- | ---: | --- | ---: | ---: | ---: |');
  for (const k of ['offload', 'stream', 'nginx']) {
    const xs = mib[k];
    const s = median(xs.map((x) => perReq(x, 'cpu')));
    const d = k === 'offload' ? median(xs.map((x) => perReq(x, 'dcpu'))) : 0;
    L.push(`| ${k} | ${median(xs.map((x) => x.rps)).toFixed(0)} | ` +
      `${[...xs.map((x) => x.rps)].sort((p, q) => p - q).map((v) => v.toFixed(0)).join(' ')} ` +
      `| ${s.toFixed(0)} | ${k === 'offload' ? d.toFixed(0) : '-'} | ${(s + d).toFixed(0)} |`);
  }
  const errs = Object.entries(mib).flatMap(([k, xs]) => xs.filter((x) => x.errs)
    .map((x) => `${k}: ${x.errs}`));
  L.push('');
  L.push(`wrk errors: ${errs.length ? errs.join('; ') : 'none'}.`);
  if (o.daemonStats) {
    L.push('');
    L.push(`The daemon's counters at the end (sendfilectl stats): ${o.daemonStats.requests} ` +
      `requests, ${o.daemonStats.bytes_sent} bytes sent, by method ` +
      `${JSON.stringify(o.daemonStats.by_method)}, by status ok ${o.daemonStats.by_status.ok}.`);
  }
  if (o.clientStats) {
    L.push(`The offloading server's own counters (sendfiled.stats()): ` +
      `${JSON.stringify(o.clientStats)}.`);
  }
  L.push('', '## Ratios (median of per-round ratios)', '');
  L.push(`- 1 GiB throughput, offload / stream: **${f2(median(bigRatio))}x** ` +
    `(rounds: ${fmt(bigRatio)}); target >= 3x`);
  L.push(`- 1 GiB Node CPU per byte, offload / stream: **${f3(median(bigCpuRatio))}x** ` +
    `(rounds: ${[...bigCpuRatio].sort((p, q) => p - q).map(f3).join(' ')}); target <= 0.2x`);
  L.push(`- 1 MiB requests/s, offload / stream: **${f2(median(mibRatio))}x** ` +
    `(rounds: ${fmt(mibRatio)}); target >= 1.5x`);
  L.push(`- 1 MiB requests/s, offload / nginx: **${f2(median(ngxRatio))}x** ` +
    `(rounds: ${fmt(ngxRatio)}); aim >= 0.8`);
  L.push('');
  const text = L.join('\n');
  fs.writeFileSync(o.out, text);
  process.stdout.write(`\n${text}`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
