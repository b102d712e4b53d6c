/**
 * The invoker as a cluster: `--isolate namespace` (every namespace's actions
 * run on native nodes of its own, checked from the activations' `invoker`
 * annotation); a native killed mid-invocation (its activations settle as
 * whisk internal errors and the others go on); the cap on compiled actions
 * per core; the invoker's argument errors.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import openwhisk from 'openwhisk';
import { GUEST_KEY } from '@ebbrt/examples/invoker/args.js';
import { launchInvoker } from '@ebbrt/examples/invoker/launch.js';
import { lines, runCli } from './kit/index.js';

const KEYS = {
  red: 'aaaaaaaa-0000-0000-0000-000000000001:redKey0123456789abcdef',
  blue: 'bbbbbbbb-0000-0000-0000-000000000002:blueKey0123456789abcdef',
};

describe('invoker --isolate namespace', () => {
  test('each namespace runs only on its own native node(s)', async () => {
    const cluster = await launchInvoker({
      nodes: 3,
      cores: 1,
      args: ['--isolate', 'namespace', '--namespace', `red=${KEYS.red}`, '--namespace', `blue=${KEYS.blue}`],
    });
    try {
      // Three nodes for two namespaces: one gets two nodes, the other one; none is shared.
      const red = cluster.placement.get('red')!;
      const blue = cluster.placement.get('blue')!;
      expect([...red, ...blue].sort()).toEqual([2, 3, 4]);
      expect(red.filter((n) => blue.includes(n))).toEqual([]);
      for (const [namespace, nodes] of [
        ['red', red],
        ['blue', blue],
      ] as const) {
        const ow = openwhisk({ apihost: cluster.apihost, api_key: KEYS[namespace] });
        await ow.actions.create({ name: 'where', action: `function main(p) { return { ns: ${JSON.stringify(namespace)}, i: p.i } }` });
        const records = await Promise.all(Array.from({ length: 24 }, (_, i) => ow.actions.invoke({ name: 'where', blocking: true, params: { i } })));
        records.forEach((r, i) => expect(r.response?.result).toEqual({ ns: namespace, i }));
        const used = new Set(records.map((r) => (r.annotations!.find((a) => a.key === 'invoker')!.value as { node: number }).node));
        expect([...used].sort()).toEqual([...nodes].sort());
      }
    } finally {
      expect(await cluster.stop(), cluster.output()).toBe(130);
    }
  });
});

/** Pids of the processes `pid` started (the natives of an `ebbrt run`). */
function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

