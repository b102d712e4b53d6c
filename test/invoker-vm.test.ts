/**
 * The invoker's tenant nodes as VM natives: under `ebbrt run invoker
 * --backend qemu --nodes 0 -- --isolate tenant` a namespace's first invoke
 * boots a VM of its own (TCG here, 7–16 s, after the image build the first
 * time) whose image ships isolated-vm's compiled addon beside the bundle, and
 * the action runs in its V8 isolate inside that VM. One case: every case
 * would boot a VM.
 */
import { existsSync, readFileSync } from 'node:fs';
import { expect, onTestFinished, test } from 'vitest';
import openwhisk from 'openwhisk';
import { GUEST_KEY } from '@ebbrt/examples/invoker/args.js';
import { launchInvoker } from '@ebbrt/examples/invoker/launch.js';
import { skipFor, skipNote, vmMissing } from './kit/requirements.js';

const MISSING = vmMissing();
const SKIP = skipFor('invoker VM tests', MISSING);

/** Command names of the processes `pid` started. */
function childCommands(pid: number): string[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((child) => readFileSync(`/proc/${child}/comm`, 'utf8').trim());
}

test.skipIf(SKIP)(
  `a tenant's invoke is served by a VM native that runs the action in its isolate${skipNote(MISSING)}`,
  async () => {
    const cluster = await launchInvoker({ nodes: 0, runArgs: ['--backend', 'qemu'], args: ['--isolate', 'tenant'], startTimeoutMs: 60_000 });
    onTestFinished(async () => {
      await cluster.stop(15_000);
    });
    const ow = openwhisk({ apihost: cluster.apihost, api_key: GUEST_KEY });
    await ow.actions.create({ name: 'in-vm', action: 'function main(p) { return { sum: p.a + p.b, host: typeof process + typeof require } }' });
    expect(childCommands(cluster.child.pid!)).toEqual([]);
    const activation = await ow.actions.invoke({ name: 'in-vm', blocking: true, params: { a: 1, b: 2 } });
    expect(activation.response).toMatchObject({ status: 'success', result: { sum: 3, host: 'undefinedundefined' } });
    // The namespace's node is the VM: the frontend started QEMU and no native process.
    expect(childCommands(cluster.child.pid!)).toEqual([expect.stringMatching(/^qemu-system/)]);
    const warm = await ow.actions.invoke({ name: 'in-vm', blocking: true, result: true, params: { a: 20, b: 22 } });
    expect(warm).toEqual({ sum: 42, host: 'undefinedundefined' });
  },
  300_000,
);
