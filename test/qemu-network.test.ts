/**
 * VM natives whose apps are reachable: the memcached example on one 2-core
 * VM native in each network mode, and a real memcached client
 * (`memccapable`) against the address the app printed; then one ring of a
 * process native and a VM native, keys forwarded between them. One boot per
 * case (TCG boots take 7-16 s, more on a loaded machine).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { resolveApp, vmFrontendOptions } from '@ebbrt/hosted';
import { RawClient } from '@ebbrt/examples/memcached/client.js';
import { CLI, lines, spawnNode, startFrontend, until } from './kit/index.js';
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
      const spawned = spawnNode(
        CLI,
        ['run', 'memcached', '--backend', 'qemu', '--network', mode, '--nodes', '1', '--cores', '2', '--', '--port', String(port), '--memory', '64'],
        { timeoutMs: 240_000 },
      );
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
        expect(
          execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
            .split('\n')
            .filter((l) => l.startsWith(`ebbrt-${spawned.child.pid}-`)),
        ).toEqual([]);
        expect(netnsBefore).toBeDefined();
      }
    }, 300_000);
  });
}

const MIXED_SKIP = skipFor('qemu mixed-ring test', skipReason('user'));
describe.skipIf(MIXED_SKIP)('a mixed memcached ring: a process native and a VM native', () => {
  test('keys set through either node are read through the other (forwarded over the messenger between host and VM); both tell a client where each key lives', async () => {
    const fe = await startFrontend(vmFrontendOptions());
    const nativeEntry = resolveApp('memcached').native;
    const args = ['--port', '0', '--memory', '16'];
    const [proc] = await fe.allocate(1, nativeEntry, { backend: 'process', cores: 1, args, waitForApp: true });
    const [vm] = await fe.allocate(1, nativeEntry, { backend: 'qemu', network: 'user', cores: 2, args, waitForApp: true, joinTimeoutMs: 150_000 });
    const { main } = (await import('@ebbrt/examples/memcached/hosted.js')) as { main: (app: unknown) => Promise<number> };
    const abort = new AbortController();
    let printed = '';
    const running = main({
      runtime: fe.hosted.runtime,
      node: fe.hosted,
      allocator: fe.allocator,
      natives: [proc, vm],
      nativeEntry,
      args,
      print: (line: string) => (printed = line),
      signal: abort.signal,
    });
    onTestFinished(async () => {
      abort.abort();
      await running;
    });
    await until(() => printed !== '', 120_000, 'memcached to listen on both nodes');
    const [first, second] = /^memcached listening on (\S+) (\S+) /.exec(printed)!.slice(1);
    // Node order is node id order: the process native joined first.
    const addressOf = new Map([
      [proc.nodeId, first],
      [vm.nodeId, second],
    ]);
    expect(second).toMatch(/^127\.0\.0\.1:\d+$/);
    const ask = async (address: string, command: string) => {
      const c = await RawClient.connect(address);
      try {
        return (await c.exchange(command, { protocol: 'text' })).reply.toString('latin1');
      } finally {
        c.close();
      }
    };
    const keys = Array.from({ length: 200 }, (_, i) => `mixed:${i}`);
    expect(
      await ask(
        first,
        keys
          .slice(0, 100)
          .map((k, i) => `set ${k} ${i} 0 ${k.length}\r\n${k}\r\n`)
          .join(''),
      ),
    ).toBe('STORED\r\n'.repeat(100));
    expect(
      await ask(
        second,
        keys
          .slice(100)
          .map((k, i) => `set ${k} ${100 + i} 0 ${k.length}\r\n${k}\r\n`)
          .join(''),
      ),
    ).toBe('STORED\r\n'.repeat(100));
    // Every key through the node that did not store it, in one multi-get per node.
    const all = `${keys.map((k, i) => `VALUE ${k} ${i} ${k.length}\r\n${k}\r\n`).join('')}END\r\n`;
    expect(await ask(second, `get ${keys.join(' ')}\r\n`)).toBe(all);
    expect(await ask(first, `get ${keys.join(' ')}\r\n`)).toBe(all);
    // The keys are split between host and VM.
    const items = async (address: string) => Number(/^STAT curr_items (\d+)\r$/m.exec(await ask(address, 'stats\r\n'))![1]);
    const [onProcess, onVm] = [await items(first), await items(second)];
    expect(onProcess + onVm).toBe(200);
    expect(Math.min(onProcess, onVm)).toBeGreaterThan(40);
    // Where a key lives, asked of either node: its owner and the address clients reach the owner at (the VM's forward for the VM).
    // The ring carries the addresses once the nodes' heartbeats reported their listeners and the ring was republished.
    const ringAddresses = `${proc.nodeId}=${first},${vm.nodeId}=${second}`;
    for (const address of [first, second]) {
      const deadline = Date.now() + 20_000;
      while (!(await ask(address, 'stats\r\n')).includes(`STAT ebbrt_ring_addresses ${ringAddresses}\r`)) {
        if (Date.now() > deadline) throw new Error(`the ring on ${address} does not list ${ringAddresses}: ${await ask(address, 'stats\r\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // Those addresses are the nodes' membership records.
    expect(fe.hosted.members.get(vm.nodeId)!.services).toEqual([{ name: expect.stringMatching(/^memcached:/), address: second }]);
    expect(fe.hosted.members.get(proc.nodeId)!.services).toEqual([{ name: expect.stringMatching(/^memcached:/), address: first }]);
    const owners = new Map<number, number>();
    for (const key of keys.slice(0, 30)) {
      const answers = await Promise.all([first, second].map((address) => ask(address, `stats ebbrt_owner ${key}\r\n`)));
      expect(answers[1]).toBe(answers[0]);
      const [, node, address] = /^STAT ebbrt_owner_node (\d+)\r\nSTAT ebbrt_owner_address (\S+)\r\nEND\r\n$/.exec(answers[0])!;
      expect(address).toBe(addressOf.get(Number(node)));
      owners.set(Number(node), (owners.get(Number(node)) ?? 0) + 1);
      // The owner answers the key itself.
      expect(await ask(address, `get ${key}\r\n`)).toMatch(new RegExp(`^VALUE ${key} `));
    }
    expect([...owners.keys()].sort()).toEqual([proc.nodeId, vm.nodeId].sort());
    abort.abort();
    expect(await running).toBe(0);
  }, 300_000);
});
