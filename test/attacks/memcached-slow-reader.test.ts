/**
 * Attack: memcached amplification by a client that never reads. A few KB of
 * `get big` (a 1 MB value), or one get naming it 500 times, ask for hundreds
 * of MB of replies; the server must stop parsing once the connection's output
 * passes its mark, keep the rest of the input, and stop reading — so each
 * attacker holds about its own buffers,
 * the native's RSS stays bounded, an honest client is still served promptly,
 * and no request is lost: the attacker gets every reply once it reads.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { RawClient } from '@ebbrt/examples/memcached/client.js';
import { launchMemcached } from '../kit/memcached.js';

const VALUE_BYTES = 1_000_000;
const GETS = 500;
const ATTACKERS = 3;
/** RSS the attack may add to the native, MiB (it added 843 MiB per attacker before backpressure). */
const RSS_BOUND_MIB = 64;
/** An honest client's request must be answered within this while the attack runs. */
const HONEST_DEADLINE_MS = 2000;
/** The bytes of one `get big` reply. */
const REPLY_BYTES = `VALUE big 0 ${VALUE_BYTES}\r\n`.length + VALUE_BYTES + '\r\nEND\r\n'.length;

function rssMiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

async function text(c: RawClient, requests: string, timeoutMs = 10_000): Promise<string> {
  const { reply } = await c.exchange(requests, { protocol: 'text', timeoutMs });
  return reply.toString('latin1');
}

/** Connects, sends `bytes`, and reads nothing (until `drain` is called, which counts what arrives). */
async function nonReader(address: string, bytes: string): Promise<{ socket: net.Socket; drain: (expected: number, ms: number) => Promise<number> }> {
  const [host, port] = address.split(':');
  const socket = net.connect(Number(port), host);
  onTestFinished(() => {
    socket.destroy();
  });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.pause();
  socket.write(bytes);
  const drain = (expected: number, ms: number) =>
    new Promise<number>((resolve) => {
      let received = 0;
      const timer = setTimeout(() => resolve(received), ms);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= expected) {
          clearTimeout(timer);
          resolve(received);
        }
      });
      socket.resume();
    });
  return { socket, drain };
}

describe('attack: memcached client that never reads', () => {
  test(`${ATTACKERS} clients × ${GETS} gets of a 1 MB value: native RSS bounded, honest client served, nothing lost`, { timeout: 90_000 }, async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '64']);
    const address = addresses[0];
    const honest = await RawClient.connect(address);
    onTestFinished(() => honest.close());
    const value = 'v'.repeat(VALUE_BYTES);
    expect(await text(honest, `set big 0 0 ${VALUE_BYTES}\r\n${value}\r\nset small 0 0 2\r\nok\r\n`)).toBe('STORED\r\nSTORED\r\n');
    const pid = Number(/^STAT pid (\d+)\r$/m.exec(await text(honest, 'stats\r\n'))?.[1]);
    expect(pid).toBeGreaterThan(0);
    // Warm: the reply path has run with a 1 MB value once, so the baseline holds its buffers.
    expect((await text(honest, 'get big\r\n')).length).toBe(REPLY_BYTES);
    const baseline = rssMiB(pid);

    const attack = 'get big\r\n'.repeat(GETS);
    expect(attack.length).toBeLessThan(5000);
    // The last attacker asks for the value 500 times in one multi-key get (the session must stop between keys).
    const attacks = Array.from({ length: ATTACKERS }, (_, i) => (i === ATTACKERS - 1 ? `get${' big'.repeat(GETS)}\r\n` : attack));
    const attackers = await Promise.all(attacks.map((bytes) => nonReader(address, bytes)));

    // While the attackers sit on their sockets, the native's RSS is sampled and an honest client keeps asking.
    let peak = baseline;
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      peak = Math.max(peak, rssMiB(pid));
      const started = Date.now();
      expect(await text(honest, 'get small\r\n', HONEST_DEADLINE_MS)).toBe('VALUE small 0 2\r\nok\r\nEND\r\n');
      expect(Date.now() - started).toBeLessThan(HONEST_DEADLINE_MS);
    }
    expect((await text(honest, 'get big\r\n', HONEST_DEADLINE_MS)).length).toBe(REPLY_BYTES);
    peak = Math.max(peak, rssMiB(pid));
    expect(peak - baseline, `RSS ${baseline.toFixed(1)} → ${peak.toFixed(1)} MiB`).toBeLessThan(RSS_BOUND_MIB);

    // Nothing was dropped: an attacker that starts reading gets every reply.
    const received = await attackers[0].drain(GETS * REPLY_BYTES, 30_000);
    expect(received).toBe(GETS * REPLY_BYTES);
  });
});