describe('invoker: a native dies', () => {
  test.skipIf(process.platform !== 'linux')(
    'its activations in flight fail as whisk internal errors; later ones run on the survivor, then also on its replacement',
    async () => {
      const cluster = await launchInvoker({ nodes: 2, cores: 1 });
      try {
        const ow = openwhisk({ apihost: cluster.apihost, api_key: GUEST_KEY });
        await ow.actions.create({ name: 'slow', action: 'function main(p) { return new Promise((r) => setTimeout(() => r({ i: p.i }), 1500)) }' });
        const inFlight = Array.from({ length: 4 }, (_, i) =>
          ow.actions.invoke({ name: 'slow', blocking: true, params: { i } }).then(
            (a) => a,
            (e) => e.error,
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
        const natives = children(cluster.child.pid!);
        expect(natives).toHaveLength(2);
        process.kill(natives[0], 'SIGKILL');
        const settled = await Promise.all(inFlight);
        const failed = settled.filter((a) => a.response.status === 'whisk internal error');
        const survived = settled.filter((a) => a.response.status === 'success');
        // The balancer spread the four over both nodes: two died with their node, two finished.
        expect(failed).toHaveLength(2);
        expect(survived).toHaveLength(2);
        expect(failed[0].response.result).toEqual({ error: 'The action did not produce a valid response and exited unexpectedly.' });
        const after = await Promise.all(Array.from({ length: 4 }, (_, i) => ow.actions.invoke({ name: 'slow', blocking: true, result: true, params: { i } })));
        expect(after).toEqual([0, 1, 2, 3].map((i) => ({ i })));
        // The run's node group replaces the lost native; the invoker places invocations on the replacement too.
        const deadline = Date.now() + 30_000;
        let replaced: RegExpExecArray | null;
        while (!(replaced = /ebbrt: node (\d+) replaced node (\d+)/.exec(cluster.output())) && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 100));
        expect(replaced, cluster.output()).not.toBeNull();
        await ow.actions.create({ name: 'where', action: 'function main(p) { return { i: p.i } }' });
        const spread = await Promise.all(Array.from({ length: 16 }, (_, i) => ow.actions.invoke({ name: 'where', blocking: true, params: { i } })));
        spread.forEach((a, i) => expect(a.response?.result).toEqual({ i }));
        const used = new Set(spread.map((a) => (a.annotations!.find((k) => k.key === 'invoker')!.value as { node: number }).node));
        expect(used).toContain(Number(replaced![1]));
        expect(used.size).toBe(2);
      } finally {
        await cluster.stop();
      }
    },
  );
});

describe('invoker: a native of an --isolate namespace cluster dies', () => {
  test.skipIf(process.platform !== 'linux')('its replacement takes over its namespace, and only that one', async () => {
    const cluster = await launchInvoker({
      nodes: 2,
      cores: 1,
      args: ['--isolate', 'namespace', '--namespace', `red=${KEYS.red}`, '--namespace', `blue=${KEYS.blue}`],
    });
    try {
      const clients = { red: openwhisk({ apihost: cluster.apihost, api_key: KEYS.red }), blue: openwhisk({ apihost: cluster.apihost, api_key: KEYS.blue }) };
      const nodeOf = async (namespace: 'red' | 'blue') => {
        const record = await clients[namespace].actions.invoke({ name: 'where', blocking: true });
        expect(record.response?.result).toEqual({ ns: namespace });
        return (record.annotations!.find((a) => a.key === 'invoker')!.value as { node: number }).node;
      };
      for (const namespace of ['red', 'blue'] as const)
        await clients[namespace].actions.create({ name: 'where', action: `function main() { return { ns: ${JSON.stringify(namespace)} } }` });
      expect([await nodeOf('red'), await nodeOf('blue')]).toEqual([cluster.placement.get('red')![0], cluster.placement.get('blue')![0]]);
      process.kill(children(cluster.child.pid!)[0], 'SIGKILL');
      const deadline = Date.now() + 30_000;
      let replaced: RegExpExecArray | null;
      while (!(replaced = /ebbrt: node (\d+) replaced node (\d+)/.exec(cluster.output())) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
      expect(replaced, cluster.output()).not.toBeNull();
      const [, replacement, lost] = replaced!.map(Number);
      const moved = cluster.placement.get('red')![0] === lost ? 'red' : 'blue';
      const kept = moved === 'red' ? 'blue' : 'red';
      // The move rewrites the namespace's records after the replacement joined: poll until it runs there.
      let node = 0;
      for (let i = 0; i < 50 && node !== replacement; i++) node = await nodeOf(moved).catch(() => 0);
      expect(node).toBe(replacement);
      expect(await nodeOf(kept)).toBe(cluster.placement.get(kept)![0]);
    } finally {
      await cluster.stop();
    }
  });
});

describe('invoker: compiled actions per core', () => {
  test('past EBBRT_INVOKER_WARM_ACTIONS the least recently invoked action leaves the core and compiles again', async () => {
    const cluster = await launchInvoker({ nodes: 1, cores: 1, env: { EBBRT_INVOKER_WARM_ACTIONS: '2' } });
    try {
      const ow = openwhisk({ apihost: cluster.apihost, api_key: GUEST_KEY });
      for (const name of ['a', 'b', 'c']) await ow.actions.create({ name, action: `function main() { return { name: ${JSON.stringify(name)} } }` });
      const cold = async (name: string) => {
        const record = await ow.actions.invoke({ name, blocking: true });
        expect(record.response?.result).toEqual({ name });
        return record.annotations?.some((a) => a.key === 'initTime');
      };
      // a, b compiled; c compiles and reclaims a (least recently invoked); b is still warm.
      expect([await cold('a'), await cold('b'), await cold('b'), await cold('c')]).toEqual([true, true, false, true]);
      expect(await cold('b')).toBe(false);
      // a compiles again and reclaims c (b was invoked since).
      expect(await cold('a')).toBe(true);
      expect([await cold('b'), await cold('c')]).toEqual([false, true]);
    } finally {
      await cluster.stop();
    }
  });
});

describe('invoker: bad arguments exit 2 with the reason', () => {
  test.each([
    [['--nodes', '1', '--', '--isolate', 'bogus'], /--isolate must be one of namespace, tenant, none, got "bogus"/],
    [['--nodes', '1', '--', '--isolate', 'tenant'], /--isolate tenant starts every namespace's natives itself: start the invoker with --nodes 0/],
    [['--nodes', '1', '--', '--namespace', 'nokey'], /--namespace must be NAME=UUID:KEY/],
    [['--nodes', '1', '--', '--port', '70000'], /--port must be an integer in 0\.\.65535/],
    [['--nodes', '1', '--', '--bogus'], /unknown option --bogus/],
    [
      ['--nodes', '1', '--', '--isolate', 'namespace', '--namespace', `red=${KEYS.red}`, '--namespace', `blue=${KEYS.blue}`],
      /at least one native node per namespace/,
    ],
    [['--nodes', '0'], /--nodes 1 or more/],
  ])('ebbrt run invoker %j', async (args, message) => {
    const r = await runCli(['run', 'invoker', '--cores', '1', ...args], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(lines(r.stdout)).toEqual([]);
  });
});
