/**
 * The offload example's HTTP service (node:http). The request handler is the
 * same code in every mode: it calls `markdown.render(body)` on whatever it was
 * given — this core's rep of the Markdown Ebb, the balancer over native cores,
 * or a piscina pool — and maps typed runtime errors to HTTP statuses, so a
 * lost native is a 503 that says so, not a hang or a 500.
 */
import { isUtf8 } from 'node:buffer';
import http from 'node:http';
import { EbbError, NodeUnavailableError, OverloadedError, TimeoutError } from '@ebbrt/ebb-protocol';
import { InvalidDocumentError } from './offload.js';

/** What renders documents. A local EbbRef, a RemoteRef and the piscina adapter all fit. */
export interface MarkdownService {
  render(markdown: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** Options of {@link createOffloadServer}. */
export interface OffloadServerOptions {
  /** Renders the posted documents; the handler never knows where that happens. */
  markdown: MarkdownService;
  /** Body of `GET /status` (sent as JSON). */
  status: () => unknown;
  /** Largest document accepted, bytes; larger bodies get 413. Default 1 MiB. */
  maxBodyBytes?: number;
}

/** An HTTP-level refusal (unknown route, wrong method, oversize body), with the status it is sent with. */
export class OffloadHttpError extends EbbError {
  readonly status: number;

  constructor(status: number, code: 'NOT_FOUND' | 'METHOD_NOT_ALLOWED' | 'PAYLOAD_TOO_LARGE', message: string) {
    super(code, message);
    this.status = status;
  }
}

/** Requests the server answered, by outcome. */
export interface OffloadServerStats {
  /** `POST /render` answered with 200. */
  rendered: number;
  /** Requests answered with an error status. */
  failed: number;
}

const USAGE = 'POST a Markdown document (UTF-8) to /render to get its HTML; GET /status for the placement of the renderer.\n';

/** Creates (does not start) the service; `stats` counts what it answered. */
export function createOffloadServer(options: OffloadServerOptions): { server: http.Server; stats: OffloadServerStats } {
  if (options === null || typeof options !== 'object') throw new TypeError('createOffloadServer(options): options must be an object');
  if (typeof options.markdown?.render !== 'function') throw new TypeError('options.markdown must have a render(bytes) method');
  if (typeof options.status !== 'function') throw new TypeError('options.status must be a function returning the /status body');
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw new TypeError('options.maxBodyBytes must be a positive integer (bytes)');
  const { markdown, status } = options;
  const stats: OffloadServerStats = { rendered: 0, failed: 0 };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    if (path === '/render') {
      if (req.method !== 'POST')
        throw new OffloadHttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} /render is not supported; POST the Markdown document as the request body`);
      const body = await readBody(req, maxBodyBytes);
      if (!isUtf8(body)) throw new InvalidDocumentError('the request body is not valid UTF-8; post the Markdown document as UTF-8 text');
      const html = await markdown.render(body);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': html.byteLength });
      res.end(html);
      stats.rendered++;
      return;
    }
    if (path === '/status' || path === '/') {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        throw new OffloadHttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} ${path} is not supported; use GET`);
      req.resume();
      const text = path === '/' ? USAGE : `${JSON.stringify(status())}\n`;
      res.writeHead(200, { 'content-type': path === '/' ? 'text/plain; charset=utf-8' : 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    throw new OffloadHttpError(404, 'NOT_FOUND', `no route ${path}; POST Markdown to /render, GET /status`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      stats.failed++;
      sendError(req, res, error);
    });
  });
  return { server, stats };
}

/** The request body as one Buffer (no copy when it arrived in one chunk); oversize bodies reject with 413. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        // Keep reading (and dropping) so the 413 can be sent on this connection.
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

function tooLarge(limit: number): OffloadHttpError {
  return new OffloadHttpError(413, 'PAYLOAD_TOO_LARGE', `the document is larger than ${limit} bytes; post a smaller one or raise --max-body`);
}

/** HTTP status for an error: lost or overloaded capacity is 503 (retryable), a timeout 504, bad input 4xx. */
export function statusOf(error: unknown): number {
  if (error instanceof OffloadHttpError) return error.status;
  if (error instanceof InvalidDocumentError) return 400;
  if (error instanceof NodeUnavailableError || error instanceof OverloadedError) return 503;
  if (error instanceof TimeoutError) return 504;
  if (error instanceof EbbError) return 502;
  return 500;
}

function sendError(req: http.IncomingMessage, res: http.ServerResponse, error: unknown): void {
  const status = statusOf(error);
  const code = error instanceof EbbError ? error.code : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${JSON.stringify({ error: code, message })}\n`;
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (status === 503) headers['retry-after'] = '1';
  // An unread request body would be parsed as the next request: drain it, or close after replying.
  if (!req.complete) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}
