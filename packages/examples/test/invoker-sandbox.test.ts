/**
 * The invoker's action sandbox on its own (no cluster): isolation (every
 * escape class tried against the old node:vm sandbox), results and errors as
 * OpenWhisk's Node.js runtime reports them, logs, memory and result limits,
 * and the time bounds on runaway code (synchronous, in continuations, in
 * timer callbacks).
 */
import { describe, expect, test } from 'vitest';
import { ActionSandbox, STATUS, type Outcome } from '../src/invoker/sandbox.js';
import { parseArgs, isolate } from '../src/invoker/args.js';
import { buildRecord } from '../src/invoker/store.js';
import { ActivationStore, activationBytes, type Activation } from '../src/invoker/activations.js';
import { fitReply } from '../src/invoker/action.js';
import { DEFAULT_MAX_FRAME_SIZE } from '@ebbrt/ebb-protocol';

function sandbox(
  code: string,
  options: { timeoutMs?: number; logLimitBytes?: number; resultLimitBytes?: number; main?: string; memoryMb?: number } = {},
): ActionSandbox {
  return new ActionSandbox({
    code,
    filename: 'test/action.js',
    timeoutMs: options.timeoutMs ?? 1000,
    logLimitBytes: options.logLimitBytes ?? 1 << 20,
    resultLimitBytes: options.resultLimitBytes,
    main: options.main,
    memoryMb: options.memoryMb ?? 64,
  });
}

async function run(box: ActionSandbox, params: unknown = {}): Promise<Outcome & { value: any }> {
  const outcome = await box.run(JSON.stringify(params));
  if (!outcome) throw new Error('the activation was handed back unrun');
  return { ...outcome, value: JSON.parse(outcome.result) };
}

