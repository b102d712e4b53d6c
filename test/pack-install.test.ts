/**
 * The packages as a user gets them: `npm pack` of @ebbrt/ebb-protocol,
 * @ebbrt/native and @ebbrt/hosted, installed from the tarballs into an empty
 * project outside the workspace (dependencies from the npm cache or
 * registry), then the tutorial's service — the code blocks of docs/guide.md,
 * written out verbatim — runs there: offloaded to 2 natives × 2 cores with
 * startCluster + balanced, and inline, answering the same digests; and
 * `npx ebbrt --version` works.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { ROOT, spawnNode, until } from './kit/index.js';

const PACKAGES = ['@ebbrt/ebb-protocol', '@ebbrt/native', '@ebbrt/hosted'];

/** The guide's files: fenced blocks with `title="name"`. */
function guideFiles(): Map<string, string> {
  const guide = readFileSync(path.join(ROOT, 'docs/guide.md'), 'utf8');
  const files = new Map<string, string>();
  for (const match of guide.matchAll(/```\w+ title="([^"]+)"\n([\s\S]*?)```/g)) files.set(match[1], match[2]);
  return files;
}

/** Starts the guide's server.js in `dir`; resolves with its URL once it listens. */
async function serve(dir: string, env: Record<string, string>): Promise<string> {
  const server = spawnNode(path.join(dir, 'server.js'), [], { cwd: dir, env: { PORT: '0', ...env }, timeoutMs: 90_000 });
  await until(() => /listening on (http:\S+)/.test(server.stdout()) || server.child.exitCode !== null, 45_000, 'the guide service to listen');
  const url = /listening on (http:\S+)/.exec(server.stdout())?.[1];
  if (!url) throw new Error(`server.js did not start:\n${server.stdout()}${server.stderr()}`);
  return url;
}

describe('packed packages', () => {
  test('install into an empty project outside the workspace; the guide service runs offloaded and inline; npx ebbrt --version', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'ebbrt-pack-'));
    onTestFinished(() => rmSync(work, { recursive: true, force: true }));
    const packs = path.join(work, 'packs');
    const project = path.join(work, 'hash-service');
    execFileSync('mkdir', ['-p', packs, project]);
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', packs, ...PACKAGES.flatMap((p) => ['-w', p])], { cwd: ROOT, encoding: 'utf8' }),
    ) as { name: string; filename: string; files: { path: string }[] }[];
    for (const pkg of packed) {
      const files = pkg.files.map((f) => f.path);
      expect(files, pkg.name).toContain('dist/index.js');
      expect(
        files.some((f) => f.startsWith('test/')),
        `${pkg.name} ships its tests`,
      ).toBe(false);
    }

    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'hash-service', private: true, type: 'module' }));
    const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => path.join(packs, p.filename))], {
      cwd: project,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(install.status, install.stderr).toBe(0);
    const version = spawnSync('npx', ['--no-install', 'ebbrt', '--version'], { cwd: project, encoding: 'utf8' });
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^@ebbrt\/hosted 0\.1\.0 \(node /);

    const files = guideFiles();
    expect([...files.keys()].sort()).toEqual(['hasher.js', 'native.js', 'server.js']);
    for (const [name, text] of files) writeFileSync(path.join(project, name), text);

    const offloaded = await serve(project, { NODES: '2', CORES: '2' });
    const inline = await serve(project, { MODE: 'inline' });
    for (const password of ['hunter2', 'correct horse battery staple']) {
      const query = `?password=${encodeURIComponent(password)}`;
      const [a, b] = await Promise.all([fetch(offloaded + query), fetch(inline + query)]);
      expect(a.status).toBe(200);
      const digest = await a.text();
      expect(digest).toMatch(/^[0-9a-f]{64}\n$/);
      expect(await b.text()).toBe(digest);
    }
    // Eight at once: the balanced ref spreads them over the four native cores.
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${offloaded}?password=p${i}`).then((r) => r.status)));
    expect(burst).toEqual(Array(8).fill(200));
  }, 180_000);
});
