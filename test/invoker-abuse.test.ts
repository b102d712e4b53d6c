/**
 * A hostile tenant against a running invoker (`ebbrt run invoker`, one
 * native with two cores shared by both namespaces), driven by the real
 * `openwhisk` client: each abuse fails (or is cut short) only in its own
 * action, and the other tenant's invoke latency stays within 2× of its quiet
 * value while and after it runs; namespace quotas answer 413/429. Also every
 * escape class of the sandbox tests, run on a real native core, where the
 * cluster secret is in the process's environment.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import openwhisk from 'openwhisk';
import { launchInvoker, type LaunchedInvoker } from '@ebbrt/examples/invoker/launch.js';
import { failure } from './kit/invoker.js';

const VICTIM_KEY = 'aaaaaaaa-0000-0000-0000-000000000001:victimKey0123456789abcdef';
const ATTACKER_KEY = 'bbbbbbbb-0000-0000-0000-000000000002:attackerKey0123456789abcd';

let cluster: LaunchedInvoker;
let victim: openwhisk.Client;
let attacker: openwhisk.Client;
let quiet: number;

/** Median latency of `n` blocking invokes of the victim's action, ms. */
async function victimLatency(n = 15): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const result = await victim.actions.invoke({ name: 'echo', blocking: true, result: true, params: { i } });
    samples.push(performance.now() - started);
    expect(result).toEqual({ i });
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(n / 2)];
}

/** The victim's latency stays within 2× of quiet (quiet floored at 10 ms: a shared 2-core machine has that much jitter). */
async function expectVictimUnharmed(): Promise<void> {
  expect(await victimLatency()).toBeLessThanOrEqual(2 * Math.max(quiet, 10));
}

beforeAll(async () => {
  cluster = await launchInvoker({
    nodes: 1,
    cores: 2,
    args: [
      '--namespace',
      `victim=${VICTIM_KEY}`,
      '--namespace',
      `attacker=${ATTACKER_KEY}`,
      '--max-actions',
      '12',
      '--max-code-mb',
      '1',
      '--max-concurrent',
      '4',
    ],
    env: { EBBRT_SECRET: 'cluster-secret-the-actions-must-not-read' },
  });
  victim = openwhisk({ apihost: cluster.apihost, api_key: VICTIM_KEY });
  attacker = openwhisk({ apihost: cluster.apihost, api_key: ATTACKER_KEY });
  await victim.actions.create({ name: 'echo', action: 'function main(p) { return p }' });
  await victimLatency(5);
  quiet = await victimLatency();
});

afterAll(async () => {
  await cluster?.stop();
});