describe('action sandbox', () => {
  test('results: objects, arrays, undefined as {}, Promises; entry by name or module.exports', async () => {
    expect((await run(sandbox('function main(p) { return { twice: p.n * 2 } }'), { n: 4 })).value).toEqual({ twice: 8 });
    expect((await run(sandbox('function main() { return [1, 2] }'))).value).toEqual([1, 2]);
    expect((await run(sandbox('function main() {}'))).value).toEqual({});
    expect((await run(sandbox('async function main(p) { await new Promise((r) => setTimeout(r, 5)); return { p } }'), { a: 1 })).value).toEqual({
      p: { a: 1 },
    });
    expect((await run(sandbox('const go = (p) => ({ via: "const" })', { main: 'go' }))).value).toEqual({ via: 'const' });
    expect((await run(sandbox('module.exports.main = () => ({ via: "exports" })'))).value).toEqual({ via: 'exports' });
    expect((await run(sandbox('module.exports = () => ({ via: "module" })'))).value).toEqual({ via: 'module' });
  });

  test('errors: thrown (developer), rejected or {error} (application), non-objects, bad JSON, oversize', async () => {
    expect(await run(sandbox('function main() { throw new Error("boom") }'))).toMatchObject({
      status: STATUS.developerError,
      value: { error: 'An error has occurred: Error: boom' },
    });
    expect(await run(sandbox('async function main() { throw new Error("no") }'))).toMatchObject({
      status: STATUS.applicationError,
      value: { error: { name: 'Error', message: 'no' } },
    });
    expect(await run(sandbox('function main() { return Promise.reject() }'))).toMatchObject({ status: STATUS.applicationError, value: { error: {} } });
    expect(await run(sandbox('function main() { return { error: "nope" } }'))).toMatchObject({ status: STATUS.applicationError, value: { error: 'nope' } });
    expect(await run(sandbox('function main() { return 42 }'))).toMatchObject({
      status: STATUS.developerError,
      value: { error: 'The action did not return a dictionary.' },
    });
    expect(await run(sandbox('function main() { const a = {}; a.a = a; return a }'))).toMatchObject({
      status: STATUS.developerError,
      value: { error: expect.stringMatching(/did not produce a valid JSON response/) },
    });
    expect(await run(sandbox('function main() { return { s: "x".repeat(2000) } }', { resultLimitBytes: 1000 }))).toMatchObject({
      status: STATUS.developerError,
      value: { error: expect.stringMatching(/exceeded the allowed length: \d+ > 1000 bytes/) },
    });
  });

  test('initialization failures answer every activation with the reason', async () => {
    const syntax = sandbox('function main( {');
    expect(syntax.initError).toMatch(/^Initialization has failed due to: SyntaxError/);
    expect(await run(syntax)).toMatchObject({ status: STATUS.developerError, value: { error: syntax.initError } });
    expect(sandbox('const x = 1').initError).toMatch(/defines no function main/);
    expect(sandbox('throw new RangeError("at load")').initError).toBe('Initialization has failed due to: RangeError: at load');
    expect(sandbox('function main() {}', { main: 'not an identifier' }).initError).toMatch(/not a JavaScript identifier/);
    expect(sandbox('for (;;) {}', { timeoutMs: 100 }).initError).toBe('The action exceeded its time limits of 100 milliseconds during initialization.');
  });

  test('no host object reaches the action; its own globals are its own', async () => {
    const probe = sandbox(`function main(params) {
      const hostFunction = (() => { try { return params.constructor.constructor('return typeof process')(); } catch (e) { return 'threw'; } })();
      const viaThis = (() => { try { return this.constructor.constructor('return typeof require')(); } catch (e) { return 'threw'; } })();
      return { hostFunction, viaThis, process: typeof process, require: typeof require, buffer: typeof Buffer, setTimeout: typeof setTimeout };
    }`);
    expect((await run(probe)).value).toEqual({
      hostFunction: 'undefined',
      viaThis: 'undefined',
      process: 'undefined',
      require: 'undefined',
      buffer: 'undefined',
      setTimeout: 'function',
    });
    const overwrite = sandbox('console = null; function main() { console.log("still mine"); return { ok: 1 } }');
    expect(await run(overwrite)).toMatchObject({ value: { ok: 1 }, logs: [expect.stringMatching(/stdout: still mine$/)] });
  });

  // Each escape class a hostile tenant tried on the node:vm sandbox: every object it can reach is of
  // the isolate's own realm, so `constructor.constructor` is the isolate's Function and finds no host.
  const HOST_PROBE = `(o) => { try { return o.constructor.constructor('return typeof process + "/" + typeof require + "/" + typeof globalThis.EBBRT_SECRET')(); } catch (e) { return 'threw ' + e.message; } }`;
  const NO_HOST = 'undefined/undefined/undefined';
  test.each([
    [
      'a failed dynamic import()',
      `async function main() { const probe = ${HOST_PROBE}; try { await import('node:fs'); return { r: 'imported' } } catch (e) { return { r: probe(e) } } }`,
    ],
    [
      'eval of a failing import',
      `async function main() { const probe = ${HOST_PROBE}; try { await eval('import("node:child_process")'); return { r: 'imported' } } catch (e) { return { r: probe(e) } } }`,
    ],
    ['Function and its prototype chain', `function main() { const probe = ${HOST_PROBE}; return { r: probe(Function('return this')()) } }`],
    [
      'Error.prepareStackTrace call sites',
      `function main() { const probe = ${HOST_PROBE}; let seen = []; Error.prepareStackTrace = (e, sites) => { seen = sites.map((s) => { const f = s.getFunction && s.getFunction(); const t = s.getThis && s.getThis(); return [f ? probe(f) : '${NO_HOST}', t ? probe(t) : '${NO_HOST}'].join('|'); }); return 'x'; }; new Error('probe').stack; return { r: seen.find((x) => x !== '${NO_HOST}|${NO_HOST}') || '${NO_HOST}' } }`,
    ],
    [
      'a stack overflow error',
      `function main() { const probe = ${HOST_PROBE}; const deep = () => deep(); try { deep() } catch (e) { return { r: probe(e) } } }`,
    ],
    [
      'prototype pollution of built-ins',
      `Object.prototype.polluted = 1; Array.prototype.push = () => { throw new Error('x') }; JSON.parse = () => ({ hijacked: 1 }); function main(p) { const probe = ${HOST_PROBE}; return { r: probe(p), keys: Object.keys(p) } }`,
    ],
    [
      'SharedArrayBuffer and Atomics',
      `function main() { const probe = ${HOST_PROBE}; const sab = new SharedArrayBuffer(8); const view = new Int32Array(sab); Atomics.store(view, 0, 7); const waited = Atomics.wait(view, 0, 0, 1); return { r: probe(sab), waited } }`,
    ],
  ])('escape: %s reaches no host object', async (_name, code) => {
    const outcome = await run(sandbox(code), { a: 1 });
    expect(outcome.value.r).toBe(NO_HOST);
  });

  test('pollution stays in its own isolate: another action sees pristine built-ins', async () => {
    await run(sandbox('Object.prototype.polluted = 1; Array.prototype.map = null; function main() { return {} }'));
    expect((await run(sandbox('function main() { return { polluted: ({}).polluted === undefined, map: typeof [].map } }'))).value).toEqual({
      polluted: true,
      map: 'function',
    });
  });

  test("memory: past its heap limit only that action fails, with OpenWhisk's message; a fresh sandbox works", async () => {
    const bomb = sandbox('function main(p) { if (!p.bomb) return { ok: 1 }; const keep = []; for (;;) keep.push(new Array(1e5).fill(1.5)) }', {
      memoryMb: 32,
      timeoutMs: 20_000,
    });
    const neighbour = sandbox('function main() { return { alive: 1 } }');
    expect(await run(bomb, { bomb: true })).toMatchObject({
      status: STATUS.developerError,
      value: { error: 'The action exhausted its memory and was aborted.' },
    });
    expect(bomb.poisoned).toBe(true);
    expect(await bomb.run('{}')).toBeUndefined();
    expect((await run(neighbour)).value).toEqual({ alive: 1 });
    expect(sandbox('const keep = []; for (;;) keep.push(new Array(1e5).fill(1.5))', { memoryMb: 32, timeoutMs: 20_000 }).initError).toBe(
      'The action exhausted its memory and was aborted.',
    );
  });

  test('timers and intervals an activation started are torn down when it answers', async () => {
    const box = sandbox(
      'let fired = 0; function main(p) { if (p.read) return { fired }; setInterval(() => { fired++; for (;;) {} }, 1); setTimeout(() => fired++, 5); return { started: 1 } }',
      { timeoutMs: 200 },
    );
    expect((await run(box)).value).toEqual({ started: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await run(box, { read: true })).value).toEqual({ fired: 0 });
    expect(box.poisoned).toBe(false);
  });

  test('logs and results are budgeted in UTF-8 bytes', async () => {
    // 10 three-byte characters: a 62-byte line, over a 50-byte budget though only 42 UTF-16 units.
    const logs = await run(sandbox('function main() { console.log("€".repeat(10)); return {} }', { logLimitBytes: 50 }));
    expect(logs.logs).toEqual([expect.stringMatching(/stderr: Logs were truncated because the total bytes size exceeds the limit of 50 bytes\.$/)]);
    const result = await run(sandbox('function main() { return { s: "€".repeat(400) } }', { resultLimitBytes: 1000 }));
    expect(result).toMatchObject({ status: STATUS.developerError, value: { error: expect.stringMatching(/exceeded the allowed length: 1208 > 1000 bytes/) } });
  });

  test('getters the action plants on Error are never run by the host', async () => {
    const box = sandbox(
      `Object.defineProperty(Error.prototype, 'code', { get() { for (;;) {} } });
      function main() { for (;;) {} }`,
      { timeoutMs: 100 },
    );
    const started = performance.now();
    expect(await run(box)).toMatchObject({ status: STATUS.developerError, value: { error: 'The action exceeded its time limits of 100 milliseconds.' } });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test('logs: console methods by stream, stacks cut at the runtime, a byte limit', async () => {
    const box = sandbox('function main() { console.log("a", 1, { b: 2 }); console.warn("w"); console.error(new TypeError("t")); return {} }');
    const { logs } = await run(box);
    expect(logs.map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'stdout: a 1 {"b":2}',
      'stderr: w',
      expect.stringMatching(/^stderr: TypeError: t\n {4}at main \(test\/action\.js:1:\d+\)$/),
    ]);
    // Each stored line is 24 (time) + 8 (stream) + 10 bytes: three fit in 130.
    const limited = await run(sandbox('function main() { for (let i = 0; i < 100; i++) console.log("x".repeat(10)); return {} }', { logLimitBytes: 130 }));
    expect(limited.logs).toHaveLength(4);
    expect(limited.logs[3]).toMatch(/Logs were truncated because the total bytes size exceeds the limit of 130 bytes\.$/);
  });

  test('runaways are cut off: a loop in main, in a continuation, in a timer; a never-settling promise', async () => {
    for (const code of [
      'function main() { for (;;) {} }',
      'async function main() { await null; for (;;) {} }',
      'function main() { return new Promise(() => setTimeout(() => { for (;;) {} }, 1)) }',
      'function main() { return new Promise(() => {}) }',
      'function main() { setInterval(() => {}, 1); return new Promise(() => {}) }',
    ]) {
      const box = sandbox(code, { timeoutMs: 150 });
      const started = performance.now();
      expect(await run(box)).toMatchObject({ status: STATUS.developerError, value: { error: 'The action exceeded its time limits of 150 milliseconds.' } });
      expect(performance.now() - started).toBeLessThan(1500);
      expect(box.poisoned).toBe(true);
      // A poisoned sandbox hands new activations back unrun.
      expect(await box.run('{}')).toBeUndefined();
    }
  });

  test('concurrent activations each get their whole timeout; after a runaway new ones are handed back', async () => {
    const slow = sandbox('function main(p) { const t = Date.now(); while (Date.now() - t < 30); return { i: p.i } }', { timeoutMs: 300 });
    const outcomes = await Promise.all(Array.from({ length: 5 }, (_, i) => slow.run(JSON.stringify({ i }))));
    expect(outcomes.map((o) => o && JSON.parse(o.result))).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    expect(slow.poisoned).toBe(false);
    const mixed = sandbox('function main(p) { if (p.spin) for (;;) {} return { i: p.i } }', { timeoutMs: 500 });
    const started = performance.now();
    const results = await Promise.all([{ i: 0 }, { i: 1 }, { spin: true }, { i: 3 }].map((p) => mixed.run(JSON.stringify(p))));
    expect(results.slice(0, 2).map((o) => o && JSON.parse(o.result))).toEqual([{ i: 0 }, { i: 1 }]);
    expect(results[2]).toMatchObject({ status: STATUS.developerError });
    expect(results[3]).toBeUndefined();
    // Cut at the action's own timeout, not twice it (slack for a shared machine).
    expect(performance.now() - started).toBeLessThan(900);
  });

  test('stray promise rejections of an action stay in its isolate', async () => {
    const seen: unknown[] = [];
    const onRejection = (reason: unknown) => seen.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      expect((await run(sandbox('function main() { Promise.reject(new Error("stray")); return { ok: true } }'))).value).toEqual({ ok: true });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(seen).toHaveLength(0);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });
});

describe('invoker arguments and records', () => {
  test('parseArgs defaults and namespaces', () => {
    const defaults = parseArgs([]);
    expect(defaults).toMatchObject({ host: '127.0.0.1', port: 3233, isolate: 'none', blockingWaitMs: 60_000 });
    expect([...defaults.namespaces.keys()]).toEqual(['guest']);
    const custom = parseArgs(['--port=0', '--namespace', 'a=u1:k1', '--namespace=b=u2:k2', '--isolate', 'namespace']);
    expect([...custom.namespaces]).toEqual([
      ['a', 'u1:k1'],
      ['b', 'u2:k2'],
    ]);
    expect(() => parseArgs(['--namespace', 'a=u1:k1', '--namespace', 'b=u1:k1'])).toThrow(/already another namespace's/);
    expect(() => parseArgs(['--namespace', '_=u1:k1'])).toThrow(/not a valid namespace name/);
    expect(() => parseArgs(['--port'])).toThrow(/--port needs a value/);
  });

  test('isolate splits the nodes among the namespaces, none shared', () => {
    expect([...isolate(['a', 'b'], [4, 2, 3, 5, 6])]).toEqual([
      ['a', [2, 4, 6]],
      ['b', [3, 5]],
    ]);
    expect(() => isolate(['a', 'b', 'c'], [2, 3])).toThrow(/at least one native node per namespace/);
  });

  test('records: defaults, updates merge, versions bump, kinds and limits validated', () => {
    const first = buildRecord('ns', 'act', { exec: { kind: 'nodejs:default', code: 'function main() {}' }, parameters: [{ key: 'k', value: 1 }] });
    expect(first).toMatchObject({ version: '0.0.1', limits: { timeout: 60_000, concurrency: 500 }, exec: { kind: expect.stringMatching(/^nodejs:\d+$/) } });
    const second = buildRecord('ns', 'act', { limits: { timeout: 500 } }, first);
    expect(second).toMatchObject({ version: '0.0.2', exec: first.exec, parameters: first.parameters, limits: { timeout: 500, concurrency: 500 } });
    expect(() => buildRecord('ns', 'act', { exec: { kind: 'java:8', code: 'x' } })).toThrow(/runtime kind 'java:8'/);
    expect(() => buildRecord('ns', 'act', { exec: { kind: 'nodejs:default', code: 'x', binary: true } })).toThrow(/zip action was not bundled/);
    expect(() => buildRecord('ns', 'act', { exec: { kind: 'nodejs:default', code: 'UEsDBBQACAAIAAAAIQA=' } })).toThrow(/zip action was not bundled/);
    expect(() => buildRecord('ns', 'act', { exec: { code: 'x' }, limits: { concurrency: 0 } })).toThrow(/limits\.concurrency must be an integer in 1\.\.500/);
    expect(() => buildRecord('ns', 'act', {})).toThrow(/exec undefined/);
  });

  test('quotas: defaults and flags', () => {
    expect(parseArgs([]).quotas).toEqual({ actions: 1000, codeBytes: 128 * 1024 * 1024, concurrent: 1000 });
    expect(parseArgs(['--max-actions', '3', '--max-code-mb=2', '--max-concurrent', '5']).quotas).toEqual({
      actions: 3,
      codeBytes: 2 * 1024 * 1024,
      concurrent: 5,
    });
    expect(() => parseArgs(['--max-actions', '0'])).toThrow(/--max-actions must be an integer in 1\.\.1000000/);
  });
});

describe('bounds an attacker cannot push past', () => {
  const activation = (namespace: string, id: number, logs: string[]): Activation => ({
    namespace,
    name: 'a',
    version: '0.0.1',
    subject: namespace,
    activationId: String(id),
    start: id,
    end: id,
    duration: 0,
    statusCode: 0,
    response: { status: 'success', statusCode: 0, success: true, result: {} },
    logs,
    annotations: [],
    publish: false,
  });

  test("activations kept in the frontend: a byte budget per namespace, so one tenant's logs evict only its own", () => {
    const store = new ActivationStore({ bytesPerNamespace: 32 * 1024 * 1024 });
    store.add(activation('victim', 0, ['kept']), activationBytes('{}', ['kept']));
    // 100 activations each with 10 MB of logs: a gigabyte if all were kept.
    const tenMb = ['x'.repeat(10 * 1024 * 1024)];
    for (let i = 1; i <= 100; i++) store.add(activation('attacker', i, tenMb), activationBytes('{}', tenMb));
    expect(store.bytes('attacker')).toBeLessThanOrEqual(32 * 1024 * 1024);
    expect(store.list('attacker', { skip: 0, limit: 200 }).map((a) => a.activationId)).toEqual(['100']);
    expect(store.get('attacker', '1')).toBeUndefined();
    expect(store.get('victim', '0')?.logs).toEqual(['kept']);
    expect(() => new ActivationStore({ bytesPerNamespace: 0 })).toThrow(/bytesPerNamespace must be a positive integer/);
  });

  test("a reply never exceeds the frame limit: an outcome too large becomes that call's error", () => {
    const line = 'y'.repeat(1024 * 1024);
    const huge = { status: 0 as const, result: '{}', logs: Array.from({ length: 20 }, () => line), start: 0, end: 0 };
    const fitted = fitReply(huge);
    const bytes = Buffer.byteLength(fitted.result) + fitted.logs.reduce((n, l) => n + Buffer.byteLength(l) + 5, 0);
    expect(bytes).toBeLessThan(DEFAULT_MAX_FRAME_SIZE);
    expect(fitted).toMatchObject({ status: STATUS.developerError });
    expect(JSON.parse(fitted.result).error).toMatch(/exceeded the allowed length/);
    const small = { status: 0 as const, result: '{"a":1}', logs: ['l'], start: 0, end: 0 };
    expect(fitReply(small)).toBe(small);
  });
});
