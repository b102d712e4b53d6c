/**
 * A real Redis for the store tests (docs/architecture.md, Tests): a `redis:7` container through
 * testcontainers when a Docker engine answers, else a `redis-server` on a free
 * loopback port, else nothing, with a one-line reason to skip on.
 *
 * Either way the server keeps its data in a temporary folder across
 * {@link RedisServer.down}/{@link RedisServer.up} (`SHUTDOWN SAVE`, then a new
 * server on the same port loading the dump), which is how the tests restart
 * Redis mid-run. Nothing is written to disk otherwise (`--save ''`,
 * `--appendonly no`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

/** One Redis server the tests own. */
export interface RedisServer {
  /** `testcontainers` or `redis-server`. */
  readonly via: string;
  readonly host: string;
  readonly port: number;
  /** `redis://host:port/0`. */
  readonly url: string;
  /** Saves and stops the server: clients see it go away. */
  down(): Promise<void>;
  /** Starts it again on the same port with the data it had. */
  up(): Promise<void>;
  /** Stops it for good and removes its data. Idempotent. */
  close(): Promise<void>;
}

/** How Redis can be had on this machine, or why not. */
export type RedisAvailability = { ok: true; via: 'testcontainers' | 'redis-server' } | { ok: false; reason: string };

let probed: Promise<RedisAvailability> | undefined;

/** Probes once per process: Docker first, then a `redis-server` binary. */
export function redisAvailability(): Promise<RedisAvailability> {
  probed ??= (async () => {
    if (await dockerAnswers()) return { ok: true, via: 'testcontainers' } as const;
    const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return { ok: true, via: 'redis-server' } as const;
    return { ok: false, reason: 'no Docker engine answers and redis-server is not installed (infra/setup.sh installs it)' } as const;
  })();
  return probed;
}

async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Sends one RESP command on a fresh connection and resolves with the raw reply (or '' if Redis closed first). */
function command(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      reply += d;
      if (reply.endsWith('\r\n')) socket.end();
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(reply));
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function waitForPing(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = await command(port, ['PING']).catch(() => '');
    if (reply.startsWith('+PONG')) return;
    if (Date.now() > deadline) throw new Error(`Redis on port ${port} did not answer PING within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts a Redis server (see the module comment). Call {@link RedisServer.close} when done. */
export async function startRedis(): Promise<RedisServer> {
  const availability = await redisAvailability();
  if (!availability.ok) throw new Error(availability.reason);
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-redis-'));
  const backend = availability.via === 'testcontainers' ? await containerBackend(port, dir) : processBackend(port, dir);
  let running = false;
  let closed = false;
  const server: RedisServer = {
    via: availability.via,
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}/0`,
    async up() {
      if (running) return;
      await backend.start();
      await waitForPing(port);
      running = true;
    },
    async down() {
      if (!running) return;
      running = false;
      await backend.stop();
    },
    async close() {
      if (closed) return;
      closed = true;
      if (running) await server.down().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.up();
  return server;
}

interface Backend {
  start(): Promise<void>;
  /** Saves the data set and stops. */
  stop(): Promise<void>;
}

const REDIS_ARGS = ['--save', '', '--appendonly', 'no', '--dbfilename', 'dump.rdb'];

function processBackend(port: number, dir: string): Backend {
  let child: ChildProcess | undefined;
  return {
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...REDIS_ARGS], { stdio: 'ignore' });
      const started = child;
      // Never outlive the test process, even when it dies without closing the server.
      process.once('exit', () => started.kill('SIGKILL'));
    },
    async stop() {
      const current = child;
      child = undefined;
      if (!current || current.exitCode !== null) return;
      const exited = once(current, 'exit');
      await command(port, ['SHUTDOWN', 'SAVE']).catch(() => '');
      const timer = setTimeout(() => current.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function containerBackend(port: number, dir: string): Promise<Backend> {
  const { GenericContainer } = await import('testcontainers');
  let container: Awaited<ReturnType<InstanceType<typeof GenericContainer>['start']>> | undefined;
  return {
    async start() {
      // A new container on the same host port, mounting the same data folder: a restart that keeps the data.
      container = await new GenericContainer('redis:7')
        .withExposedPorts({ container: 6379, host: port })
        .withBindMounts([{ source: dir, target: '/data' }])
        .withCommand(['redis-server', '--dir', '/data', ...REDIS_ARGS])
        .start();
    },
    async stop() {
      const current = container;
      container = undefined;
      if (!current) return;
      await current.exec(['redis-cli', 'SAVE']);
      await current.stop();
    },
  };
}

/** {@link startRedis} inside a test: the server is closed when the test finishes. */
export async function redisForTest(): Promise<RedisServer> {
  const server = await startRedis();
  onTestFinished(() => server.close());
  return server;
}

/** A three-master Redis Cluster on loopback, from `redis-server` processes. */
export interface RedisClusterServer {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts a Redis Cluster of three `redis-server --cluster-enabled yes`
 * masters joined with `redis-cli --cluster create`. Needs the binaries (not
 * Docker): rejects with the reason when they are missing.
 */
export async function startRedisCluster(): Promise<RedisClusterServer> {
  if (spawnSync('redis-server', ['--version']).status !== 0 || spawnSync('redis-cli', ['--version']).status !== 0) {
    throw new Error('redis-server and redis-cli are needed for a Redis Cluster (infra/setup.sh installs them)');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-redis-cluster-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children = ports.map((port) => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    );
    process.once('exit', () => child.kill('SIGKILL'));
    return child;
  });
  const close = async () => {
    await Promise.all(children.map((child) => (child.exitCode === null ? (child.kill('SIGKILL'), once(child, 'exit')) : undefined)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(ports.map((port) => waitForPing(port)));
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    const deadline = Date.now() + 10_000;
    while (!(await command(ports[0], ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('the Redis Cluster did not reach cluster_state:ok within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, close };
}
