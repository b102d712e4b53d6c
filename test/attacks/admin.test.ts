/**
 * Attacks on the admin HTTP server: DNS rebinding (a page on another domain
 * that resolves to 127.0.0.1 reads state, metrics or the feed), a WebSocket
 * from another origin, state changes without the token. Each is refused, the
 * state-changing endpoint stays unpressed, and an honest request still works.
 */
import { once } from 'node:events';
import { describe, expect, onTestFinished, test } from 'vitest';
import WebSocket from 'ws';
import { startAdmin, type AdminSource, type ClusterView, type TopView } from '@ebbrt/hosted';
import { rssMiB } from './kit.js';

const TOKEN = 'admin-token-for-the-attack-suite';

async function admin(allowedHosts?: string[]) {
  let stops = 0;
  const view = {
    cluster: 'attack',
    status: 'up',
    startedAt: new Date(0).toISOString(),
    frontend: '127.0.0.1:1',
    admin: '',
    store: 'memory',
    groups: [],
    nodes: [],
  } as unknown as ClusterView;
  const top = { cluster: 'attack', at: 0, rateWindowMs: 1000, latencyWindowMs: 1000, ebbs: [], nodes: [] } as unknown as TopView;
  const source: AdminSource = {
    token: TOKEN,
    view: () => view,
    top: () => top,
    metrics: { metrics: async () => 'ebbrt_up 1\n' },
    requestStop: () => void stops++,
    onFeed: () => () => undefined,
  };
  const server = await startAdmin(source, { host: '127.0.0.1', port: 0, allowedHosts });
  onTestFinished(() => server.close());
  const base = `127.0.0.1:${server.address.port}`;
  return { base, port: server.address.port, stops: () => stops };
}

/** A request with a forged Host header (what a rebound domain makes the browser send). */
async function get(base: string, pathname: string, headers: Record<string, string> = {}, method = 'GET') {
  const http = await import('node:http');
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const [host, port] = base.split(':');
    const req = http.request({ host, port: Number(port), path: pathname, method, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin server attacks', () => {
  test('DNS rebinding: a foreign Host is refused (421) on state, metrics, top, the dashboard and the feed', async () => {
    const { base, port } = await admin();
    const rss = rssMiB(process.pid);
    for (const pathname of ['/', '/api/state', '/api/top', '/metrics']) {
      const r = await get(base, pathname, { host: `rebind.attacker.example:${port}` });
      expect(r.status, pathname).toBe(421);
      expect(r.body).not.toContain('attack"');
    }
    const ws = new WebSocket(`ws://${base}/ws`, { headers: { host: `rebind.attacker.example:${port}`, origin: `http://rebind.attacker.example:${port}` } });
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(response.statusCode).toBe(421);
    // Honest: an IP address, localhost, or an allowed name.
    expect((await get(base, '/api/state')).status).toBe(200);
    expect((await get(base, '/api/state', { host: `localhost:${port}` })).status).toBe(200);
    expect(rssMiB(process.pid) - rss).toBeLessThan(64);
  });

  test('an allowed name (e.g. a Service name) is answered', async () => {
    const { base, port } = await admin(['ebbrt-admin']);
    expect((await get(base, '/api/state', { host: `ebbrt-admin:${port}` })).status).toBe(200);
    expect((await get(base, '/api/state', { host: `other:${port}` })).status).toBe(421);
  });

  test('a WebSocket from a page of another origin is refused (403); the same origin is served', async () => {
    const { base, port } = await admin();
    const foreign = new WebSocket(`ws://${base}/ws`, { headers: { origin: 'http://evil.example' } });
    const [, response] = (await once(foreign, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(response.statusCode).toBe(403);
    const honest = new WebSocket(`ws://${base}/ws`, { headers: { origin: `http://127.0.0.1:${port}` } });
    const [message] = (await once(honest, 'message')) as [Buffer];
    expect(JSON.parse(message.toString()).type).toBe('snapshot');
    honest.close();
  });

  test('POST /api/down without the token (or with a wrong one) stops nothing; with it, the cluster stops', async () => {
    const { base, stops } = await admin();
    expect((await get(base, '/api/down', {}, 'POST')).status).toBe(401);
    expect((await get(base, '/api/down', { authorization: 'Bearer wrong' }, 'POST')).status).toBe(401);
    expect(stops()).toBe(0);
    expect((await get(base, '/api/down', { authorization: `Bearer ${TOKEN}` }, 'POST')).status).toBe(202);
    expect(stops()).toBe(1);
  });
});
