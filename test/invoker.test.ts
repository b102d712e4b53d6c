/**
 * The invoker example end to end: `ebbrt run invoker --nodes 2 --cores 2` as
 * a child process (a frontend and two native processes), driven by the real
 * `openwhisk` npm client over HTTP, plus raw requests for malformed input.
 * One cluster serves the whole file; every test uses its own action names.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import openwhisk from 'openwhisk';
import { launchInvoker, type LaunchedInvoker } from '@ebbrt/examples/invoker/launch.js';
import { ALPHA_KEY, BETA_KEY, failure } from './kit/invoker.js';

let cluster: LaunchedInvoker;
let alpha: openwhisk.Client;
let beta: openwhisk.Client;

beforeAll(async () => {
  cluster = await launchInvoker({ nodes: 2, cores: 2, args: ['--namespace', `alpha=${ALPHA_KEY}`, '--namespace', `beta=${BETA_KEY}`] });
  alpha = openwhisk({ apihost: cluster.apihost, api_key: ALPHA_KEY });
  beta = openwhisk({ apihost: cluster.apihost, api_key: BETA_KEY });
});

afterAll(async () => {
  const code = await cluster?.stop();
  // SIGINT stops a running app with 130 (ebbrt run's convention for an interrupted run).
  expect(code, cluster?.output()).toBe(130);
});

/** Polls until the activation is recorded (non-blocking invokes finish later). */
async function activation(client: openwhisk.Client, activationId: string): Promise<openwhisk.Activation<openwhisk.Dict>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await client.activations.get({ activationId });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404 || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

function annotation(record: { annotations?: { key: string; value: any }[] }, key: string): any {
  return record.annotations?.find((a) => a.key === key)?.value;
}

