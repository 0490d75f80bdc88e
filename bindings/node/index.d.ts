/// <reference types="node" />
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

/** How the bytes moved: by the daemon ('sendfile', 'splice', 'read_write'), in this
 * process ('local'), or not at all ('none'). */
export type Method = 'sendfile' | 'splice' | 'read_write' | 'local' | 'none' | 'unknown';

export interface SendfileOptions {
  /** Where in the file to start (default 0). */
  offset?: number;
  /** How many bytes; absent or null: to the end of the file. A count past the end sends
   * what there is. */
  count?: number | null;
  /** false: fail with ERR_SENDFILED_NOT_AVAILABLE, nothing sent, rather than copy through
   * user space (default true). */
  fallback?: boolean;
  /** Cancels the transfer; the promise then rejects with an AbortError carrying bytesSent. */
  signal?: AbortSignal | null;
}

export interface SendfileResult {
  bytesSent: number;
  /** offset + bytesSent: the file position afterwards, when anything was sent. */
  finalOffset: number;
  method: Method;
}

/** A destination: a connected net.Socket (tls.TLSSocket included), any writable stream
 * (an HTTP/2 stream, ...), or a socket descriptor. */
export type Destination = Socket | Writable | number;
/** A source: a descriptor, a FileHandle (both borrowed), or a path (opened read-only and
 * closed by the call). */
export type Source = number | FileHandle | string | Buffer | URL;

export interface ClientOptions {
  /** The daemon's data socket (default: $SENDFILED_SOCKET, else
   * $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock if it exists, else /run/sendfiled/sendfiled.sock). */
  path?: string | null;
  /** libsendfiled to use: a path or a Library (default: see loadLibrary()). */
  lib?: string | Library | null;
  /** Fail with ERR_SENDFILED_UNAVAILABLE instead of sending in-process when the daemon
   * cannot be reached (default false). */
  requireDaemon?: boolean;
  /** Milliseconds between two attempts to reach an absent daemon (default 1000). */
  retryInterval?: number;
}

export interface PingOptions {
  /** Milliseconds to wait for the answer (default: as long as it takes). */
  timeout?: number;
}

/** An optional part of the protocol a daemon may implement. */
export type Feature = 'deadline' | 'rate_limit' | 'close_when_done' | 'idle_timeout';

/** Who answered a ping. */
export interface PingInfo {
  /** The data-plane protocol's version: 1. */
  protocolVersion: number;
  /** The daemon's own version, e.g. '0.1.0' ('' from a daemon too old to say). */
  daemonVersion: string;
  /** The optional features the daemon implements; unknown ones are left out. */
  features: Feature[];
}

export class Client {
  constructor(options?: ClientOptions);
  readonly library: Library;
  readonly path: string | null;
  readonly requireDaemon: boolean;
  readonly retryInterval: number;
  /** The data socket this client connects to. */
  readonly socketPath: string | null;
  /** Whether a connection to the daemon is open now. */
  readonly connected: boolean;
  sendfile(socket: Destination, file: Source, options?: SendfileOptions): Promise<SendfileResult>;
  /**
   * Is the daemon alive, and who is it. Runs off the event loop, on a connection of its
   * own. Rejects with ERR_SENDFILED_UNAVAILABLE when no daemon answers in time, with
   * ERR_SENDFILED_NOT_SUPPORTED when the library is older than sfd_client_ping().
   */
  ping(options?: PingOptions): Promise<PingInfo>;
  /** Close the connection; transfers in flight are cancelled by the daemon. Idempotent. */
  close(): void;
}

export class Library {
  readonly path: string;
  defaultSocketPath(): string | null;
}

export class LibraryNotFoundError extends Error {
  readonly code: 'ERR_SENDFILED_LIBRARY_NOT_FOUND';
  /** Every place tried, with why it failed. */
  readonly tried: Array<[place: string, reason: string]>;
}

export type ErrorCode =
  | 'ERR_SENDFILED_NOT_AVAILABLE'
  | 'ERR_SENDFILED_INVALID_ARGUMENT'
  | 'ERR_SENDFILED_PEER_CLOSED'
  | 'ERR_SENDFILED_IO'
  | 'ERR_SENDFILED_CANCELLED'
  | 'ERR_SENDFILED_LIMIT'
  | 'ERR_SENDFILED_PROTOCOL'
  | 'ERR_SENDFILED_SHUTTING_DOWN'
  | 'ERR_SENDFILED_PERMISSION_DENIED'
  | 'ERR_SENDFILED_UNAVAILABLE'
  | 'ERR_SENDFILED_OUTCOME_UNKNOWN'
  | 'ERR_SENDFILED_CLOSED'
  | 'ERR_SENDFILED_NOT_SUPPORTED'
  | 'ERR_STREAM_DESTROYED'
  | (string & {});

export class SendfiledError extends Error {
  readonly code: ErrorCode;
  /** Bytes sent before the failure. */
  bytesSent: number;
  /** offset + bytesSent, when known. */
  finalOffset: number | null;
  /** The system cause, negative as in Node's own errors (-32), with its name ('EPIPE'). */
  errno?: number;
  errnoName?: string;
  syscall?: string;
  /** The daemon's status name ('peer closed', ...), for errors it reported. */
  status?: string;
  method?: Method;
  /** The daemon's own explanation, for people and logs. */
  daemonMessage?: string;
  /** The data socket, for ERR_SENDFILED_UNAVAILABLE. */
  path?: string | null;
}

export class AbortError extends Error {
  readonly name: 'AbortError';
  readonly code: 'ABORT_ERR';
  bytesSent: number;
  finalOffset: number | null;
}

export const errors: {
  SendfiledError: typeof SendfiledError;
  AbortError: typeof AbortError;
  LibraryNotFoundError: typeof LibraryNotFoundError;
  /** The code of the error for each daemon status. */
  codes: Readonly<Record<number, ErrorCode>>;
};

export interface Stats {
  offloaded: number;
  offloadedBytes: number;
  errors: number;
  cancelled: number;
  fallback: number;
  fallbackBytes: number;
  fallbackNoDaemon: number;
  fallbackTls: number;
  fallbackStream: number;
  fallbackLimit: number;
  waitedForRoom: number;
  retried: number;
  inFlight: number;
  methods: { sendfile: number; splice: number; read_write: number; none: number };
  lastError: string | null;
}

/** Process-wide counters. */
export function stats(): Stats;
export function resetStats(): void;

/** Load libsendfiled: exactly `path`, or by the lookup rules ($SENDFILED_LIB, a build tree
 * above the package, the system). */
export function loadLibrary(path?: string | null): Library;

/** The shared client, made at first use with the defaults. */
export function defaultClient(): Client;
/** defaultClient().sendfile(socket, file, options). */
export function sendfile(socket: Destination, file: Source,
  options?: SendfileOptions): Promise<SendfileResult>;
/** Close the shared client, if one was made. */
export function close(): void;

export { sendFile, serveStatic } from './lib/http';
export type { SendFileOptions, SendFileResult, ServeStaticOptions, Middleware } from './lib/http';