describe('abuse fails only its own action', () => {
  test('an interval spinning forever after the answer: torn down with its activation', async () => {
    await attacker.actions.create({ name: 'spin', action: 'function main() { setInterval(() => { for (;;) {} }, 1); return { started: true } }' });
    expect(await attacker.actions.invoke({ name: 'spin', blocking: true, result: true })).toEqual({ started: true });
    await expectVictimUnharmed();
  });

  test("a synchronous loop is cut at the action's timeout", async () => {
    await attacker.actions.create({ name: 'loop', action: 'function main() { for (;;) {} }', limits: { timeout: 300 } });
    const running = failure(attacker.actions.invoke({ name: 'loop', blocking: true }));
    await expectVictimUnharmed();
    const record = (await running).error;
    expect(record.response.result.error).toBe('The action exceeded its time limits of 300 milliseconds.');
    expect(record.duration).toBeLessThan(600);
  });

  test('a heap bomb exhausts only its own isolate', async () => {
    await attacker.actions.create({
      name: 'bomb',
      action: 'function main() { const keep = []; for (;;) keep.push(new Array(1e5).fill(1.5)) }',
      limits: { memory: 128, timeout: 30_000 },
    });
    const running = failure(attacker.actions.invoke({ name: 'bomb', blocking: true }));
    await expectVictimUnharmed();
    const record = (await running).error;
    expect(record.response).toMatchObject({ status: 'action developer error', result: { error: 'The action exhausted its memory and was aborted.' } });
    // The native (every core) is still there.
    expect(await attacker.actions.invoke({ name: 'spin', blocking: true, result: true })).toEqual({ started: true });
  });

  test('30 MB of logs: truncated at the log limit in UTF-8 bytes; the reply fits its frame and other calls on the connection go on', async () => {
    await attacker.actions.create({
      name: 'chatty',
      action: 'function main() { const line = "é".repeat(512 * 1024); for (let i = 0; i < 30; i++) console.log(line); return { logged: 30 } }',
      limits: { logs: 2 },
    });
    const running = attacker.actions.invoke({ name: 'chatty', blocking: true });
    await expectVictimUnharmed();
    const record = await running;
    expect(record.response?.result).toEqual({ logged: 30 });
    const bytes = record.logs.reduce((n: number, line: string) => n + Buffer.byteLength(line), 0);
    expect(bytes).toBeLessThanOrEqual(2 * 1024 * 1024 + 200);
    expect(record.logs.at(-1)).toMatch(/Logs were truncated because the total bytes size exceeds the limit of 2097152 bytes\.$/);
  });

  test('an oversize result fails that activation only', async () => {
    await attacker.actions.create({ name: 'big', action: 'function main() { return { s: "x".repeat(2 * 1024 * 1024) } }' });
    const record = (await failure(attacker.actions.invoke({ name: 'big', blocking: true }))).error;
    expect(record.response.result.error).toMatch(/^The action produced a response that exceeded the allowed length: \d+ > 1048576 bytes\.$/);
    await expectVictimUnharmed();
  });

  test('namespace quotas: code size and action count answer 413, concurrent invocations 429', async () => {
    const tooBig = await failure(attacker.actions.create({ name: 'huge', action: `function main() { return {} } // ${'z'.repeat(1024 * 1024)}` }));
    expect(tooBig.statusCode).toBe(413);
    expect(tooBig.error.error).toMatch(/action code and entities are larger than allowed: \d+ > 1048576 bytes/);
    const existing = (await attacker.actions.list()).length;
    for (let i = existing; i < 12; i++) await attacker.actions.create({ name: `filler${i}`, action: 'function main() { return {} }' });
    const tooMany = await failure(attacker.actions.create({ name: 'one-too-many', action: 'function main() { return {} }' }));
    expect(tooMany.statusCode).toBe(413);
    expect(tooMany.error.error).toMatch(/holds 12 actions.*--max-actions/);
    await attacker.actions.update({ name: 'filler11', action: 'function main() { return new Promise((r) => setTimeout(() => r({}), 300)) }' });
    const calls = await Promise.allSettled(Array.from({ length: 6 }, () => attacker.actions.invoke({ name: 'filler11', blocking: true, result: true })));
    const refused = calls.filter((c) => c.status === 'rejected').map((c) => (c as PromiseRejectedResult).reason as { statusCode: number; error: any });
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect(r.statusCode).toBe(429);
      expect(r.error.error).toMatch(/^Too many concurrent requests in flight \(count: 5, allowed: 4\)\.$/);
    }
    // The victim's namespace has its own count.
    await expectVictimUnharmed();
    for (let i = existing; i < 12; i++) await attacker.actions.delete({ name: `filler${i}` });
    // The quota counts what is held now: an update replaces the old code's bytes, a delete frees them.
    const half = `function main() { return {} } // ${'h'.repeat(600 * 1024)}`;
    await attacker.actions.create({ name: 'half', action: half });
    await attacker.actions.update({ name: 'half', action: `${half} ` });
    expect((await failure(attacker.actions.create({ name: 'half2', action: half }))).statusCode).toBe(413);
    await attacker.actions.delete({ name: 'half' });
    await attacker.actions.create({ name: 'half2', action: half });
    await attacker.actions.delete({ name: 'half2' });
  });
});

describe('escapes on a real native core', () => {
  const probe = `(o) => { try { return o.constructor.constructor('return typeof process + "/" + typeof require')(); } catch (e) { return 'threw'; } }`;
  test.each([
    [
      'a failed dynamic import()',
      `async function main() { const probe = ${probe}; try { await import('node:fs') } catch (e) { return { r: probe(e) } } return { r: 'imported' } }`,
    ],
    ['eval and Function', `function main() { const probe = ${probe}; return { r: probe(eval('Function')('return this')()) } }`],
    [
      'Error.prepareStackTrace',
      `function main() { const probe = ${probe}; let r = 'undefined/undefined'; Error.prepareStackTrace = (e, sites) => { for (const s of sites) { const t = s.getThis(); if (t && probe(t) !== 'undefined/undefined') r = probe(t); } return ''; }; new Error('x').stack; return { r } }`,
    ],
    [
      'prototype pollution',
      `Object.defineProperty(Object.prototype, 'then', { get() { return undefined } }); function main(p) { const probe = ${probe}; return { r: probe(p) } }`,
    ],
    [
      'SharedArrayBuffer/Atomics',
      `function main() { const probe = ${probe}; const v = new Int32Array(new SharedArrayBuffer(4)); Atomics.add(v, 0, 1); return { r: probe(v.buffer) } }`,
    ],
  ])('%s reaches no host object and reads no secret', async (name, code) => {
    const action = `escape-${name.replace(/[^\w]+/g, '-')}`;
    await attacker.actions.update({ name: action, action: code }).catch(async () => attacker.actions.create({ name: action, action: code }));
    expect(await attacker.actions.invoke({ name: action, blocking: true, result: true })).toEqual({ r: 'undefined/undefined' });
  });
});
