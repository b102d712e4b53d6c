/**
 * `--isolate tenant` on a running invoker, driven by the openwhisk client:
 * each namespace gets a native node of its own on its first invoke, launched
 * under Node's permission model with no app arguments (no API keys) and none
 * of the frontend's environment; the permission flags are checked to refuse
 * what they claim to; a tenant node killed with activations in flight is
 * replaced, the in-flight activations end as whisk internal errors, and the
 * namespace's next invoke runs on the replacement. A node that joins with
 * the stolen cluster secret (and even a tenant node's allocation id) reads no
 * namespace's records and rewrites none. A trigger fired before its
 * namespace's node started starts it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import openwhisk from 'openwhisk';
import { encodeValue, spaceBase, HOSTED_ID_SPACE } from '@ebbrt/ebb-protocol/internal';
import { startInlineNative } from '@ebbrt/native';
import { DIRECTORY_ID } from '@ebbrt/examples/invoker/action.js';
import { launchInvoker, type LaunchedInvoker } from '@ebbrt/examples/invoker/launch.js';
import { tenantExecArgv } from '@ebbrt/examples/invoker/tenants.js';

const ONE_KEY = 'aaaaaaaa-0000-0000-0000-000000000001:tenantOneKey0123456789ab';
const TWO_KEY = 'bbbbbbbb-0000-0000-0000-000000000002:tenantTwoKey0123456789ab';
const THREE_KEY = 'cccccccc-0000-0000-0000-000000000003:tenantThreeKey0123456789';
const CANARY = 'frontend-only-value-0123456789';
/** The cluster secret, known to the test so that it can play the node that stole it. */
const SECRET = 'tenant-test-cluster-secret-0123456789';

let frontendPort: number;

let cluster: LaunchedInvoker;
let one: openwhisk.Client;
let two: openwhisk.Client;

/** A port free now, for the frontend's messenger. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  frontendPort = await freePort();
  cluster = await launchInvoker({
    nodes: 0,
    runArgs: ['--port', String(frontendPort)],
    args: ['--isolate', 'tenant', '--namespace', `one=${ONE_KEY}`, '--namespace', `two=${TWO_KEY}`, '--namespace', `three=${THREE_KEY}`],
    env: { INVOKER_TEST_CANARY: CANARY, EBBRT_SECRET: SECRET },
  });
  one = openwhisk({ apihost: cluster.apihost, api_key: ONE_KEY });
  two = openwhisk({ apihost: cluster.apihost, api_key: TWO_KEY });
});

afterAll(async () => {
  await cluster?.stop();
});

/** Processes of the cluster's process group whose environment names `namespace` as their tenant: pid → { cmdline, environ }. */
function tenantProcesses(namespace: string): { pid: number; cmdline: string; environ: string }[] {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp !== cluster.child.pid) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (!environ.split('\0').includes(`EBBRT_INVOKER_TENANT=${namespace}`)) continue;
      found.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' '), environ });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

function nodeOf(activation: { annotations?: { key: string; value: any }[] }): number {
  return activation.annotations!.find((a) => a.key === 'invoker')!.value.node;
}

test("a namespace's node starts on its first invoke, holds no key and none of the frontend's environment, runs under the permission model", async () => {
  expect(tenantProcesses('one')).toEqual([]);
  await one.actions.create({ name: 'who', action: 'function main(p) { return { p } }' });
  const first = await one.actions.invoke({ name: 'who', blocking: true, params: { n: 1 } });
  expect(first.response?.result).toEqual({ p: { n: 1 } });
  const [node] = tenantProcesses('one');
  expect(node).toBeDefined();
  expect(node.cmdline).toContain('--experimental-permission');
  expect(node.cmdline).not.toContain('--allow-child-process');
  expect(node.cmdline).not.toContain('--allow-fs-write');
  for (const secret of [ONE_KEY, TWO_KEY, 'tenantOneKey', 'tenantTwoKey', CANARY, SECRET]) {
    expect(node.cmdline).not.toContain(secret);
    expect(node.environ).not.toContain(secret);
  }
  expect(tenantProcesses('two')).toEqual([]);
  await two.actions.create({ name: 'who', action: 'function main(p) { return { two: true } }' });
  const other = await two.actions.invoke({ name: 'who', blocking: true });
  expect(other.response?.result).toEqual({ two: true });
  expect(nodeOf(other)).not.toBe(nodeOf(first));
  expect(tenantProcesses('two')).toHaveLength(1);
});

test('the permission flags a tenant node runs with refuse child processes, file writes and reads outside the installation', () => {
  const probe = `
    const results = {};
    try { require('node:child_process').spawnSync('true'); results.spawn = 'allowed' } catch (e) { results.spawn = e.code }
    try { require('node:fs').writeFileSync('/tmp/tenant-write-probe-' + process.pid, 'x'); results.write = 'allowed' } catch (e) { results.write = e.code }
    try { require('node:fs').readFileSync('/etc/hostname'); results.read = 'allowed' } catch (e) { results.read = e.code }
    try { require('isolated-vm'); results.addon = 'loaded' } catch (e) { results.addon = e.code || e.message }
    console.log(JSON.stringify(results));`;
  const run = spawnSync(process.execPath, [...tenantExecArgv(), '-e', probe], { encoding: 'utf8', cwd: process.cwd() });
  expect(JSON.parse(run.stdout.trim()), run.stderr).toEqual({
    spawn: 'ERR_ACCESS_DENIED',
    write: 'ERR_ACCESS_DENIED',
    read: 'ERR_ACCESS_DENIED',
    addon: 'loaded',
  });
});

