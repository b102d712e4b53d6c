/**
 * The attack suite's kit: the attacked frontend as a child process of its own
 * (so its RSS is the attack's cost alone), raw TCP attackers, and the honest
 * client that must still be served. Teardown is registered with
 * `onTestFinished`, so call these inside a test.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { onTestFinished } from 'vitest';
import { defineEbb } from '@ebbrt/ebb-protocol';
import { startInlineNative } from '@ebbrt/native';
import { FIXTURES } from '../kit/index.js';

/** The Ebb the attacked frontend counts calls of (the same definition as the fixture's). */
export const TallyEbb = defineEbb<{ add(n: number): Promise<number> }>({
  name: 'AttackTally',
  policy: 'home',
  home: 'hosted',
  methods: ['add'],
  create: () => ({ add: async (n: number) => n }),
});

export interface FrontendStats {
  rssBytes: number;
  dispatched: number;
  members: number[];
  stats: { rejectedJoins: number; protocolErrors: number; foreignControl: number };
  messenger: { protocolErrors: number; rejectedHandshakes: number; refusedHandshakes: number };
  idMapRefusals: { write: number; read: number };
}

export interface AttackedFrontend {
  address: string;
  host: string;
  port: number;
  pid: number;
  secret: string;
  stats(): Promise<FrontendStats>;
}

/** Starts the attacked frontend (test/fixtures/attack-frontend.mjs); its secret travels in a 0600 file. */
export async function attackedFrontend(): Promise<AttackedFrontend> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-attack-'));
  const secret = `attack-suite-secret-${process.pid}-${Date.now()}`;
  const secretFile = path.join(dir, 'secret');
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const child = spawn(process.execPath, ['--expose-gc', path.join(FIXTURES, 'attack-frontend.mjs')], {
    env: { ...process.env, EBBRT_SECRET_FILE: secretFile },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  onTestFinished(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the attacked frontend exited');
    return JSON.parse(value as string) as unknown;
  };
  const { address, pid } = (await next()) as { address: string; pid: number };
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  let queue = Promise.resolve() as Promise<unknown>;
  const stats = () => {
    const asked = queue.then(() => {
      child.stdin!.write('stats\n');
      return next() as Promise<FrontendStats>;
    });
    queue = asked.catch(() => undefined);
    return asked;
  };
  return { address, host, port, pid, secret, stats };
}

/** Resident set size of `pid`, MiB (what the attack makes the process hold). */
export function rssMiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

/** A raw TCP connection from `localAddress` (127.0.0.2 keeps attackers apart from the honest client's 127.0.0.1). */
export async function rawSocket(target: AttackedFrontend, localAddress = '127.0.0.2'): Promise<net.Socket> {
  const socket = net.connect({ host: target.host, port: target.port, localAddress });
  socket.on('error', () => undefined);
  onTestFinished(() => {
    socket.destroy();
  });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Resolves when the server closed `socket` (or after `ms`, with false). */
export function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('close', done).once('end', done);
    socket.resume();
  });
}

/** The first bytes a server sends on `socket`: its Challenge frame. */
export function firstChunk(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => socket.once('data', resolve));
}

/**
 * An honest native joins the attacked frontend and calls its Tally Ebb; resolves with how long
 * the join plus the call took, ms. Throws if either fails.
 */
export async function honestCall(target: AttackedFrontend): Promise<number> {
  const started = performance.now();
  const native = await startInlineNative({ frontend: target.address, secret: target.secret });
  onTestFinished(() => native.close());
  await native.runtime.ref(TallyEbb).add(1);
  return performance.now() - started;
}
