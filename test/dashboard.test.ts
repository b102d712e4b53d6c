/**
 * The dashboard in a real browser: Debian's headless Chromium driven by
 * playwright-core (no downloaded browser). The page loads from the frontend's
 * admin port, shows the running nodes, and updates live over WebSocket when a
 * node joins (a native started by hand, as one on another machine would) and
 * when one is killed; its plots draw the ticker's load, and its p50 is the
 * admin API's (what `ebbrt top` shows) for the same sample. A screenshot is
 * kept in test-artifacts/dashboard.png.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { ClusterState, ClusterView, TopView } from '@ebbrt/hosted';
import { downCluster } from '@ebbrt/hosted';
import { FIXTURES, NATIVE_BOOT, ROOT, runCli, spawnNode } from './kit/index.js';
import { skipFor, skipNote } from './kit/requirements.js';

const CHROMIUM = '/usr/bin/chromium';
const chromiumMissing = existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (infra/setup.sh installs chromium)`;
const skipChromium = skipFor('the dashboard in Chromium', chromiumMissing);
const SCREENSHOT = path.join(ROOT, 'test-artifacts', 'dashboard.png');

describe('dashboard', () => {
  test.skipIf(skipChromium)(`loads, shows the nodes, updates on a join and a kill${skipNote(chromiumMissing)}`, async () => {
    const { chromium } = await import('playwright-core');
    const work = mkdtempSync(path.join(tmpdir(), 'ebbrt-dashboard-'));
    const dir = path.join(work, 'state');
    const file = path.join(work, 'dash.yaml');
    const secret = 'dashboard-secret-123';
    writeFileSync(
      file,
      `name: dash\nsecret: ${secret}\ndetach: true\ngroups:\n  - name: tick\n    app: ${path.join(FIXTURES, 'ops-ticker')}\n    count: 1\n    cores: 2\n`,
    );
    onTestFinished(async () => {
      const stateFile = path.join(dir, 'dash.json');
      if (existsSync(stateFile))
        await downCluster(JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState, dir, { timeoutMs: 5000 }).catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    });

    const up = await runCli(['up', file, '--state-dir', dir], { timeoutMs: 45_000 });
    expect(up.code, up.stderr).toBe(0);
    const state = JSON.parse(readFileSync(path.join(dir, 'dash.json'), 'utf8')) as ClusterState;

    const browser = await chromium.launchPersistentContext(path.join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
    onTestFinished(() => browser.close());
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://${state.admin}/`);
    await page.waitForSelector('#conn[data-state="open"]', { timeout: 10_000 });
    expect(await page.textContent('#cluster')).toBe('dash');

    // The running nodes: the frontend and the group's native, both joined.
    await page.waitForSelector('.node[data-node-id="1"][data-state="joined"]', { timeout: 10_000 });
    await page.waitForSelector('.node[data-node-id="2"][data-state="joined"][data-group="tick"]', { timeout: 10_000 });
    expect(await page.textContent('.node[data-node-id="2"]')).toMatch(/tick · process · 127\.0\.0\.1:\d+/);
    // Live rates arrive with the metrics samples: the Ebbs the native calls, and its two cores.
    await page.waitForSelector('#ebbs tr:has-text("OpsTally")', { timeout: 10_000 });
    await page.waitForSelector('.node[data-node-id="2"] .core[data-core="1"]', { timeout: 10_000 });

    // The plots: each drew series with non-zero points from the ticker's load, and the lines are on the canvas.
    const charts = ['ebb-calls', 'ebb-latency', 'node-calls', 'node-latency', 'core-calls', 'node-rss'];
    await page.waitForFunction(
      (names) => names.every((name) => Number((document.querySelector(`canvas[data-chart="${name}"]`) as HTMLCanvasElement | null)?.dataset.nonzero ?? 0) >= 2),
      charts,
      { timeout: 15_000 },
    );
    const painted = await page.evaluate((names) => {
      const out: Record<string, number> = {};
      for (const name of names) {
        const canvas = document.querySelector(`canvas[data-chart="${name}"]`) as HTMLCanvasElement;
        const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        // Grid lines are #2a3540; series colours are brighter: count pixels with a bright channel.
        let bright = 0;
        for (let i = 0; i < pixels.length; i += 4) if (pixels[i + 3] > 0 && Math.max(pixels[i], pixels[i + 1], pixels[i + 2]) > 0x70) bright++;
        out[name] = bright;
      }
      return out;
    }, charts);
    for (const name of charts) expect(painted[name], name).toBeGreaterThan(20);
    expect(await page.textContent('.plot:has(canvas[data-chart="core-calls"]) .legend')).toMatch(/2:0.*2:1/);

    // `top` and the dashboard agree on p50: the table's p50 for a sample is the admin API's for the same sample.
    let agreed = false;
    for (let i = 0; i < 20 && !agreed; i++) {
      const shown = await page.evaluate(() => {
        const row = [...document.querySelectorAll('#ebbs tbody tr')].find((tr) => tr.firstElementChild?.textContent === 'OpsTally') as HTMLElement | undefined;
        return { at: Number((document.getElementById('ebbs') as HTMLElement).dataset.at), p50: row?.dataset.p50Us ?? '' };
      });
      const top = (await (await fetch(`http://${state.admin}/api/top`)).json()) as TopView;
      if (top.at !== shown.at || shown.p50 === '') continue;
      const tally = top.ebbs.find((e) => e.name === 'OpsTally')!;
      expect(Number(shown.p50)).toBe(tally.p50Us);
      expect(tally.p50Us).toBeGreaterThan(0);
      agreed = true;
    }
    expect(agreed).toBe(true);

    // A node joins: a native started by hand with the cluster secret.
    const external = spawnNode(NATIVE_BOOT, [], {
      env: { EBBRT_FRONTEND: state.frontend, EBBRT_SECRET: secret, EBBRT_APP: path.join(FIXTURES, 'ops-ticker', 'native.js'), EBBRT_CORES: '1' },
    });
    await page.waitForSelector('.node[data-node-id="3"][data-state="joined"][data-group="external"]', { timeout: 15_000 });
    await page.waitForSelector('#events li[data-kind="join"][data-node-id="3"]', { timeout: 5000 });
    expect(await page.textContent('#joined')).toBe('3');

    // A node is killed: the group's native, with SIGKILL.
    const view = (await (await fetch(`http://${state.admin}/api/state`)).json()) as ClusterView;
    const victim = view.nodes.find((n) => n.id === 2)!;
    process.kill(victim.pid!, 'SIGKILL');
    await page.waitForSelector('.node[data-node-id="2"][data-state="failed"]', { timeout: 10_000 });
    await page.waitForSelector('#events li[data-kind="fail"][data-node-id="2"]', { timeout: 5000 });
    expect(await page.textContent('#joined')).toBe('2');
    expect(await page.textContent('.node[data-node-id="2"] .reason')).toMatch(/connection|heartbeat/);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG');
    expect(errors).toEqual([]);

    const down = await runCli(['down', '--state-dir', dir]);
    expect(down.code, down.stderr).toBe(0);
    // The page notices the frontend went away.
    await page.waitForSelector('#conn[data-state="closed"]', { timeout: 10_000 });
    expect((await external.result).code).not.toBeNull();
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });
});