test('a crashed tenant node: in-flight activations end as whisk internal errors, a replacement serves the next invoke', async () => {
  await one.actions.create({ name: 'slow', action: 'function main() { return new Promise((r) => setTimeout(() => r({ done: true }), 3000)) }' });
  await one.actions.invoke({ name: 'who', blocking: true });
  const [before] = tenantProcesses('one');
  const inFlight = Promise.allSettled([1, 2].map(() => one.actions.invoke({ name: 'slow', blocking: true })));
  await new Promise((resolve) => setTimeout(resolve, 500));
  process.kill(before.pid, 'SIGKILL');
  const settled = await inFlight;
  for (const outcome of settled) {
    expect(outcome.status).toBe('rejected');
    const record = (outcome as PromiseRejectedResult).reason.error;
    expect(record.response).toMatchObject({
      status: 'whisk internal error',
      success: false,
      result: { error: 'The action did not produce a valid response and exited unexpectedly.' },
    });
  }
  const after = await one.actions.invoke({ name: 'who', blocking: true, params: { n: 2 } });
  expect(after.response?.result).toEqual({ p: { n: 2 } });
  const [replacement] = tenantProcesses('one');
  expect(replacement.pid).not.toBe(before.pid);
  expect(replacement.cmdline).toContain('--experimental-permission');
});

test('a node joined with the stolen cluster secret reads no record of any namespace and rewrites none; the victim runs its own code', async () => {
  await one.actions.create({ name: 'target', action: 'function main() { return { original: true } }' });
  expect(await one.actions.invoke({ name: 'target', blocking: true, result: true })).toEqual({ original: true });
  // Keys and secrets never reach the frontend's output either.
  for (const secret of [ONE_KEY, TWO_KEY, SECRET]) expect(cluster.output()).not.toContain(secret);
  // Escaped code in a tenant node also knows that node's allocation id: joining with it gets no more.
  const [tenant] = tenantProcesses('one');
  const allocationId = /(?:^|\0)EBBRT_ALLOCATION_ID=([^\0]+)/.exec(tenant.environ)?.[1];
  expect(allocationId).toBeDefined();
  for (const stolen of [{}, { allocationId }]) await attack(await startInlineNative({ frontend: `127.0.0.1:${frontendPort}`, secret: SECRET, ...stolen }));
  expect(await one.actions.invoke({ name: 'target', blocking: true, result: true })).toEqual({ original: true });
  expect((await one.actions.get({ name: 'target' })).exec).toMatchObject({ code: expect.stringContaining('original') });
});

async function attack(attacker: Awaited<ReturnType<typeof startInlineNative>>): Promise<void> {
  try {
    // The directory and the first ids the frontend handed out: every action, package, trigger and rule so far.
    const ids = [DIRECTORY_ID, ...Array.from({ length: 64 }, (_, i) => spaceBase(HOSTED_ID_SPACE) + i)];
    const forged = encodeValue({
      type: 'InvokerAction',
      namespace: 'one',
      name: 'target',
      version: '9.9.9',
      exec: { kind: 'nodejs:20', code: 'function main() { return { pwned: true } }' },
      limits: { timeout: 1000, memory: 128, logs: 1, concurrency: 1 },
      parameters: [],
      annotations: [],
      publish: false,
      updated: Date.now(),
    });
    for (const id of ids) {
      await expect(attacker.runtime.idMap.get(id), `read of 0x${id.toString(16)}`).rejects.toThrow(/may not read GlobalIdMap id/);
      await expect(attacker.runtime.idMap.set(id, forged), `write of 0x${id.toString(16)}`).rejects.toThrow(/may not write GlobalIdMap id/);
    }
  } finally {
    await attacker.close();
  }
}

test("firing a trigger of a namespace whose node has not started yet starts it, and the rule's action runs there", async () => {
  const three = openwhisk({ apihost: cluster.apihost, api_key: THREE_KEY });
  expect(tenantProcesses('three')).toEqual([]);
  await three.actions.create({ name: 'react', action: 'function main(p) { return { got: p.event } }' });
  await three.triggers.create({ name: 'ping' });
  await three.rules.create({ name: 'onPing', trigger: 'ping', action: 'react' });
  const { activationId } = (await three.triggers.invoke({ name: 'ping', params: { event: 'first' } })) as { activationId: string };
  const [line] = (await three.activations.get({ activationId })).logs.map((l: string) => JSON.parse(l));
  expect(line).toMatchObject({ success: true, action: 'three/react' });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ran = await three.activations.get({ activationId: line.activationId }).catch(() => undefined);
    if (ran) {
      expect(ran.response?.result).toEqual({ got: 'first' });
      break;
    }
    if (Date.now() > deadline) throw new Error("the rule's activation was never recorded");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(tenantProcesses('three')).toHaveLength(1);
});
