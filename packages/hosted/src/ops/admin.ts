/**
 * The frontend's admin HTTP server (loopback by default): Prometheus text at
 * `/metrics`, the dashboard at `/`, the JSON API `ps`, `top` and `down` use,
 * and the dashboard's live feed over WebSocket at `/ws`.
 *
 * Reads are open to whoever reaches the port; `POST /api/down` needs the
 * cluster's admin token (in the state file, mode 0600). Every request must
 * name an allowed `Host` (an IP address, `localhost`, or a name listed in
 * `allowedHosts`): a page on a domain rebound to 127.0.0.1 (DNS rebinding)
 * cannot read the state, metrics or feed. WebSocket upgrades from a page of
 * another origin are refused, so a web page the operator visits cannot read
 * the feed through the browser.
 */
import { isIP } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { DASHBOARD_HTML } from './dashboard.js';
import type { ClusterView, TopView } from './view.js';

/** What the cluster reports to the feed. */
export type FeedEvent = { kind: FeedEntry['kind']; nodeId?: number; message: string } | { kind: 'progress' } | { kind: 'sample'; top: TopView };

/** A membership event as the feed sends it. */
export interface FeedEntry {
  /** `app`: a group's hosted main returned. */
  kind: 'join' | 'leave' | 'fail' | 'reject' | 'replace' | 'suspect' | 'reinstate' | 'app';
  nodeId?: number;
  message: string;
  at: string;
}

/**
 * One point of the dashboard's plots: the rates and percentiles of one
 * metrics sample (the same numbers `ebbrt top` shows for it), per Ebb and per
 * node, with each node's RSS and per-core rate.
 */
export interface PlotPoint {
  /** When the sample was taken (ms since the epoch). */
  at: number;
  /** The busiest Ebbs (at most {@link PLOT_SERIES}): calls/s, errors/s, p50/p99 µs of the calls sent to them. */
  ebbs: { id: number; name: string; calls: number; errors: number; p50: number | null; p99: number | null }[];
  /** Joined nodes (at most {@link PLOT_SERIES}): calls sent + served per second, errors/s, p50/p99 µs of the calls they sent, RSS, calls sent + served per second per core. */
  nodes: { id: number; calls: number; errors: number; p50: number | null; p99: number | null; rss: number | null; cores: number[] }[];
}

/** Points kept for pages that connect later: 5 minutes at the default 1 s sampling. */
export const PLOT_POINTS = 300;
/** Series per plot and point (Ebbs by calls/s, nodes by id). */
export const PLOT_SERIES = 16;

/** The plot point of one sample. Pure. */
export function plotPoint(top: TopView, view: ClusterView): PlotPoint {
  const rss = new Map(view.nodes.filter((n) => n.state === 'joined' || n.state === 'suspected').map((n) => [n.id, n.rssBytes ?? null]));
  return {
    at: top.at,
    ebbs: [...top.ebbs]
      .sort((a, b) => b.callsPerSec + b.servedPerSec - (a.callsPerSec + a.servedPerSec))
      .slice(0, PLOT_SERIES)
      .map((e) => ({ id: e.id, name: e.name || e.hex, calls: e.callsPerSec, errors: e.errorsPerSec, p50: e.p50Us, p99: e.p99Us })),
    nodes: top.nodes
      .filter((n) => rss.has(n.nodeId))
      .slice(0, PLOT_SERIES)
      .map((n) => ({
        id: n.nodeId,
        calls: n.callsPerSec + n.servedPerSec,
        errors: n.errorsPerSec + n.servedErrorsPerSec,
        p50: n.p50Us,
        p99: n.p99Us,
        rss: rss.get(n.nodeId) ?? null,
        cores: n.cores.map((c) => c.callsPerSec + c.servedPerSec),
      })),
  };
}

/** Messages on `/ws`, server → page. */
export type FeedMessage =
  /** On connect: the state, the latest rates, recent events and the plots' history. */
  | { type: 'snapshot'; view: ClusterView; top: TopView; events: FeedEntry[]; history: PlotPoint[] }
  /** After every metrics sample. */
  | { type: 'sample'; view: ClusterView; top: TopView; point: PlotPoint }
  | { type: 'event'; event: FeedEntry; view: ClusterView };

