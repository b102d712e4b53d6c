/** Messages between a native's supervisor (main thread) and its cores (workers). Internal. */
import type { MessagePort } from 'node:worker_threads';
import type { LocalIdMapOp, Peer } from '@ebbrt/ebb-protocol';

export interface CoreData {
  core: number;
  cores: number;
  listenHost: string;
  /** Listening socket to share (cores > 0); core 0 creates it. */
  fd?: number;
  /** ports[i] talks to core i (undefined at this core's own index). */
  ports: (MessagePort | undefined)[];
  secret: string;
  app: string;
  args: string[];
}

export type ToCore =
  | { t: 'welcome'; nodeId: number; peers: Peer[]; address: string }
  | { t: 'membership'; joined: Peer[]; left: number[] }
  | { t: 'start' }
  | { t: 'id'; req: number; id?: number; error?: string }
  | { t: 'local'; req: number; value?: unknown; error?: string }
  | { t: 'stop' };

export type FromCore =
  | { t: 'listening'; port: number; fd: number }
  | { t: 'ready' }
  | { t: 'allocateId'; req: number }
  | { t: 'local'; req: number; request: LocalIdMapOp }
  | { t: 'mainDone'; error?: string }
  | { t: 'stats'; inFlight: number }
  | { t: 'stopped' };

/** Between cores, over their MessageChannel. */
export type CoreToCore =
  | { t: 'call'; id: number; ebbId: number; code: number; args: Uint8Array }
  | { t: 'ret'; id: number; ok: boolean; payload: Uint8Array }
  | { t: 'msg'; ebbId: number; payload: Uint8Array; fromNode: number; fromCore: number };
