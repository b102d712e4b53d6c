/**
 * VM natives whose apps are reachable: the memcached example on one 2-core
 * VM native in each network mode, and a real memcached client
 * (`memccapable`) against the address the app printed. One boot per mode
 * (TCG boots take 7-16 s, more on a loaded machine).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { CLI, lines, spawnNode, until } from './kit/index.js';
import { skipFor } from './kit/requirements.js';

function skipReason(mode: 'user' | 'tap'): string | undefined {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 is not installed (infra/setup.sh installs qemu-system-x86)';
  }
  if (!readdirSync('/boot').some((name) => name.startsWith('vmlinuz-'))) return 'no kernel in /boot (infra/setup.sh installs linux-image-cloud-amd64)';
  if (spawnSync('memccapable', ['--help']).error) return 'memccapable is not installed (infra/setup.sh installs libmemcached-tools)';
  if (mode === 'tap' && process.getuid?.() !== 0) return 'network mode tap needs root';
  if (mode === 'tap' && !existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

for (const mode of ['user', 'tap'] as const) {
  const skip = skipFor(`qemu ${mode}-mode tests`, skipReason(mode));
  describe.skipIf(skip)(`VM native, network mode ${mode}`, () => {
    test(`ebbrt run memcached --backend qemu --network ${mode} --nodes 1 --cores 2: the printed address passes memccapable`, async () => {
      const port = await freePort();
      const netnsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
      const spawned = spawnNode(CLI, ['run', 'memcached', '--backend', 'qemu', '--network', mode, '--nodes', '1', '--cores', '2', '--', '--port', String(port), '--memory', '64'], { timeoutMs: 240_000 });
      onTestFinished(() => {
        if (spawned.child.exitCode === null && spawned.child.signalCode === null) process.kill(-spawned.child.pid!, 'SIGKILL');
      });
      await until(() => /^memcached listening on /m.test(spawned.stdout()) || spawned.child.exitCode !== null, 150_000, 'memcached on a VM native to listen');
      const line = lines(spawned.stdout()).find((l) => l.startsWith('memcached listening on '));
      expect(line, spawned.stderr()).toBeDefined();
      const address = line!.slice('memcached listening on '.length).split(' ')[0];
      const [host, printedPort] = address.split(':');
      if (mode === 'user') {
        // Forwarded from the host to the port asked for (it was free).
        expect(address).toBe(`127.0.0.1:${port}`);
      } else {
        // The VM's own address on the bridge, the port unforwarded.
        expect(host).toMatch(/^10\.\d+\.\d+\.\d+$/);
        expect(printedPort).toBe(String(port));
        expect(spawned.stderr()).toMatch(new RegExp(`node 2 joined from ${host.replace(/\./g, '\\.')}:7000`));
      }
      const capable = spawnSync('memccapable', ['-h', host, '-p', printedPort, '-t', '20'], { encoding: 'utf8', timeout: 120_000 });
      expect(capable.stdout + capable.stderr).toMatch(/All tests passed/);
      expect(capable.stdout).not.toMatch(/\[fail\]/);
      spawned.child.kill('SIGINT');
      const result = await spawned.result;
      expect(result.code, result.stderr).toBe(130);
      if (mode === 'tap') {
        // The bridge's namespace the backend made is gone with its last VM.
        expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`ebbrt-${spawned.child.pid}-`))).toEqual([]);
        expect(netnsBefore).toBeDefined();
      }
    }, 300_000);
  });
}
