/**
 * invoker, hosted side: the OpenWhisk-style REST API. Actions are stored in
 * the GlobalIdMap (one dynamic Ebb id each, plus a directory entry);
 * invocations are placed on the natives' cores by least outstanding calls and
 * run by the Action Ebb's per-core reps there. Serves until interrupted
 * (SIGINT/SIGTERM), then closes the API and lets the runtime stop the natives.
 */
import type { AppCheck, HostedApp, LaunchHandle } from '@ebbrt/hosted';
import { ActivationStore } from './activations.js';
import { startApi } from './api.js';
import { isolate, parseArgs, type InvokerOptions } from './args.js';
import { Dispatcher } from './dispatch.js';
import { InvokerUsageError } from './errors.js';
import { Flows } from './flows.js';
import { ActionStore } from './store.js';
import { Tenants } from './tenants.js';

/** What `ebbrt run` checks before anything boots: the arguments, and natives (none under --isolate tenant, which starts its own). */
export function checkArgs(args: readonly string[], run: { nodes?: number }): AppCheck {
  const options = parseArgs(args);
  if (options.isolate !== 'tenant') return { natives: 'required' };
  if (run.nodes) throw new InvokerUsageError("--isolate tenant starts every namespace's natives itself: start the invoker with --nodes 0");
  return { natives: 'none' };
}

export async function main(app: HostedApp): Promise<number> {
  let options: InvokerOptions;
  let placement: Map<string, number[]> | undefined;
  try {
    options = parseArgs(app.args);
    if (options.isolate === 'tenant') {
      if (app.natives.length > 0) throw new InvokerUsageError("--isolate tenant starts every namespace's natives itself: start the invoker with --nodes 0");
    } else if (app.natives.length === 0)
      throw new InvokerUsageError('the invoker runs actions on native nodes: start it with --nodes 1 or more (or use --isolate tenant)');
    if (options.isolate === 'namespace')
      placement = isolate(
        [...options.namespaces.keys()],
        app.natives.map((n) => n.nodeId),
      );
  } catch (error) {
    if (!(error instanceof InvokerUsageError)) throw error;
    process.stderr.write(`invoker: ${error.message}\n`);
    return 2;
  }
  const rt = app.runtime;
  const activations = new ActivationStore();
  const store = await ActionStore.open(rt, placement, options.quotas);
  const dispatcher = new Dispatcher({ runtime: rt, natives: app.natives, placement, activations, namespaceConcurrency: options.quotas.concurrent });
  app.node.on('leave', (nodeId: number) => dispatcher.nodeLeft(nodeId));
  // A lost native is replaced by the run's node group: the replacement takes its place (and, under
  // --isolate namespace, its namespace, whose action records then name the new node).
  app.group?.on('replaced', (lost: number, native: LaunchHandle) => {
    const namespace = placement && [...placement].find(([, nodes]) => nodes.includes(lost))?.[0];
    if (namespace === undefined) return dispatcher.addNative(native.nodeId, native.cores);
    const nodes = placement!.get(namespace)!;
    nodes.splice(nodes.indexOf(lost), 1, native.nodeId);
    store.place(namespace).then(
      () => dispatcher.addNative(native.nodeId, native.cores, namespace),
      (error: Error) =>
        app.node.log.error('invoker: could not move a namespace to a replacement node', { namespace, nodeId: native.nodeId, error: error.message }),
    );
  });
  const tenants = options.isolate === 'tenant' ? new Tenants(app, dispatcher, store, { nodes: options.tenantNodes, cores: options.tenantCores }) : undefined;
  const keys = new Map([...options.namespaces].map(([namespace, key]) => [key, namespace]));
  let api;
  try {
    api = await startApi({
      host: options.host,
      port: options.port,
      keys,
      store,
      dispatcher,
      flows: new Flows(store, dispatcher, activations),
      activations,
      ready: tenants && ((namespace) => tenants.ready(namespace)),
      blockingWaitMs: options.blockingWaitMs,
      onError: (error) => app.node.log.error('invoker request failed', { error: String((error as Error)?.stack ?? error) }),
    });
  } catch (error) {
    process.stderr.write(`invoker: cannot serve the API on ${options.host}:${options.port}: ${(error as Error).message}; pick another --port\n`);
    return 1;
  }
  app.print(
    `invoker: API on ${api.apihost}/api/v1 (${tenants ? `${options.tenantNodes} native node(s) × ${options.tenantCores} core(s) per namespace, started on first invoke` : `${app.natives.length} native node(s) × ${app.natives[0].cores} core(s)`})`,
  );
  // Names only: a key printed would land in every log that captures the output.
  for (const namespace of options.namespaces.keys()) {
    const nodes = placement?.get(namespace);
    app.print(`invoker: namespace ${namespace}${nodes ? ` on node(s) ${nodes.join(', ')}` : ''}`);
  }
  app.print('invoker: ready');
  await new Promise<void>((resolve) => {
    if (app.signal.aborted) resolve();
    app.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await api.close();
  await tenants?.stop();
  return 0;
}