/** What the admin server serves. */
export interface AdminSource {
  readonly token: string;
  view(): ClusterView;
  top(): TopView;
  readonly metrics: { metrics(): Promise<string> };
  requestStop(reason: string): void;
  onFeed(listener: (event: FeedEvent) => void): () => void;
}

export interface AdminServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Membership events kept for pages that connect later. */
const RECENT_EVENTS = 50;

/** Where the admin server listens, and which `Host` names it answers besides IP addresses and `localhost`. */
export interface AdminListen {
  host: string;
  port: number;
  /** DNS names clients use to reach the server (e.g. a Kubernetes Service name). Default none. */
  allowedHosts?: readonly string[];
}

export async function startAdmin(source: AdminSource, listen: AdminListen): Promise<AdminServer> {
  const allowed = new Set((listen.allowedHosts ?? []).map((h) => h.toLowerCase()));
  const recent: FeedEntry[] = [];
  const history: PlotPoint[] = [];
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const send = (ws: WebSocket, message: FeedMessage) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  };
  const broadcast = (message: FeedMessage) => {
    if (wss.clients.size === 0) return;
    const text = JSON.stringify(message);
    for (const ws of wss.clients) if (ws.readyState === ws.OPEN) ws.send(text);
  };
  const unsubscribe = source.onFeed((event) => {
    if (event.kind === 'sample') {
      const view = source.view();
      const point = plotPoint(event.top, view);
      history.push(point);
      if (history.length > PLOT_POINTS) history.shift();
      broadcast({ type: 'sample', view, top: event.top, point });
    } else if (event.kind === 'progress') return;
    else {
      const entry: FeedEntry = { kind: event.kind, message: event.message, at: new Date().toISOString() };
      if (event.nodeId !== undefined) entry.nodeId = event.nodeId;
      recent.push(entry);
      if (recent.length > RECENT_EVENTS) recent.shift();
      broadcast({ type: 'event', event: entry, view: source.view() });
    }
  });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    // The page only listens; anything it sends is ignored.
    send(ws, { type: 'snapshot', view: source.view(), top: source.top(), events: recent, history });
  });

  const server = createServer((req, res) => {
    if (!allowedHost(req, allowed)) {
      req.resume();
      return reply(res, 421, {
        error: `Host "${req.headers.host ?? ''}" is not one this admin server answers; use its IP address or localhost, or add the name to the admin's allowed hosts`,
      });
    }
    handle(source, req, res).catch((error: Error) => reply(res, 500, { error: error.message }));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'Not Found');
    if (!allowedHost(req, allowed)) return refuse(socket, 421, 'Misdirected Request');
    if (!sameOrigin(req)) return refuse(socket, 403, 'Forbidden');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as { address: string; port: number };
  return {
    address: { host: bound.address, port: bound.port },
    close: async () => {
      unsubscribe();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handle(source: AdminSource, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /':
    case 'GET /index.html':
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
      });
      res.end(DASHBOARD_HTML);
      return;
    case 'GET /metrics': {
      const text = await source.metrics.metrics();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text);
      return;
    }
    case 'GET /api/state':
      return reply(res, 200, source.view());
    case 'GET /api/top':
      return reply(res, 200, source.top());
    case 'POST /api/down': {
      req.resume();
      if (req.headers.authorization !== `Bearer ${source.token}`)
        return reply(res, 401, { error: 'POST /api/down needs "Authorization: Bearer <token>" with the token from the cluster\'s state file' });
      reply(res, 202, { stopping: true });
      source.requestStop('ebbrt down');
      return;
    }
    default:
      if (['/', '/index.html', '/metrics', '/api/state', '/api/top', '/api/down'].includes(url.pathname))
        return reply(res, 405, { error: `${req.method} is not allowed on ${url.pathname}` });
      return reply(res, 404, { error: `no ${url.pathname} here; try /, /metrics, /api/state, /api/top` });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

/** The request's Host is an IP address, localhost (or a subdomain of it), or an allowed name. */
function allowedHost(req: IncomingMessage, allowed: ReadonlySet<string>): boolean {
  const host = req.headers.host;
  if (!host) return false;
  let name: string;
  try {
    name = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  const bare = name.startsWith('[') ? name.slice(1, -1) : name;
  return isIP(bare) !== 0 || bare === 'localhost' || bare.endsWith('.localhost') || allowed.has(bare);
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser (ebbrt, curl, a script)
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
