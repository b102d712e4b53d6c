/**
 * The examples end to end: `ebbrt run <app>` as a child process, natives as
 * real child processes over loopback TCP; exact output and exit status.
 */
import { describe, expect, test } from 'vitest';
import { CLI, FIXTURES, lines, runCli, spawnNode, until } from './kit/index.js';

const ADDRESS = String.raw`127\.0\.0\.1:\d+`;

describe('ebbrt run <example>', () => {
  test('helloworld --nodes 2 --cores 2: one greeting per native, exit 0', async () => {
    const r = await runCli(['run', 'helloworld', '--nodes', '2', '--cores', '2']);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(2);
    for (const line of out) expect(line).toMatch(new RegExp(`^${ADDRESS}: Hello World$`));
    expect(new Set(out).size).toBe(2);
  });

  test('helloworld --nodes 3 --cores 2: exactly three greetings', async () => {
    const r = await runCli(['run', 'helloworld', '--nodes', '3', '--cores', '2']);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(3);
    for (const line of out) expect(line).toMatch(new RegExp(`^${ADDRESS}: Hello World$`));
    expect(new Set(out).size).toBe(3);
  });

  const pingLine = (count: number) =>
    new RegExp(
      `^node (\\d+) \\((${ADDRESS})\\): ${count} round trips, p50 (\\d+) µs, p99 (\\d+) µs; first (\\d+) µs \\(remote fault on core [01] via the GlobalIdMap\\)$`,
    );

  test('pingpong --nodes 2 --cores 2: one latency line per native, reps faulted in from the GlobalIdMap', async () => {
    const r = await runCli(['run', 'pingpong', '--nodes', '2', '--cores', '2']);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(2);
    const nodes = out.map((line) => {
      const m = pingLine(1000).exec(line);
      expect(m, line).not.toBeNull();
      expect(Number(m![3])).toBeLessThanOrEqual(Number(m![4]));
      return Number(m![1]);
    });
    expect(nodes).toEqual([2, 3]);
    // Every message reached a native rep (a failed delivery is logged by the native core).
    expect(r.stderr).not.toMatch(/message to Ebb .* failed/);
  });

  test('pingpong -- --mode call --count 200: calls instead of messages', async () => {
    const r = await runCli(['run', 'pingpong', '--nodes', '2', '--cores', '2', '--', '--mode', 'call', '--count', '200']);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(2);
    for (const line of out) expect(line).toMatch(pingLine(200));
  });

  test('counter --nodes 2 --cores 2: the exact grand total', async () => {
    const r = await runCli(['run', 'counter', '--nodes', '2', '--cores', '2']);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(new RegExp(`^node 2 \\(${ADDRESS}\\): 20000 = 2 cores × 10000$`));
    expect(out[1]).toMatch(new RegExp(`^node 3 \\(${ADDRESS}\\): 20000 = 2 cores × 10000$`));
    expect(out[2]).toBe('total 40000 = 2 nodes × 2 cores × 10000');
  });

  test('counter --nodes 3 --cores 3 -- --increments 100000', async () => {
    const r = await runCli(['run', 'counter', '--nodes', '3', '--cores', '3', '--', '--increments', '100000']);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout).at(-1)).toBe('total 900000 = 3 nodes × 3 cores × 100000');
  });

  test('an app folder given by path (test fixture)', async () => {
    const r = await runCli(['run', `${FIXTURES}/sleeper`, '--nodes', '2', '--cores', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual(['node 2 slept on core 0', 'node 3 slept on core 0']);
  });
});

describe('ebbrt run: interrupted while the natives start', () => {
  test('a quiet tear-down: no core crash traces, exit 130, no native left', async () => {
    for (const delayMs of [0, 150, 400]) {
      const run = spawnNode(CLI, ['run', 'helloworld', '--nodes', '2', '--cores', '2'], { timeoutMs: 20_000 });
      await until(() => /starting 2 native node/.test(run.stderr()), 10_000);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      run.child.kill('SIGINT');
      // 'close' waits for every process holding the CLI's pipes: the natives too.
      const result = await run.result;
      expect(result.timedOut).toBe(false);
      expect(result.stderr).not.toMatch(/crashed|SyntaxError|EBADF|\n\s+at /);
      if (!/Hello World/.test(result.stdout)) expect(result.code, result.stderr).toBe(130);
    }
  });
});

describe('ebbrt run: bad input exits 2 with a message naming the problem', () => {
  test.each([
    [['run', 'helloworld', '--nodes', 'x'], /--nodes/],
    [['run', 'helloworld', '--cores', '0'], /--cores/],
    [['run', 'helloworld', '--bogus'], /--bogus/],
    [['run', 'no-such-app', '--nodes', '1'], /no-such-app/],
    [['frobnicate'], /frobnicate/],
  ])('ebbrt %j', async (args, message) => {
    const r = await runCli(args, { timeoutMs: 10_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  test.each([
    ['pingpong', ['--count', 'x'], /--count/],
    ['pingpong', ['--mode', 'carrier-pigeon'], /--mode/],
    ['counter', ['--increments'], /--increments/],
    ['counter', ['--bogus'], /--bogus/],
  ])('%s -- %j', async (app, appArgs, message) => {
    const r = await runCli(['run', app, '--nodes', '1', '--cores', '1', '--', ...appArgs], { timeoutMs: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    // Refused before anything booted: no frontend, no native.
    expect(r.stderr).not.toMatch(/frontend listening|joined/);
    expect(r.stdout).toBe('');
  });

  test.each([
    [['run', 'helloworld', '--nodes', '0'], /^ebbrt run: helloworld needs native nodes: give --nodes 1 or more/m],
    [['run', 'offload', '--nodes', '2', '--', '--mode', 'inline'], /^ebbrt run: offload runs on the frontend alone with these arguments: drop --nodes 2/m],
  ])('ebbrt %j: --nodes that does not fit the app', async (args, message) => {
    const r = await runCli(args, { timeoutMs: 15_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/frontend listening/);
  });

  test('a busy port of the app is reported before anything boots', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as { port: number }).port;
      const r = await runCli(['run', 'offload', '--nodes', '1', '--', '--port', String(port)], { timeoutMs: 15_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^ebbrt run: offload: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use; pick another with --port`, 'm'));
      expect(r.stderr).not.toMatch(/frontend listening|joined/);
    } finally {
      busy.close();
    }
  });

  test('--help prints the usage and exits 0', async () => {
    const r = await runCli(['--help'], { timeoutMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: ebbrt /);
    expect(r.stdout).toMatch(/\brun\b/);
  });

  test('run --help prints the run options and exits 0', async () => {
    const r = await runCli(['run', '--help'], { timeoutMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: ebbrt run <app>/);
    expect(r.stdout).toMatch(/--nodes N/);
    expect(r.stdout).toMatch(/--cores C/);
  });
});
