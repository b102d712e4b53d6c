/** Messages between a native's supervisor (main thread) and its cores (workers). Internal. */
import type { MessagePort } from 'node:worker_threads';
import type { CoreSnapshot, LocalIdMapOp, MembershipUpdate, Peer, WireError } from '@ebbrt/ebb-protocol/internal';
import type { ServiceReply, ServiceRequest } from './shared.js';

export interface CoreData {
  core: number;
  cores: number;
  listenHost: string;
  /** Port core 0 binds (0 = any free port). */
  listenPort: number;
  /** Peer hosts to replace when connecting (see BootConfig.hostAlias). */
  hostAlias: Record<string, string>;
  /** TLS for the messenger (BootConfig.tls). */
  tls?: { cert: string; key: string; ca: string };
  /** Listening socket to share (cores > 0); core 0 creates it. */
  fd?: number;
  /** ports[i] talks to core i (undefined at this core's own index). */
  ports: (MessagePort | undefined)[];
  app: string;
  args: string[];
  /** Report boot marks (BootConfig.bootTrace). */
  trace: boolean;
  /** Load the whole protocol stack before listening (a VM native: see node.ts), not after. */
  loadFirst: boolean;
}

export type ToCore =
  /** `peers` carry the pair keys of this node with each member (unsealed): a core holds no other key. */
  | { t: 'welcome'; nodeId: number; incarnation: number; peers: Peer[]; address: string }
  | { t: 'membership'; update: MembershipUpdate }
  | { t: 'start' }
  /** Answers to a core's requests; a failure travels as its wire form, so the core rethrows the same coded error. */
  | { t: 'id'; req: number; id?: number; error?: WireError }
  | { t: 'local'; req: number; value?: unknown; error?: WireError }
  /** The broker's answer to a node-services request (shared.ts). */
  | { t: 'service'; req: number; value?: ServiceReply; error?: WireError }
  /** Asks for a `stats` answer (sent at every heartbeat, for the next one). */
  | { t: 'stats' }
  | { t: 'stop' };

export type FromCore =
  | { t: 'listening'; port: number; fd: number }
  | { t: 'ready' }
  | { t: 'allocateId'; req: number }
  | { t: 'local'; req: number; request: LocalIdMapOp }
  | { t: 'service'; req: number; request: ServiceRequest }
  | { t: 'mainDone'; error?: string }
  | { t: 'stats'; inFlight: number; snapshot: CoreSnapshot }
  | { t: 'stopped' }
  /** A point of this core's boot, epoch ms (sent only when tracing the boot). */
  | { t: 'mark'; name: string; at: number };

/** Between cores, over their MessageChannel. */
export type CoreToCore =
  | { t: 'call'; id: number; ebbId: number; code: number; args: Uint8Array }
  | { t: 'ret'; id: number; ok: boolean; payload: Uint8Array }
  | { t: 'msg'; ebbId: number; payload: Uint8Array; fromNode: number; fromCore: number };
