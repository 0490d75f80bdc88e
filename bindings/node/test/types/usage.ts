// Compiled with tsc --noEmit (npm run typecheck): the declarations in
// index.d.ts must accept the documented uses and reject wrong ones.
import * as net from 'node:net';
import { open } from 'node:fs/promises';
import sendfiled = require('../..');
import { Client, SendfiledError, AbortError, type SendfileResult, type PingInfo,
  type Feature } from '../..';

async function main(socket: net.Socket): Promise<number> {
  const client = new Client({ path: '/run/sendfiled/sendfiled.sock', requireDaemon: false });
  const ac = new AbortController();
  const r: SendfileResult = await client.sendfile(socket, '/etc/hostname',
    { offset: 0, count: 10, fallback: true, signal: ac.signal });
  const fh = await open('/etc/hostname');
  await client.sendfile(socket, fh);
  await client.sendfile(3, 4, { count: null });
  await sendfiled.sendfile(socket, 'x');
  try {
    await client.sendfile(socket, 'x');
  } catch (e) {
    if (e instanceof SendfiledError && e.code === 'ERR_SENDFILED_NOT_AVAILABLE') {
      const n: number = e.bytesSent;
      void n;
    } else if (e instanceof AbortError) {
      const n: number = e.bytesSent;
      void n;
    }
  }
  const info: PingInfo = await client.ping({ timeout: 1000 });
  const names: Feature[] = info.features;
  const v: string = info.daemonVersion + String(info.protocolVersion);
  void names.includes('deadline');
  void v;
  // @ts-expect-error features are names, not numbers
  void info.features.includes(1);
  const s = sendfiled.stats();
  client.close();
  // @ts-expect-error offset is a number
  await client.sendfile(socket, 'x', { offset: '1' });
  // @ts-expect-error a file is required
  await client.sendfile(socket);
  return r.bytesSent + s.offloaded + s.methods.sendfile;
}
void main;
