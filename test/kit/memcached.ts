/**
 * The memcached example as the tests run it: `ebbrt run memcached` as a child
 * process, resolved once it printed its listening line.
 */
import { CLI, lines, spawnNode, until, type Spawned } from './index.js';

/** Starts `ebbrt run memcached <args>`; resolves with the nodes' addresses once every core accepts. */
export async function launchMemcached(args: readonly string[]): Promise<{ addresses: string[]; spawned: Spawned }> {
  const spawned = spawnNode(CLI, ['run', 'memcached', ...args], { timeoutMs: 90_000 });
  await until(() => /^memcached listening on /m.test(spawned.stdout()) || spawned.child.exitCode !== null, 30_000, 'memcached to listen');
  const line = lines(spawned.stdout()).find((l) => l.startsWith('memcached listening on '));
  if (!line)
    throw new Error(`memcached did not start (exit ${spawned.child.exitCode}, signal ${spawned.child.signalCode}):\n${spawned.stdout()}\n${spawned.stderr()}`);
  const addresses = line.slice('memcached listening on '.length).split(' (')[0].split(' ');
  return { addresses, spawned };
}
