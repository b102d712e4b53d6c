/**
 * The assembly of one native core's runtime, the same on a worker-thread
 * core and on an inline native: the peers its welcome named, a GlobalIdMap
 * client that reads through the messenger from the frontend (its cache
 * invalidated by the frontend's `idMapChanged` messages), and the Ebb runtime
 * over them. The frontend's runtime sits on the GlobalIdMap authority instead.
 */
import type { Messenger } from '../messenger/messenger.js';
import { RemoteGlobalIdMap } from '../runtime/global-id-map.js';
import { EbbRuntime, HOSTED_NODE_ID, type EbbRuntimeOptions } from '../runtime/runtime.js';
import type { Peer } from '../wire/control.js';

/** Builds a native core's runtime on `messenger`, which learns `peers` first; `options` are the runtime's own (node, core, address, links, …). */
export function nativeCoreRuntime(messenger: Messenger, peers: readonly Peer[], options: Omit<EbbRuntimeOptions, 'messenger' | 'idMap'>): EbbRuntime {
  for (const peer of peers) messenger.addPeer(peer);
  const idMap = new RemoteGlobalIdMap(() => messenger.connection(HOSTED_NODE_ID));
  messenger.handle('idMapChanged', (body) => idMap.changed(body));
  return new EbbRuntime({ ...options, messenger, idMap });
}
