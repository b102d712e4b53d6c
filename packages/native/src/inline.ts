/**
 * A native node with one core on the calling thread: the same join,
 * messenger and runtime as a process native, without worker threads. Used by
 * the cluster-in-one-process tests (over a MemoryNetwork) and for embedding.
 */
import {
  connectTcp,
  type EbbRuntime,
  listenTcp,
  MemoryLocalIdMap,
  Messenger,
  nativeCoreRuntime,
  NodeUnavailableError,
  PairKeyring,
  type CoreLinks,
  type Transport,
  type TransportConnector,
  type TransportServer,
} from '@ebbrt/ebb-protocol/internal';
import { CoreServices, ServiceBroker } from './shared.js';
import { Supervisor } from './membership.js';

/** Options of {@link startInlineNative}. */
export interface InlineNativeOptions {
  /** Frontend messenger address `host:port`. */
  frontend: string;
  /** Cluster secret. */
  secret: string;
  /** Allocation id to report (default empty: a manually started node). */
  allocationId?: string;
  /** Address to bind the messenger. Default 127.0.0.1. */
  host?: string;
  /** Replace TCP (tests): how to listen and connect. */
  transport?: { listen(onTransport: (t: Transport) => void): Promise<TransportServer>; connect: TransportConnector };
  /** Called when the frontend says goodbye or is lost. */
  onEnded?: (reason: string, lost: boolean) => void;
}

export interface InlineNative {
  readonly nodeId: number;
  readonly runtime: EbbRuntime;
  readonly address: string;
  /** Leaves the cluster: goodbye, close every connection. */
  close(): Promise<void>;
  /** Drops every connection without a goodbye (simulates a crash). */
  crash(): Promise<void>;
}

export async function startInlineNative(options: InlineNativeOptions): Promise<InlineNative> {
  const match = /^(.+):(\d+)$/.exec(options.frontend ?? '');
  if (!match) throw new TypeError('options.frontend must be "host:port"');
  if (typeof options.secret !== 'string' || options.secret.length === 0) throw new TypeError('options.secret must be the cluster secret');
  const connect = options.transport?.connect ?? ((h: string, p: number) => connectTcp(h, p));
  let messenger: Messenger | undefined;
  const server = await (options.transport?.listen ?? ((on) => listenTcp({ host: options.host ?? '127.0.0.1' }, on)))((t) =>
    messenger ? messenger.accept(t) : t.close(),
  );
  let runtime: EbbRuntime | undefined;
  // One core: the node services' broker runs on this thread and is asked directly.
  const broker = new ServiceBroker();
  let supervisor: Supervisor;
  try {
    supervisor = await Supervisor.join(
      {
        frontendHost: match[1],
        frontendPort: Number(match[2]),
        proof: { secret: options.secret },
        allocationId: options.allocationId ?? '',
        cores: 1,
        host: server.address.host,
        port: server.address.port,
        backend: 'inline',
        connect,
      },
      {
        membership: (update) => runtime?.membership(update),
        ended: (reason, how) => {
          messenger?.close(new NodeUnavailableError(reason));
          options.onEnded?.(reason, how === 'lost');
        },
      },
      { inFlight: () => messenger?.inFlight ?? 0, cores: () => (runtime ? [runtime.snapshot()] : []), services: () => broker.services() },
    );
  } catch (error) {
    await server.close();
    throw error;
  }
  // The secret proved the JOIN; the node's own connections use only the pair keys its Welcome carried.
  messenger = new Messenger({ nodeId: supervisor.nodeId, core: 0, keys: new PairKeyring(supervisor.incarnation), connect });
  const links: CoreLinks = {
    allocateId: async () => supervisor.ids.allocate(),
    localIdMap: new MemoryLocalIdMap(),
  };
  const address = `${server.address.host}:${server.address.port}`;
  runtime = nativeCoreRuntime(messenger, supervisor.welcome.peers, { nodeId: supervisor.nodeId, core: 0, address, links });
  const rt = runtime;
  const services = new CoreServices(rt, (request) => broker.handle(request));
  return {
    nodeId: supervisor.nodeId,
    runtime: rt,
    address,
    close: async () => {
      await services.stop();
      supervisor.close('leaving');
      messenger!.close();
      await server.close();
    },
    crash: async () => {
      await services.stop();
      supervisor.close();
      messenger!.close();
      await server.close();
    },
  };
}
