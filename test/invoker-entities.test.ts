/**
 * OpenWhisk's entities besides actions, driven by the real `openwhisk` client
 * against `ebbrt run invoker` (a frontend and one native process): packages
 * and bindings, actions in packages, sequences, web actions, triggers and
 * rules, zip actions (bundled at create, or refused with the reason), and
 * 501s for what is not supported.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import openwhisk from 'openwhisk';
import { launchInvoker, type LaunchedInvoker } from '@ebbrt/examples/invoker/launch.js';
import { ALPHA_KEY, BETA_KEY, failure, zip } from './kit/invoker.js';

let cluster: LaunchedInvoker;
let alpha: openwhisk.Client;
let beta: openwhisk.Client;

beforeAll(async () => {
  cluster = await launchInvoker({ nodes: 1, cores: 2, args: ['--namespace', `alpha=${ALPHA_KEY}`, '--namespace', `beta=${BETA_KEY}`] });
  alpha = openwhisk({ apihost: cluster.apihost, api_key: ALPHA_KEY });
  beta = openwhisk({ apihost: cluster.apihost, api_key: BETA_KEY });
});

afterAll(async () => {
  expect(await cluster?.stop(), cluster?.output()).toBe(130);
});

/** Polls `activations.list` until `predicate` holds for it (non-blocking activations are recorded when they end). */
async function activations(client: openwhisk.Client, name: string, predicate: (list: any[]) => boolean): Promise<any[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const list = (await client.activations.list({ name, docs: true, limit: 50 } as any)) as any[];
    if (predicate(list)) return list;
    if (Date.now() > deadline) throw new Error(`activations of ${name} never matched: ${JSON.stringify(list)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function raw(
  method: string,
  path: string,
  init: { body?: string; auth?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const headers: Record<string, string> = { ...init.headers };
  const auth = init.auth === undefined ? ALPHA_KEY : init.auth;
  if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
  const res = await fetch(`${cluster.apihost}${path}`, { method, headers, body: init.body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('invoker entities: packages and bindings', () => {
  test('no list pretends: packages, triggers and rules are empty until created; a missing one is 404', async () => {
    expect(await beta.packages.list()).toEqual([]);
    expect(await beta.triggers.list()).toEqual([]);
    expect(await beta.rules.list()).toEqual([]);
    for (const request of [beta.packages.get({ name: 'nope' }), beta.triggers.get({ name: 'nope' }), beta.rules.get({ name: 'nope' })]) {
      expect((await failure(request)).statusCode).toBe(404);
    }
  });

  test('create, get, list a package; an action inside it gets package parameters under its own', async () => {
    const created = await alpha.packages.create({
      name: 'utils',
      package: {
        parameters: [
          { key: 'greeting', value: 'Hello' },
          { key: 'who', value: 'package' },
        ],
      },
    });
    expect(created).toMatchObject({
      namespace: 'alpha',
      name: 'utils',
      version: '0.0.1',
      binding: {},
      parameters: [
        { key: 'greeting', value: 'Hello' },
        { key: 'who', value: 'package' },
      ],
    });
    const action = await alpha.actions.create({
      name: 'utils/greet',
      action: 'function main(p) { return { text: p.greeting + ", " + p.who + p.punct } }',
      params: { who: 'action', punct: '.' },
    });
    expect(action).toMatchObject({ namespace: 'alpha/utils', name: 'greet' });
    expect(await alpha.actions.invoke({ name: 'utils/greet', blocking: true, result: true })).toEqual({ text: 'Hello, action.' });
    expect(await alpha.actions.invoke({ name: 'utils/greet', blocking: true, result: true, params: { who: 'caller' } })).toEqual({ text: 'Hello, caller.' });
    const got = await alpha.packages.get({ name: 'utils' });
    expect(got.actions).toEqual([expect.objectContaining({ name: 'greet', version: '0.0.1' })]);
    expect((await alpha.packages.list()).map((p: any) => p.name)).toContain('utils');
    // Package actions are listed under the package, not the namespace.
    expect((await alpha.actions.list()).map((a) => a.name)).not.toContain('greet');
    expect((await raw('GET', '/api/v1/namespaces/_/actions/utils/')).text).toContain('"name":"greet"');
    // Its activations are listed by its simple name, or by package/name.
    const byPath = (await alpha.activations.list({ name: 'utils/greet' } as any)) as any[];
    expect(byPath).toHaveLength(2);
    expect(byPath.every((a) => a.name === 'greet' && a.annotations.some((k: any) => k.key === 'path' && k.value === 'alpha/utils/greet'))).toBe(true);
    expect((await alpha.activations.list({ name: 'other/greet' } as any)) as any[]).toEqual([]);
    // Another namespace sees none of it.
    expect((await failure(beta.packages.get({ name: 'utils' }))).statusCode).toBe(404);
    expect((await failure(beta.actions.invoke({ name: '/alpha/utils/greet', blocking: true }))).statusCode).toBe(404);
    expect((await failure(beta.actions.invoke({ name: 'utils/greet', blocking: true }))).statusCode).toBe(404);
  });

  test("a binding: actions of the bound package run with the binding's parameters over the package's", async () => {
    await alpha.packages.create({
      name: 'french',
      package: { binding: { namespace: '_', name: 'utils' }, parameters: [{ key: 'greeting', value: 'Bonjour' }] },
    });
    const binding = await alpha.packages.get({ name: 'french' });
    expect(binding.binding).toEqual({ namespace: 'alpha', name: 'utils' });
    expect(await alpha.actions.invoke({ name: 'french/greet', blocking: true, result: true, params: { who: 'monde' } })).toEqual({ text: 'Bonjour, monde.' });
    const inBinding = await failure(alpha.actions.create({ name: 'french/other', action: 'function main() { return {} }' }));
    expect(inBinding.statusCode).toBe(400);
    expect(inBinding.error.error).toMatch(/package binding/);
    expect((await failure(alpha.packages.create({ name: 'dangling', package: { binding: { namespace: '_', name: 'nothing' } } }))).statusCode).toBe(404);
  });

  test('a package holding actions cannot be deleted; emptied, it can', async () => {
    await alpha.packages.create({ name: 'temp' });
    await alpha.actions.create({ name: 'temp/one', action: 'function main() { return { one: 1 } }' });
    const refused = await failure(alpha.packages.delete({ name: 'temp' }));
    expect(refused.statusCode).toBe(409);
    expect(refused.error.error).toMatch(/Package not empty \(contains 1 entity\)/);
    await alpha.actions.delete({ name: 'temp/one' });
    expect((await alpha.packages.delete({ name: 'temp' })).name).toBe('temp');
    expect((await failure(alpha.actions.create({ name: 'temp/two', action: 'function main() { return {} }' }))).statusCode).toBe(404);
  });
});

describe('invoker entities: sequences', () => {
  test("each step gets the previous result; one activation per step plus the sequence's, which lists them", async () => {
    await alpha.actions.create({ name: 'inc', action: 'function main(p) { return { n: p.n + 1 } }' });
    await alpha.actions.create({ name: 'double', action: 'function main(p) { return { n: p.n * 2 } }' });
    await alpha.actions.create({ name: 'calc', sequence: ['/_/inc', '/alpha/double', 'inc'] });
    const seq = await alpha.actions.get({ name: 'calc' });
    expect(seq.exec).toEqual({ kind: 'sequence', components: ['/_/inc', '/alpha/double', 'inc'] });
    const record = (await alpha.actions.invoke({ name: 'calc', blocking: true, params: { n: 3 } })) as any;
    expect(record.response).toMatchObject({ success: true, result: { n: 9 } });
    expect(record.logs).toHaveLength(3);
    expect(record.annotations).toEqual(
      expect.arrayContaining([
        { key: 'kind', value: 'sequence' },
        { key: 'topmost', value: true },
      ]),
    );
    const steps = await Promise.all(record.logs.map((activationId: string) => alpha.activations.get({ activationId })));
    expect(steps.map((s: any) => [s.name, s.response.result.n, s.cause])).toEqual([
      ['inc', 4, record.activationId],
      ['double', 8, record.activationId],
      ['inc', 9, record.activationId],
    ]);
  });

  test('a failing step ends the sequence with its error; a nested sequence runs inside; a missing component is refused at create', async () => {
    await alpha.actions.create({ name: 'fail', action: 'function main() { return { error: "step failed" } }' });
    await alpha.actions.create({ name: 'broken', sequence: ['/_/inc', '/_/fail', '/_/double'] });
    const failed = await failure(alpha.actions.invoke({ name: 'broken', blocking: true, params: { n: 1 } }));
    expect(failed.statusCode).toBe(502);
    expect(failed.error.response).toMatchObject({ success: false, result: { error: 'step failed' } });
    expect(failed.error.logs).toHaveLength(2);
    await alpha.actions.create({ name: 'outer', sequence: ['/_/calc', '/_/double'] });
    expect(await alpha.actions.invoke({ name: 'outer', blocking: true, result: true, params: { n: 0 } })).toEqual({ n: 6 });
    const missing = await failure(alpha.actions.create({ name: 'ghostly', sequence: ['/_/ghost'] }));
    expect(missing.statusCode).toBe(400);
    expect(missing.error.error).toMatch(/Sequence component does not exist: \/_\/ghost/);
    expect((await failure(beta.actions.create({ name: 'steal', sequence: ['/alpha/inc'] }))).statusCode).toBe(404);
  });

  test('a sequence that contains itself stops at the step limit', async () => {
    await alpha.actions.create({ name: 'loop', sequence: ['/_/inc'] });
    await alpha.actions.update({ name: 'loop', sequence: ['/_/inc', '/_/loop'] });
    const failed = await failure(alpha.actions.invoke({ name: 'loop', blocking: true, params: { n: 0 } }));
    expect(failed.error.response.result.error).toMatch(/Too many actions in the sequence/);
  });
});

describe('invoker entities: web actions', () => {
  test('a web-exported action answers without auth at /api/v1/web/{ns}/{pkg}/{action}.{ext}, with the __ow_ fields', async () => {
    await alpha.actions.create({
      name: 'echo',
      action:
        'function main(p) { return { method: p.__ow_method, path: p.__ow_path, agent: p.__ow_headers["x-test"], q: p.q, b: p.b, auth: p.__ow_headers.authorization === undefined } }',
      annotations: { 'web-export': true },
    });
    const json = await raw('POST', '/api/v1/web/alpha/default/echo.json?q=1', {
      auth: null,
      body: '{"b":2}',
      headers: { 'content-type': 'application/json', 'x-test': 'yes' },
    });
    expect(json.status).toBe(200);
    expect(json.headers.get('x-openwhisk-activation-id')).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(json.text)).toEqual({ method: 'post', path: '', agent: 'yes', q: '1', b: 2, auth: true });
    // Past the extension, the path is __ow_path, and a .json result is projected on it.
    expect(JSON.parse((await raw('GET', '/api/v1/web/alpha/default/echo.json/path', { auth: null })).text)).toBe('/path');
    await alpha.actions.create({
      name: 'utils/page',
      action: 'function main(p) { return { html: "<h1>" + (p.title || "none") + "</h1>" } }',
      annotations: { 'web-export': true },
    });
    const html = await raw('GET', '/api/v1/web/alpha/utils/page.html?title=hi', { auth: null });
    expect([html.status, html.headers.get('content-type'), html.text]).toEqual([200, 'text/html; charset=utf-8', '<h1>hi</h1>']);
  });

  test('.http results set status, headers and body; base64 bodies of binary types are decoded', async () => {
    await alpha.actions.create({
      name: 'http',
      action:
        'function main(p) { return p.bin ? { headers: { "content-type": "application/octet-stream" }, body: "AAEC" } : { statusCode: 201, headers: { "x-made": "here" }, body: { ok: true } } }',
      annotations: { 'web-export': true },
    });
    const made = await raw('GET', '/api/v1/web/alpha/default/http.http', { auth: null });
    expect([made.status, made.headers.get('x-made'), JSON.parse(made.text)]).toEqual([201, 'here', { ok: true }]);
    const binary = await fetch(`${cluster.apihost}/api/v1/web/alpha/default/http?bin=1`);
    expect([...new Uint8Array(await binary.arrayBuffer())]).toEqual([0, 1, 2]);
  });

  test('an action that is not web-exported is a 404 at its web URL; require-whisk-auth asks for the key', async () => {
    await alpha.actions.create({ name: 'private', action: 'function main() { return { secret: 1 } }' });
    expect((await raw('GET', '/api/v1/web/alpha/default/private.json', { auth: null })).status).toBe(404);
    expect((await raw('GET', '/api/v1/web/nobody/default/private.json', { auth: null })).status).toBe(404);
    await alpha.actions.create({
      name: 'guarded',
      action: 'function main() { return { guarded: 1 } }',
      annotations: { 'web-export': true, 'require-whisk-auth': true },
    });
    expect((await raw('GET', '/api/v1/web/alpha/default/guarded.json', { auth: null })).status).toBe(401);
    expect((await raw('GET', '/api/v1/web/alpha/default/guarded.json', { auth: BETA_KEY })).status).toBe(401);
    expect(JSON.parse((await raw('GET', '/api/v1/web/alpha/default/guarded.json')).text)).toEqual({ guarded: 1 });
  });

  test('final parameters cannot be overridden from the request', async () => {
    await alpha.actions.create({
      name: 'final',
      action: 'function main(p) { return { role: p.role } }',
      params: { role: 'reader' },
      annotations: { 'web-export': true, final: true },
    });
    expect(JSON.parse((await raw('GET', '/api/v1/web/alpha/default/final.json', { auth: null })).text)).toEqual({ role: 'reader' });
    const refused = await raw('GET', '/api/v1/web/alpha/default/final.json?role=admin', { auth: null });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text).error).toMatch(/not allowed/);
  });
});

describe('invoker entities: triggers and rules', () => {
  test("firing a trigger activates every active rule's action with the trigger's parameters under the payload", async () => {
    await alpha.actions.create({ name: 'onEvent', action: 'function main(p) { return { saw: p.source + ":" + p.kind } }' });
    await alpha.actions.create({ name: 'utils/audit', action: 'function main(p) { return { audited: p.kind } }' });
    const trigger = await alpha.triggers.create({
      name: 'events',
      trigger: {
        parameters: [
          { key: 'source', value: 'sensor' },
          { key: 'kind', value: 'default' },
        ],
      },
    });
    expect(trigger).toMatchObject({
      namespace: 'alpha',
      name: 'events',
      parameters: [
        { key: 'source', value: 'sensor' },
        { key: 'kind', value: 'default' },
      ],
    });
    const rule = await alpha.rules.create({ name: 'onEvents', trigger: 'events', action: 'onEvent' });
    expect(rule).toMatchObject({ name: 'onEvents', status: 'active', trigger: { path: 'alpha', name: 'events' }, action: { path: 'alpha', name: 'onEvent' } });
    await alpha.rules.create({ name: 'audit', trigger: '/_/events', action: '/_/utils/audit' });
    expect((await alpha.triggers.get({ name: 'events' })).rules).toEqual({
      'alpha/onEvents': { action: { path: 'alpha', name: 'onEvent' }, status: 'active' },
      'alpha/audit': { action: { path: 'alpha/utils', name: 'audit' }, status: 'active' },
    });
    const fired = (await alpha.triggers.invoke({ name: 'events', params: { kind: 'motion' } })) as { activationId: string };
    expect(fired.activationId).toMatch(/^[0-9a-f]{32}$/);
    const triggerActivation = await alpha.activations.get({ activationId: fired.activationId });
    // Its result is the payload alone, as OpenWhisk's; the trigger's parameters went to the actions.
    expect(triggerActivation.response?.result).toEqual({ kind: 'motion' });
    const lines = triggerActivation.logs.map((l: string) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines.every((l: any) => l.success && /^[0-9a-f]{32}$/.test(l.activationId))).toBe(true);
    const [ran] = await activations(alpha, 'onEvent', (list) => list.some((a) => a.cause === fired.activationId));
    expect(ran.response.result).toEqual({ saw: 'sensor:motion' });
    await activations(alpha, 'audit', (list) => list.some((a) => a.cause === fired.activationId && a.response.result.audited === 'motion'));
  });

  test('a disabled rule does not fire; a trigger with no active rule answers 204 and records nothing; delete removes both', async () => {
    await alpha.triggers.create({ name: 'quiet' });
    await alpha.rules.create({ name: 'quietRule', trigger: 'quiet', action: 'onEvent' });
    await alpha.rules.disable({ name: 'quietRule' });
    expect((await alpha.rules.get({ name: 'quietRule' })).status).toBe('inactive');
    const response = await raw('POST', '/api/v1/namespaces/_/triggers/quiet', { body: '{}', headers: { 'content-type': 'application/json' } });
    expect([response.status, response.text]).toEqual([204, '']);
    await alpha.rules.enable({ name: 'quietRule' });
    const fired = (await alpha.triggers.invoke({ name: 'quiet', params: { source: 'q', kind: 'k' } })) as { activationId: string };
    await activations(alpha, 'onEvent', (list) => list.some((a) => a.cause === fired.activationId && a.response.result.saw === 'q:k'));
    expect((await alpha.rules.delete({ name: 'quietRule' })).name).toBe('quietRule');
    expect((await alpha.triggers.delete({ name: 'quiet' })).name).toBe('quiet');
    expect((await failure(alpha.rules.get({ name: 'quietRule' }))).statusCode).toBe(404);
    expect((await alpha.rules.list()).map((r: any) => r.name)).not.toContain('quietRule');
  });

  test('a rule needs an existing trigger and action of its own namespace', async () => {
    expect((await failure(alpha.rules.create({ name: 'r1', trigger: 'missing', action: 'onEvent' }))).statusCode).toBe(404);
    expect((await failure(alpha.rules.create({ name: 'r2', trigger: 'events', action: 'missing' }))).statusCode).toBe(404);
    await beta.triggers.create({ name: 'bt' });
    expect((await failure(beta.rules.create({ name: 'r3', trigger: 'bt', action: '/alpha/onEvent' }))).statusCode).toBe(404);
  });
});

describe('invoker entities: zip actions', () => {
  test('a zip of an entry file and its node_modules is bundled at create and runs', async () => {
    const archive = zip({
      'package.json': JSON.stringify({ name: 'zipped', main: 'lib/entry.js' }),
      'lib/entry.js':
        'const pad = require("left-pad"); const { suffix } = require("./suffix"); exports.main = (p) => ({ padded: pad(String(p.n), 5) + suffix });',
      'lib/suffix.js': 'exports.suffix = "!";',
      'node_modules/left-pad/package.json': JSON.stringify({ name: 'left-pad', main: 'index.js' }),
      'node_modules/left-pad/index.js': 'module.exports = (s, n) => "0".repeat(Math.max(0, n - s.length)) + s;',
    });
    const created = await alpha.actions.create({ name: 'zipped', action: archive });
    expect(created.exec).toMatchObject({ binary: false, code: expect.stringContaining('left-pad') });
    expect(await alpha.actions.invoke({ name: 'zipped', blocking: true, result: true, params: { n: 42 } })).toEqual({ padded: '00042!' });
    // index.js without a package.json is the entry too.
    await alpha.actions.create({ name: 'zipped2', action: zip({ 'index.js': 'function main(p) { return { twice: p.n * 2 } } module.exports.main = main;' }) });
    expect(await alpha.actions.invoke({ name: 'zipped2', blocking: true, result: true, params: { n: 21 } })).toEqual({ twice: 42 });
  });

  // Archives are built inside the test: a table holding an 80 MB buffer slows vitest's reporting down.
  const refusals: [string, () => Buffer, RegExp][] = [
    [
      'a module it requires is missing',
      () => zip({ 'index.js': 'exports.main = () => require("not-there")()' }),
      /could not be bundled: Could not resolve "not-there"/,
    ],
    [
      'it imports a file outside the archive',
      () => zip({ 'index.js': 'const t = require("/etc/hostname"); exports.main = () => ({ t })' }),
      /could not be bundled: .*outside the zip action/,
    ],
    [
      'an entry name leaves the folder',
      () => zip({ 'index.js': 'exports.main = () => ({})', '../escape.js': 'x' }),
      /"\.\.\/escape\.js", whose name leaves the archive's folder/,
    ],
    ['it has no entry file', () => zip({ 'lib.js': 'exports.main = () => ({})' }), /no entry file index\.js/],
    [
      'an entry inflates past the limit (a zip bomb)',
      () => zip({ 'index.js': 'exports.main = () => ({})', 'bomb.bin': Buffer.alloc(65 * 1024 * 1024) }),
      /within the 67108864-byte limit|unpacks to more than 67108864 bytes/,
    ],
    [
      'an entry inflates to more than it declares',
      () => zip({ 'index.js': 'exports.main = () => ({})', 'big.bin': Buffer.alloc(4096) }, { 'big.bin': 16 }),
      /does not inflate to its declared 16 bytes/,
    ],
  ];
  test.each(refusals.map(([what], i) => [what, i] as const))('refused at create with a 400 when %s', async (_, i) => {
    const [, archive, message] = refusals[i];
    const refused = await failure(alpha.actions.create({ name: 'badzip', action: archive() }));
    expect(refused.statusCode, String(refused.error?.error ?? refused.message)).toBe(400);
    expect(refused.error.error).toMatch(message);
    expect((await failure(alpha.actions.get({ name: 'badzip' }))).statusCode).toBe(404);
  });
});

describe('invoker entities: refused and unsupported', () => {
  test('feeds, routes, the whisk.system namespace and other runtimes answer an OpenWhisk-shaped 501 naming the feature', async () => {
    const cases = [
      await failure(alpha.triggers.create({ name: 'alarm', trigger: { annotations: [{ key: 'feed', value: '/whisk.system/alarms/alarm' }] } })),
      await failure(alpha.feeds.create({ name: '/whisk.system/alarms/alarm', trigger: 'events', params: { cron: '* * * * *' } })),
      await failure(alpha.routes.list()),
      await failure(alpha.actions.create({ name: 'py', action: 'def main(a): return a', kind: 'python:3' })),
    ];
    expect(cases.map((c) => c.statusCode)).toEqual([501, 501, 501, 501]);
    for (const c of cases) expect(c.error).toEqual({ error: expect.stringMatching(/^Not supported by this invoker: /), code: expect.any(String) });
    expect(cases.map((c) => c.error.error)).toEqual([
      expect.stringMatching(/feeds/),
      expect.stringMatching(/whisk\.system/),
      expect.stringMatching(/API gateway routes/),
      expect.stringMatching(/python:3/),
    ]);
  });
});