/** A raw request with alpha's key (or `auth`), for what the client never sends. */
async function raw(method: string, path: string, body?: string, auth: string | null = ALPHA_KEY): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  const res = await fetch(`${cluster.apihost}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

describe('invoker: actions through the openwhisk client', () => {
  test('create, get, list, then a blocking invoke with result', async () => {
    const created = await alpha.actions.create({ name: 'hello', action: 'function main(params) { return { greeting: "Hello, " + params.name + "!" } }' });
    expect(created).toMatchObject({
      namespace: 'alpha',
      name: 'hello',
      version: '0.0.1',
      exec: { kind: expect.stringMatching(/^nodejs:\d+$/), binary: false },
    });
    const got = await alpha.actions.get({ name: 'hello' });
    expect(got.exec).toMatchObject({ code: expect.stringContaining('Hello, ') });
    expect((await alpha.actions.list()).map((a) => a.name)).toContain('hello');
    expect(await alpha.actions.invoke({ name: 'hello', blocking: true, result: true, params: { name: 'World' } })).toEqual({ greeting: 'Hello, World!' });
  });

  test('a blocking invoke returns the activation record with the logs the action printed', async () => {
    await alpha.actions.create({ name: 'logger', action: 'function main(p) { console.log("got", p.n); console.error({ warn: p.n }); return { n: p.n } }' });
    const record = await alpha.actions.invoke({ name: 'logger', blocking: true, params: { n: 7 } });
    expect(record).toMatchObject({
      namespace: 'alpha',
      name: 'logger',
      version: '0.0.1',
      activationId: expect.stringMatching(/^[0-9a-f]{32}$/),
      response: { status: 'success', success: true, result: { n: 7 } },
    });
    expect(record.logs).toHaveLength(2);
    expect(record.logs[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z stdout: got 7$/);
    expect(record.logs[1]).toMatch(/ stderr: \{"warn":7\}$/);
    expect(annotation(record, 'path')).toBe('alpha/logger');
    expect(annotation(record, 'invoker')).toEqual({ node: expect.any(Number), core: expect.any(Number) });
  });

  test('a non-blocking invoke answers an activation id; the activation, its result and logs are fetched later', async () => {
    await alpha.actions.create({
      name: 'later',
      action: 'async function main(p) { await new Promise((r) => setTimeout(r, 1000)); console.log("done", p.x); return { twice: p.x * 2 } }',
    });
    const { activationId } = await alpha.actions.invoke({ name: 'later', params: { x: 21 } });
    expect(activationId).toMatch(/^[0-9a-f]{32}$/);
    // Answered while the action still runs: its activation is not recorded yet.
    expect((await failure(alpha.activations.get({ activationId }))).statusCode).toBe(404);
    const record = await activation(alpha, activationId);
    expect(record.response).toMatchObject({ status: 'success', result: { twice: 42 } });
    expect(record.duration).toBeGreaterThanOrEqual(900);
    expect(await alpha.activations.result({ activationId })).toMatchObject({ success: true, result: { twice: 42 } });
    const { logs } = await alpha.activations.logs({ activationId });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/stdout: done 21$/);
  });

  test('an update runs the new code on every core at once; the version goes up', async () => {
    await alpha.actions.create({ name: 'versioned', action: 'function main() { return { v: 1 } }' });
    // Warm every core's rep first, so the update has compiled reps to invalidate.
    const before = await Promise.all(Array.from({ length: 16 }, () => alpha.actions.invoke({ name: 'versioned', blocking: true })));
    expect(before.every((a) => a.response?.result.v === 1)).toBe(true);
    expect(new Set(before.map((a) => JSON.stringify(annotation(a, 'invoker')))).size).toBe(4);
    const updated = await alpha.actions.update({ name: 'versioned', action: 'function main() { return { v: 2 } }' });
    expect(updated.version).toBe('0.0.2');
    const after = await Promise.all(Array.from({ length: 16 }, () => alpha.actions.invoke({ name: 'versioned', blocking: true, result: true })));
    expect(after).toEqual(Array(16).fill({ v: 2 }));
  });

  test('updates under load: every invocation runs the old or the new code, none fails, and none runs old code after the update answered', async () => {
    await alpha.actions.create({ name: 'churn', action: 'function main(p) { return { v: 0, i: p.i } }' });
    let updatedAt = Infinity;
    const invocations = Array.from({ length: 120 }, (_, i) =>
      new Promise((resolve) => setTimeout(resolve, i * 3)).then(async () => {
        const sentAt = performance.now();
        const result = (await alpha.actions.invoke({ name: 'churn', blocking: true, result: true, params: { i } })) as { v: number; i: number };
        return { sentAt, result };
      }),
    );
    for (let v = 1; v <= 3; v++) {
      await new Promise((resolve) => setTimeout(resolve, 80));
      await alpha.actions.update({ name: 'churn', action: `function main(p) { return { v: ${v}, i: p.i } }` });
      if (v === 3) updatedAt = performance.now();
    }
    const done = await Promise.all(invocations);
    done.forEach(({ result }, i) => expect(result.i).toBe(i));
    expect(new Set(done.map(({ result }) => result.v)).size).toBeGreaterThan(1);
    // Whatever was sent after the last update answered ran the new code: those of the load that were
    // (possibly none on a slow machine), and 8 sent after it on purpose.
    const late = done.filter(({ sentAt }) => sentAt > updatedAt).map(({ result }) => result);
    late.push(
      ...((await Promise.all(Array.from({ length: 8 }, (_, i) => alpha.actions.invoke({ name: 'churn', blocking: true, result: true, params: { i } })))) as {
        v: number;
        i: number;
      }[]),
    );
    expect(late.length).toBeGreaterThanOrEqual(8);
    expect(late.map(({ v }) => v)).toEqual(Array(late.length).fill(3));
  });

  test('a delete makes get and invoke 404; the name can be created again', async () => {
    await alpha.actions.create({ name: 'doomed', action: 'function main() { return { alive: true } }' });
    expect(await alpha.actions.invoke({ name: 'doomed', blocking: true, result: true })).toEqual({ alive: true });
    expect((await alpha.actions.delete({ name: 'doomed' })).name).toBe('doomed');
    for (const request of [
      alpha.actions.get({ name: 'doomed' }),
      alpha.actions.invoke({ name: 'doomed', blocking: true }),
      alpha.actions.delete({ name: 'doomed' }),
    ]) {
      const error = await failure(request);
      expect(error.statusCode).toBe(404);
      expect(error.error).toEqual({ error: 'The requested resource does not exist.', code: expect.any(String) });
    }
    expect((await alpha.actions.list()).map((a) => a.name)).not.toContain('doomed');
    await alpha.actions.create({ name: 'doomed', action: 'function main() { return { alive: "again" } }' });
    expect(await alpha.actions.invoke({ name: 'doomed', blocking: true, result: true })).toEqual({ alive: 'again' });
  });

  test('creating an existing action without overwrite is a 409', async () => {
    await alpha.actions.create({ name: 'twice', action: 'function main() { return {} }' });
    const error = await failure(alpha.actions.create({ name: 'twice', action: 'function main() { return {} }' }));
    expect(error.statusCode).toBe(409);
    expect(error.error).toEqual({ error: 'resource already exists', code: expect.any(String) });
  });

  test("a wrong key, or none, is a 401 with OpenWhisk's error body", async () => {
    const wrong = openwhisk({ apihost: cluster.apihost, api_key: `${ALPHA_KEY.split(':')[0]}:not-the-key` });
    for (const request of [wrong.actions.list(), wrong.actions.invoke({ name: 'hello', blocking: true }), wrong.activations.list()]) {
      const error = await failure(request);
      expect(error.statusCode).toBe(401);
      expect(error.error).toEqual({ error: 'The supplied authentication is invalid.', code: expect.stringMatching(/^[0-9a-f]{32}$/) });
    }
    expect((await raw('GET', '/api/v1/namespaces/_/actions', undefined, null)).status).toBe(401);
  });

  test("another namespace's action is a 404 and never runs", async () => {
    await alpha.actions.create({ name: 'private', action: 'function main() { console.log("ran"); return { secret: 42 } }' });
    await alpha.actions.invoke({ name: 'private', blocking: true });
    const count = async () => ((await alpha.activations.list({ name: 'private', count: true } as never)) as unknown as { activations: number }).activations;
    const runs = await count();
    expect(runs).toBe(1);
    for (const request of [
      beta.actions.invoke({ name: 'private', namespace: 'alpha', blocking: true }),
      beta.actions.invoke({ name: '/alpha/private', blocking: false }),
      beta.actions.get({ name: 'private', namespace: 'alpha' }),
      beta.actions.update({ name: 'private', namespace: 'alpha', action: 'function main() { return { stolen: true } }' }),
      beta.actions.delete({ name: 'private', namespace: 'alpha' }),
      beta.actions.list({ namespace: 'alpha' }),
      beta.activations.list({ namespace: 'alpha' }),
      // Beta's own namespace has no such action either.
      beta.actions.invoke({ name: 'private', blocking: true }),
    ]) {
      expect((await failure(request)).statusCode).toBe(404);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await count()).toBe(runs);
    expect(await alpha.actions.invoke({ name: 'private', blocking: true, result: true })).toEqual({ secret: 42 });
    expect((await beta.actions.list()).map((a) => a.name)).not.toContain('private');
  });

  test('actions see no runtime internals and no other action', async () => {
    await alpha.actions.create({
      name: 'probe',
      action: `globalThis.mine = 'probe';
        function main() {
          const escape = (() => { try { return this.constructor.constructor('return typeof process')(); } catch (e) { return 'threw'; } })();
          return { require: typeof require, process: typeof process, buffer: typeof Buffer, escape, other: typeof globalThis.theirs, mine: globalThis.mine };
        }`,
    });
    await alpha.actions.create({ name: 'neighbour', action: 'globalThis.theirs = 1; function main() { return { other: typeof globalThis.mine } }' });
    expect(await alpha.actions.invoke({ name: 'neighbour', blocking: true, result: true })).toEqual({ other: 'undefined' });
    expect(await alpha.actions.invoke({ name: 'probe', blocking: true, result: true })).toEqual({
      require: 'undefined',
      process: 'undefined',
      buffer: 'undefined',
      escape: 'undefined',
      other: 'undefined',
      mine: 'probe',
    });
  });

  test("a timeout: a synchronous loop and a promise that never settles fail with OpenWhisk's message; the cores keep serving", async () => {
    await alpha.actions.create({ name: 'spin', action: 'function main() { for (;;) {} }', limits: { timeout: 300 } });
    await alpha.actions.create({ name: 'hang', action: 'function main() { return new Promise(() => {}) }', limits: { timeout: 300 } });
    await alpha.actions.create({
      name: 'spin-later',
      action: 'function main() { return new Promise(() => setTimeout(() => { for (;;) {} }, 10)) }',
      limits: { timeout: 300 },
    });
    await alpha.actions.create({ name: 'quick', action: 'function main(p) { return { n: p.n } }' });
    // One runaway per core of each kind: every core is wedged in turn and must come back.
    const runaways = await Promise.all(
      ['spin', 'hang', 'spin-later'].flatMap((name) => Array.from({ length: 4 }, () => failure(alpha.actions.invoke({ name, blocking: true })))),
    );
    for (const error of runaways) {
      expect(error.statusCode).toBe(502);
      expect(error.error.response).toMatchObject({
        status: 'action developer error',
        success: false,
        result: { error: 'The action exceeded its time limits of 300 milliseconds.' },
      });
      expect(error.message).toContain('The action exceeded its time limits of 300 milliseconds.');
    }
    const after = await Promise.all(Array.from({ length: 16 }, (_, n) => alpha.actions.invoke({ name: 'quick', blocking: true, params: { n } })));
    expect(after.map((a) => a.response?.result.n)).toEqual(Array.from({ length: 16 }, (_, n) => n));
    expect(new Set(after.map((a) => JSON.stringify(annotation(a, 'invoker')))).size).toBe(4);
  });

  test('a throwing action is an action developer error (502)', async () => {
    await alpha.actions.create({ name: 'thrower', action: 'function main() { throw new TypeError("bad input") }' });
    const error = await failure(alpha.actions.invoke({ name: 'thrower', blocking: true, result: true }));
    expect(error.statusCode).toBe(502);
    expect(error.error.response).toMatchObject({
      status: 'action developer error',
      statusCode: 2,
      success: false,
      result: { error: 'An error has occurred: TypeError: bad input' },
    });
  });

  test('a rejected promise and a returned {error} are application errors (502)', async () => {
    await alpha.actions.create({ name: 'rejecter', action: 'async function main() { const e = new RangeError("too far"); e.limit = 3; throw e }' });
    const rejected = await failure(alpha.actions.invoke({ name: 'rejecter', blocking: true }));
    expect(rejected.statusCode).toBe(502);
    expect(rejected.error.response).toEqual({
      status: 'application error',
      statusCode: 1,
      success: false,
      result: { error: { name: 'RangeError', message: 'too far', limit: 3 } },
    });
    await alpha.actions.create({ name: 'refuser', action: 'function main() { return Promise.reject({ reason: "no" }) }' });
    expect((await failure(alpha.actions.invoke({ name: 'refuser', blocking: true }))).error.response.result).toEqual({ error: { reason: 'no' } });
    await alpha.actions.create({ name: 'error-result', action: 'function main() { return { error: "declined" } }' });
    const declined = await failure(alpha.actions.invoke({ name: 'error-result', blocking: true, result: true }));
    expect(declined.statusCode).toBe(502);
    expect(declined.message).toContain('declined');
  });

  test('past its concurrency limit an action is refused with 429', async () => {
    await alpha.actions.create({
      name: 'narrow',
      action: 'function main() { return new Promise((r) => setTimeout(() => r({ ok: true }), 1000)) }',
      limits: { concurrency: 2 },
    });
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => alpha.actions.invoke({ name: 'narrow', blocking: true, result: true })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(2);
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect(r.reason.statusCode).toBe(429);
      expect(r.reason.error.error).toMatch(/^Too many concurrent requests in flight \(count: \d+, allowed: 2\)\.$/);
    }
    expect(await alpha.actions.invoke({ name: 'narrow', blocking: true, result: true })).toEqual({ ok: true });
  });

  test('200 concurrent invocations: every result correct, spread over both nodes and every core', async () => {
    await alpha.actions.create({ name: 'square', action: 'async function main(p) { await null; return { n: p.n, square: p.n * p.n } }' });
    const records = await Promise.all(Array.from({ length: 200 }, (_, n) => alpha.actions.invoke({ name: 'square', blocking: true, params: { n } })));
    records.forEach((record, n) => expect(record.response?.result).toEqual({ n, square: n * n }));
    const places = records.map((r) => annotation(r, 'invoker') as { node: number; core: number });
    expect(new Set(places.map((p) => p.node)).size).toBe(2);
    expect(new Set(places.map((p) => `${p.node}/${p.core}`)).size).toBe(4);
    // Compiled once per core: exactly one cold start (initTime) per core that ran it.
    expect(records.filter((r) => annotation(r, 'initTime') !== undefined).length).toBe(4);
  });

  test('activations: list by name with limit, skip and count', async () => {
    await alpha.actions.create({ name: 'counted', action: 'function main(p) { return { i: p.i } }' });
    for (let i = 0; i < 5; i++) await alpha.actions.invoke({ name: 'counted', blocking: true, params: { i } });
    const list = await alpha.activations.list({ name: 'counted', limit: 3 });
    expect(list).toHaveLength(3);
    expect(list[0]).not.toHaveProperty('response');
    const docs = await alpha.activations.list({ name: 'counted', limit: 2, skip: 1, docs: true });
    expect((docs as openwhisk.Activation<openwhisk.Dict>[]).map((a) => (a.response!.result as { i: number }).i)).toEqual([3, 2]);
    expect(await alpha.activations.list({ name: 'counted', count: true } as never)).toEqual({ activations: 5 });
    expect(await alpha.actions.list({ count: true } as never)).toMatchObject({ actions: expect.any(Number) });
  });
});

describe('invoker: malformed requests get OpenWhisk-shaped errors', () => {
  const errorBody = { error: expect.any(String), code: expect.stringMatching(/^[0-9a-f]{32}$/) };

  test.each([
    ['PUT', '/api/v1/namespaces/_/actions/broken', '{"exec": {', 400, /malformed/],
    ['PUT', '/api/v1/namespaces/_/actions/broken', '', 400, /empty/],
    [
      'PUT',
      '/api/v1/namespaces/_/actions/broken',
      '{"exec":{"kind":"python:3","code":"def main(a): return a"}}',
      501,
      /Not supported by this invoker: the runtime kind 'python:3'/,
    ],
    ['PUT', '/api/v1/namespaces/_/actions/broken', '{"exec":{"kind":"nodejs:default"}}', 400, /exec\.code/],
    [
      'PUT',
      '/api/v1/namespaces/_/actions/broken',
      '{"exec":{"kind":"nodejs:default","code":"x"},"limits":{"timeout":5}}',
      400,
      /limits\.timeout must be an integer in 100\.\.300000/,
    ],
    ['PUT', '/api/v1/namespaces/_/actions/broken', '{"exec":{"kind":"nodejs:default","code":"x"},"limits":{"cpu":1}}', 400, /unknown limit "cpu"/],
    ['PUT', '/api/v1/namespaces/_/actions/broken', '{"exec":{"kind":"nodejs:default","code":"x","main":"a-b"}}', 400, /exec\.main/],
    ['PUT', '/api/v1/namespaces/_/actions/bad%21name', '{"exec":{"kind":"nodejs:default","code":"x"}}', 400, /illegal characters/],
    ['POST', '/api/v1/namespaces/_/actions/hello?blocking=true', '[1, 2]', 400, /JSON object/],
    ['POST', '/api/v1/namespaces/_/actions/hello?blocking=true', 'not json', 400, /malformed/],
    ['PATCH', '/api/v1/namespaces/_/actions/hello', '{}', 405, /method not allowed/],
    ['GET', '/api/v1/namespaces/_/activations/not-an-id', undefined, 400, /activation id is not valid/],
    ['GET', '/api/v1/namespaces/_/activations?limit=abc', undefined, 400, /not an integer/],
    ['GET', '/api/v1/namespaces/_/activations/0123456789abcdef0123456789abcdef', undefined, 404, /does not exist/],
    ['GET', '/api/v1/namespaces/_/bogus', undefined, 404, /does not exist/],
    ['GET', '/api/v2/namespaces', undefined, 404, /does not exist/],
  ])('%s %s %s → %i', async (method, path, body, status, message) => {
    const r = await raw(method, path, body);
    expect(r.status).toBe(status);
    expect(r.json).toEqual(errorBody);
    expect(r.json.error).toMatch(message);
  });

  test('an action whose code does not compile fails its activations with the reason', async () => {
    await alpha.actions.create({ name: 'unparsable', action: 'function main( {' });
    const error = await failure(alpha.actions.invoke({ name: 'unparsable', blocking: true }));
    expect(error.statusCode).toBe(502);
    expect(error.error.response).toMatchObject({
      status: 'action developer error',
      result: { error: expect.stringMatching(/^Initialization has failed due to: SyntaxError/) },
    });
  });

  test("GET /api/v1 describes the API without a key; /namespaces lists the caller's own", async () => {
    const info = await raw('GET', '/api/v1', undefined, null);
    expect(info.status).toBe(200);
    expect(info.json.runtimes.nodejs[0].kind).toMatch(/^nodejs:\d+$/);
    expect(await beta.namespaces.list()).toEqual(['beta']);
  });
});
