/**
 * memcached, hosted side: creates the Memcached Ebb, records the ring of the
 * natives that own keys in its GlobalIdMap entry, starts every native (node i
 * on port P + i), prints one line with the addresses once every core of every
 * node accepts, and serves until interrupted. The ring carries where clients
 * reach each node's memcached, taken from the nodes' membership records (the
 * services their heartbeats report), so any node can tell a client where a
 * key lives. A native that leaves is taken off the ring, so the others stop
 * forwarding to it (its keys miss until then); the run's node group replaces
 * it, and the replacement takes its port and its place on the ring.
 */
import { encodeValue, type AppCheck, type HostedApp } from '@ebbrt/hosted';
import { parseArgs, type MemcachedArgs } from './args.js';
import { MemcachedUsageError } from './errors.js';
import { MemcachedEbb, serviceName, type MemcachedRecord } from './memcached.js';
import { DEFAULT_VNODES } from './ring.js';

/** What `ebbrt run` checks before anything boots: the arguments. */
export function checkArgs(args: readonly string[]): AppCheck {
  parseArgs(args);
  return { natives: 'required' };
}

export async function main(app: HostedApp): Promise<number> {
  let args: MemcachedArgs;
  try {
    args = parseArgs(app.args);
    if (app.natives.length === 0) throw new MemcachedUsageError('memcached needs at least one native node (--nodes 1 or more)');
    if (args.port !== 0 && args.port + app.natives.length - 1 > 65535)
      throw new MemcachedUsageError(`--port ${args.port} leaves no room for ${app.natives.length} nodes (node i listens on port + i); pick a lower port`);
  } catch (error) {
    if (!(error instanceof MemcachedUsageError)) throw error;
    process.stderr.write(`memcached: ${error.message}\n`);
    return 2;
  }
  const rt = app.runtime;
  const natives = [...app.natives].sort((a, b) => a.nodeId - b.nodeId);
  const ref = await rt.createEbb(MemcachedEbb);
  let owners = natives.map((n) => n.nodeId);
  /** Where a node's memcached is reachable, per its membership record ('' until its heartbeat reported the listener). */
  const service = serviceName(ref.$id);
  const addressOf = (nodeId: number) => app.node.members.get(nodeId)?.services.find((s) => s.name === service)?.address ?? '';
  const ringNow = () => ({ nodes: owners, vnodes: DEFAULT_VNODES, addresses: owners.map(addressOf) });
  let published = '';
  const publishRing = async () => {
    const ring = ringNow();
    published = JSON.stringify(ring);
    await rt.idMap.set(ref.$id, encodeValue({ type: 'Memcached', ring } satisfies MemcachedRecord));
  };
  await publishRing();
  const ringFailed = (error: Error) => process.stderr.write(`memcached: could not update the ring: ${error.message}\n`);
  // A ring member's memcached appeared at (or moved to) another address: clients asking where a key lives learn it.
  // Heard from before the nodes start serving: their first heartbeat with the listener may come before start() answers.
  const onServices = (member: { nodeId: number }) => {
    if (owners.includes(member.nodeId) && JSON.stringify(ringNow()) !== published) publishRing().catch(ringFailed);
  };
  app.node.on('services', onServices);
  let addresses: string[];
  try {
    const started = await Promise.all(
      natives.map((native, i) =>
        rt.remote(ref, native.nodeId).start({ host: args.host, port: args.port === 0 ? 0 : args.port + i, memoryMiB: args.memoryMiB }),
      ),
    );
    addresses = started.map((s) => s.address);
  } catch (error) {
    app.node.off('services', onServices);
    process.stderr.write(`memcached: could not start serving: ${(error as Error).message}\n`);
    return 1;
  }
  const cores = [...new Set(natives.map((n) => n.cores))].join('/');
  app.print(
    `memcached listening on ${addresses.join(' ')} (${natives.length} node${natives.length > 1 ? 's' : ''} × ${cores} cores, ${args.memoryMiB} MiB each)`,
  );
  /** Port each node serves on, so a replacement takes over the one of the node it replaces. */
  const ports = new Map(natives.map((native, i) => [native.nodeId, args.port === 0 ? 0 : args.port + i]));
  return new Promise<number>((resolve) => {
    const done = (status: number) => {
      app.node.off('leave', onLeave);
      app.node.off('services', onServices);
      app.group?.off('replaced', onReplaced);
      resolve(status);
    };
    const onLeave = (nodeId: number) => {
      if (!owners.includes(nodeId)) return;
      owners = owners.filter((n) => n !== nodeId);
      // With a node group a replacement is on its way; without one, no node would ever serve again.
      if (owners.length === 0 && !app.group) {
        process.stderr.write('memcached: every native node left; stopping\n');
        done(1);
        return;
      }
      publishRing().catch(ringFailed);
    };
    const onReplaced = (old: number, native: { nodeId: number }) => {
      const port = ports.get(old) ?? 0;
      ports.delete(old);
      ports.set(native.nodeId, port);
      rt.remote(ref, native.nodeId)
        .start({ host: args.host, port, memoryMiB: args.memoryMiB })
        .then(async (started) => {
          owners = [...owners, native.nodeId].sort((a, b) => a - b);
          await publishRing();
          app.print(`memcached: node ${native.nodeId} replaced node ${old}, listening on ${started.address}`);
        })
        .catch(ringFailed);
    };
    app.node.on('leave', onLeave);
    app.group?.on('replaced', onReplaced);
    if (app.signal.aborted) done(0);
    app.signal.addEventListener('abort', () => done(0), { once: true });
  });
}
