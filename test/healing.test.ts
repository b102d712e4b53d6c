/**
 * Self-healing as an operator sees it, through the CLI: `ebbrt up` keeps each
 * node group at its size (a SIGKILLed native is replaced; a SIGSTOPped one is
 * reinstated or replaced, never left as an extra process), and natives do not
 * outlive a killed frontend.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ClusterView } from '@ebbrt/hosted';
import { alive, FIXTURES, runCli, until } from './kit/index.js';
import { clusterFile, clusterProcesses, psJson, state, stateDirectory } from './kit/cluster.js';

const TICKER = path.join(FIXTURES, 'ops-ticker');

const joinedTicks = (view: ClusterView) => view.nodes.filter((n) => n.group === 'tick' && n.state === 'joined');

/** Polls `ps --json` until `check` holds; returns that view and when, ms since `since`. */
async function psUntil(
  dir: string,
  check: (view: ClusterView) => boolean,
  ms: number,
  what: string,
  since = performance.now(),
): Promise<{ view: ClusterView; atMs: number }> {
  const deadline = since + ms;
  for (;;) {
    const view = await psJson(dir);
    if (check(view)) return { view, atMs: performance.now() - since };
    if (performance.now() > deadline) throw new Error(`${what} not seen within ${ms} ms; last ps: ${JSON.stringify(view.nodes)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function upTicker(name: string): Promise<{ dir: string; view: ClusterView }> {
  const dir = stateDirectory();
  const file = clusterFile(
    dir,
    name,
    `name: ${name}\nsecret: ${name}-secret-123\ndetach: true\ngroups:\n  - name: tick\n    app: ${TICKER}\n    count: 2\n    cores: 1\n`,
  );
  const up = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
  expect(up.code, up.stderr).toBe(0);
  const view = await psJson(dir);
  expect(joinedTicks(view)).toHaveLength(2);
  return { dir, view };
}

describe('ebbrt up keeps each group at its size', () => {
  test('a SIGKILLed native is replaced within 5 s (new id, same group), shown in ps, metrics and the log; a native stopped for 3 s is back to two joined within 10 s with no extra process', async () => {
    const { dir, view } = await upTicker('heal');
    const [victim, other] = joinedTicks(view);

    process.kill(victim.pid!, 'SIGKILL');
    const killed = await psUntil(
      dir,
      (v) => joinedTicks(v).length === 2 && !joinedTicks(v).some((n) => n.id === victim.id),
      5000,
      'two joined natives after the kill',
    );
    const replacement = joinedTicks(killed.view).find((n) => n.id !== other.id)!;
    expect(replacement.id).toBeGreaterThan(other.id);
    expect(replacement.replaces).toBe(victim.id);
    expect(killed.view.nodes.find((n) => n.id === victim.id)).toMatchObject({ state: 'failed', replacedBy: replacement.id });
    expect(killed.view.groups.find((g) => g.name === 'tick')).toMatchObject({ joined: 2, count: 2, replaced: 1 });
    const metrics = await (await fetch(`http://${killed.view.admin}/metrics`)).text();
    expect(metrics).toMatch(/^ebbrt_group_replacements_total\{group="tick",outcome="joined",cluster="heal"\} 1$/m);
    const ps = await runCli(['ps', '--state-dir', dir]);
    expect(ps.stdout).toMatch(/^tick +\S+ +process +2\/2 +1 +0 +0( +\S.*)?$/m);
    expect(ps.stdout).toMatch(new RegExp(`replaced by ${replacement.id}`));
    const log = readFileSync(path.join(dir, 'heal.log'), 'utf8');
    expect(log).toMatch(new RegExp(`"nodeId":${victim.id},.*"msg":"replacing node"`));
    expect(log).toMatch(new RegExp(`"nodeId":${victim.id},"replacement":${replacement.id},.*"msg":"node replaced"`));

    const stopped = joinedTicks(killed.view)[0];
    const t0 = performance.now();
    process.kill(stopped.pid!, 'SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    if (alive(stopped.pid!)) process.kill(stopped.pid!, 'SIGCONT');
    const frontend = view.frontend;
    await psUntil(
      dir,
      (v) => joinedTicks(v).length === 2 && clusterProcesses(frontend).length === 2,
      10_000,
      'two joined natives and two native processes after the stall',
      t0,
    );
    // Every native process the cluster runs is one ps lists as joined: the stalled one was reinstated or killed.
    const final = await psJson(dir);
    expect(clusterProcesses(frontend).sort()).toEqual(
      joinedTicks(final)
        .map((n) => n.pid)
        .sort(),
    );

    expect((await runCli(['down', '--state-dir', dir])).code).toBe(0);
    await until(() => clusterProcesses(frontend).length === 0, 5000, 'no native after down');
  });

  test('the frontend SIGKILLed: no native process is left after 10 s, and none prints for long', async () => {
    const { dir, view } = await upTicker('orphan');
    process.kill(state(dir).frontendProcess.pid, 'SIGKILL');
    const t0 = performance.now();
    await until(() => clusterProcesses(view.frontend).length === 0, 10_000, 'natives gone after the frontend died');
    // Within the default reconnect window (3 s) plus shutdown, not the 60 s natives started by hand allow.
    expect(performance.now() - t0).toBeLessThan(6000);
    await runCli(['down', '--state-dir', dir]);
  });
});
