/**
 * Network mode `user`, the host end of a VM's forwarding channel
 * (backends/qemu/forward.ts) against a real QEMU: a machine with no guest
 * (`-M none`) but a user-mode network and QMP, so forwards are QEMU's own
 * listening sockets. This side of the channel plays the guest's node
 * services: it asks for a forward, sees the host port taken by QEMU, asks for
 * its removal, sees the port free again; bad lines get answers, not crashes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_FORWARDS, serveForwards } from '../packages/hosted/src/backends/qemu/forward.js';
import { Qmp } from '../packages/hosted/src/backends/qemu/qmp.js';
import { exitOf, spawnQemu } from '../packages/hosted/src/backends/qemu/process.js';
import { skipFor } from './kit/requirements.js';

function skipReason(): string | undefined {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'qemu-system-x86_64 is not installed (infra/setup.sh installs qemu-system-x86)';
  }
}

const skip = skipFor('qemu forward tests', skipReason());

/** Can this process bind 127.0.0.1:port (nothing, e.g. QEMU's forward, holds it)? */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe.skipIf(skip)('qemu user-mode forwards on request', () => {
  let dir: string;
  let qemu: ReturnType<typeof spawnQemu>;
  let qmp: Qmp;
  let guest: net.Socket;
  let server: net.Server;
  let next = 1;
  let received = '';

  /** One request line from the "guest"; resolves with the host's answer. */
  async function ask(body: Record<string, unknown> | string): Promise<Record<string, unknown>> {
    const id = next++;
    guest.write(typeof body === 'string' ? `${body}\n` : `${JSON.stringify({ id, ...body })}\n`);
    if (typeof body === 'string') return {};
    for (;;) {
      const line = received.split('\n').find((l) => l.includes(`"id":${id},`));
      if (line) return JSON.parse(line);
      await new Promise((resolve) => guest.once('data', resolve));
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ebbrt-fwd-'));
    qemu = spawnQemu('qemu-system-x86_64', [
      '-M',
      'none',
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-S',
      '-netdev',
      'user,id=net0',
      '-qmp',
      `unix:${path.join(dir, 'qmp.sock')},server=on,wait=off`,
    ]);
    const exited = exitOf(qemu);
    const connected = await Qmp.connect(path.join(dir, 'qmp.sock'), exited, 10_000);
    if (!connected) throw new Error(`QEMU did not offer QMP: exit ${await Promise.race([exited, 'still running'])}`);
    qmp = connected;
    // The channel: a unix socket pair standing where the guest's serial port would be.
    const channel = path.join(dir, 'ports.sock');
    const host = new Promise<net.Socket>((resolve) => (server = net.createServer(resolve).listen(channel)));
    await new Promise((resolve) => server.once('listening', resolve));
    guest = net.connect(channel);
    guest.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    serveForwards(await host, qmp, '127.0.0.1');
  });

  afterAll(async () => {
    guest?.destroy();
    server?.close();
    qmp?.close();
    qemu?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('a forward holds its host port until the guest asks for its removal; removal is idempotent', async () => {
    const made = await ask({ guestPort: 11211, hostPort: 0 });
    expect(made.address).toMatch(/^127\.0\.0\.1:\d+$/);
    const port = Number(String(made.address).split(':')[1]);
    expect(await bindable(port)).toBe(false);
    // Asking again for the same guest port answers the same forward.
    expect((await ask({ guestPort: 11211, hostPort: 0 })).address).toBe(made.address);
    expect(await ask({ guestPort: 11211, remove: true })).toMatchObject({ removed: true });
    expect(await bindable(port)).toBe(true);
    expect(await ask({ guestPort: 11211, remove: true })).toMatchObject({ removed: true });
  });

  test('bad requests get an error answer or none, and the channel keeps serving', async () => {
    expect(await ask({ guestPort: 0, hostPort: 1 })).toMatchObject({ error: expect.stringMatching(/guestPort must be 1\.\.65535/) });
    expect(await ask({ guestPort: 70000, remove: true })).toMatchObject({ error: expect.stringMatching(/guestPort must be/) });
    await ask('null');
    await ask('{not json');
    await ask('x'.repeat(10_000));
    const made = await ask({ guestPort: 8080, hostPort: 0 });
    expect(made.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await ask({ guestPort: 8080, remove: true })).toMatchObject({ removed: true });
  });

  test(`at most ${MAX_FORWARDS} forwards at once; a removal makes room for another`, async () => {
    for (let guestPort = 1; guestPort <= MAX_FORWARDS; guestPort++) expect((await ask({ guestPort, hostPort: 0 })).address).toBeDefined();
    expect(await ask({ guestPort: MAX_FORWARDS + 1, hostPort: 0 })).toMatchObject({ error: expect.stringMatching(`at most ${MAX_FORWARDS}`) });
    expect(await ask({ guestPort: 1, remove: true })).toMatchObject({ removed: true });
    expect((await ask({ guestPort: MAX_FORWARDS + 1, hostPort: 0 })).address).toBeDefined();
    for (let guestPort = 2; guestPort <= MAX_FORWARDS + 1; guestPort++) await ask({ guestPort, remove: true });
  }, 60_000);
});
