import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** Anything with the Client's sendfile(): a sendfiled Client. */
export interface SendfileClient {
  sendfile(socket: unknown, file: number, options?: { offset?: number; count?: number;
    signal?: AbortSignal }): Promise<{ bytesSent: number; finalOffset: number; method: string }>;
}

export interface SendFileOptions {
  /** The client to send with; default: the package's shared client. */
  client?: SendfileClient;
  /** ETag from mtime and size (default true). */
  etag?: boolean;
  /** Last-Modified from mtime (default true). */
  lastModified?: boolean;
  /** Accept-Ranges: bytes and Range requests (default true). */
  acceptRanges?: boolean;
  /** Cache-Control: public, max-age=... (default true). */
  cacheControl?: boolean;
  /** max-age in milliseconds (default 0). */
  maxAge?: number;
  /** Adds immutable to Cache-Control (default false). */
  immutable?: boolean;
  /** Content-Type when the application set none: a type, a function of the path, or false. */
  contentType?: string | false | ((path: string | null) => string | undefined);
  /** Answer 404/403/500 when the file cannot be opened (default true); false rejects instead. */
  handleErrors?: boolean;
  /** Stops the transfer (the connection is then cut). */
  signal?: AbortSignal;
}

export interface SendFileResult {
  statusCode: number;
  bytesSent: number;
  /** 'sendfile', 'splice', 'read_write', 'local', 'stream', or 'none' (no body). */
  method: string;
  /** The body was cut: the client went away, the signal fired, or the transfer failed. */
  aborted: boolean;
  error?: Error;
}

export function sendFile(req: IncomingMessage, res: ServerResponse,
  file: string | Buffer | URL | number | FileHandle,
  options?: SendFileOptions): Promise<SendFileResult>;

export interface ServeStaticOptions extends Omit<SendFileOptions, 'handleErrors' | 'signal'> {
  /** Index file names for a directory (default ['index.html']); false for none. */
  index?: string | string[] | false;
  /** 'ignore' (404, default), 'deny' (403) or 'allow'. */
  dotfiles?: 'ignore' | 'deny' | 'allow';
  /** Extensions tried for a missing file, e.g. ['html']. */
  extensions?: string | string[] | false;
  /** Client errors go to next() (default true); false: next(err) and 405 for other methods. */
  fallthrough?: boolean;
  /** 301 to add the trailing slash of a directory (default true). */
  redirect?: boolean;
  /** Called before the headers are written. */
  setHeaders?: (res: ServerResponse, path: string, stat: Stats) => void;
}

export type Middleware = (req: IncomingMessage, res: ServerResponse,
  next?: (err?: unknown) => void) => void;

export function serveStatic(root: string, options?: ServeStaticOptions): Middleware;
