/**
 * What `ebbrt ps` and `ebbrt top` show, as JSON (the admin API's
 * `/api/state` and `/api/top`, `--json`, the dashboard's feed). Types only,
 * plus the pure derivation of the Ebb table from per-core snapshots.
 */
import { RepKind, type CoreSnapshot } from '@ebbrt/ebb-protocol/internal';

/** `suspected`: joined, but silent past the frontend's `suspectAfterMs` (calls to it fail fast until it is heard from). */
export type NodeState = 'booting' | 'joined' | 'suspected' | 'failed' | 'left';

export interface NodeView {
  /** Node id once joined (1 = the frontend); 0 while booting or when the boot failed. */
  id: number;
  group: string;
  backend: string;
  /** Messenger `host:port` once joined. */
  address: string;
  /** While joined: the listeners its apps opened and where clients reach them (its membership record's services). */
  services?: { name: string; address: string }[];
  cores: number;
  state: NodeState;
  pid?: number;
  startedAt: string;
  joinedAt?: string;
  endedAt?: string;
  /** Time since it joined, while joined. */
  uptimeMs?: number;
  /** Resident memory from its last heartbeat (the frontend: its own). */
  rssBytes?: number;
  inFlight?: number;
  /** Why it failed or left. */
  reason?: string;
  /** The lost node this one replaced. */
  replaces?: number;
  /** The node that replaced this one after it was lost. */
  replacedBy?: number;
}

export interface GroupView {
  name: string;
  app: string;
  backend: string;
  count: number;
  cores: number;
  booting: number;
  joined: number;
  failed: number;
  left: number;
  /** Lost nodes replaced by a new node that joined. */
  replaced: number;
  /** Replacements that failed to join or died soon after joining (they back off). */
  failedReplacements: number;
  /** Replacements scheduled or booting now. */
  pendingReplacements: number;
  /**
   * The app's hosted `main`, run as a service once the group booted (absent when
   * the app's hosted entry exports none): running, returned 0, or failed (a
   * non-zero status or what it threw).
   */
  main?: { state: 'running' | 'returned' | 'failed'; status?: number; error?: string };
}

/** One node's reps of an Ebb: one character per core (see {@link REP_CHARS}). */
export interface EbbRepView {
  node: number;
  cores: string;
}

export interface EbbView {
  id: number;
  /** `0x…` form of the id. */
  hex: string;
  name: string;
  policy: string;
  /** `home` Ebbs: the node that holds the state; null for per-core / per-node policies or when unknown. */
  owner: number | null;
  reps: EbbRepView[];
}

export interface ClusterView {
  cluster: string;
  status: 'starting' | 'up' | 'stopping';
  startedAt: string;
  frontend: string;
  admin: string;
  store: string;
  groups: GroupView[];
  nodes: NodeView[];
  ebbs: EbbView[];
}

export interface CoreRateView {
  core: number;
  callsPerSec: number;
  servedPerSec: number;
}

export interface NodeRateView {
  nodeId: number;
  /** Calls its cores sent to other cores and nodes, per second. */
  callsPerSec: number;
  errorsPerSec: number;
  servedPerSec: number;
  servedErrorsPerSec: number;
  faultsPerSec: number;
  messagesPerSec: number;
  /** Latency of the calls it sent (µs), over the window. */
  p50Us: number | null;
  p99Us: number | null;
  cores: CoreRateView[];
}

export interface EbbRateView {
  id: number;
  hex: string;
  name: string;
  policy: string;
  /** Calls sent to this Ebb's reps on other cores and nodes, per second (cluster-wide). */
  callsPerSec: number;
  errorsPerSec: number;
  servedPerSec: number;
  servedErrorsPerSec: number;
  p50Us: number | null;
  p99Us: number | null;
  servedP50Us: number | null;
  servedP99Us: number | null;
  /**
   * Where calls resolved: `coreReps` = cores holding the real rep (calls that
   * hit it through a ref are direct calls and not counted), `nodePerSec` =
   * handed to another core of the caller's node, `remotePerSec` = sent to
   * another node.
   */
  resolved: { coreReps: number; nodePerSec: number; remotePerSec: number };
}

export interface TopView {
  cluster: string;
  /** When the latest sample was taken (ms since the epoch). */
  at: number;
  /** Span of the rates (ms) and of the percentiles (ms). */
  rateWindowMs: number;
  latencyWindowMs: number;
  ebbs: EbbRateView[];
  nodes: NodeRateView[];
}

/** `EbbRepView.cores` characters: real rep, proxy to another core, proxy to another node, pending, none. */
export const REP_CHARS: Record<number, string> = {
  [RepKind.local]: 'L',
  [RepKind.coreProxy]: 'c',
  [RepKind.remoteProxy]: 'r',
  [RepKind.pending]: 'p',
  [RepKind.none]: '.',
};

export function hexId(id: number): string {
  return `0x${id.toString(16).padStart(4, '0')}`;
}

/** The Ebb table of `ps`: every Ebb some core of some node holds a rep of or has counted calls for. */
export function ebbViews(samples: ReadonlyMap<number, readonly CoreSnapshot[]>, coresOf: (nodeId: number) => number): EbbView[] {
  const byId = new Map<number, { name: string; policy: string; reps: Map<number, string[]>; owners: Map<number, number> }>();
  for (const [nodeId, cores] of samples) {
    for (const core of cores) {
      for (const ebb of core.ebbs) {
        let entry = byId.get(ebb.id);
        if (!entry) byId.set(ebb.id, (entry = { name: '', policy: '', reps: new Map(), owners: new Map() }));
        entry.name ||= ebb.name;
        entry.policy ||= ebb.policy;
        let chars = entry.reps.get(nodeId);
        if (!chars) entry.reps.set(nodeId, (chars = Array.from({ length: Math.max(coresOf(nodeId), core.core + 1) }, () => '.')));
        chars[core.core] = REP_CHARS[ebb.rep] ?? '?';
        // Votes for the owner of a home Ebb: where the real rep is, and where proxies forward to.
        const owner = ebb.rep === RepKind.local ? nodeId : ebb.rep === RepKind.remoteProxy ? ebb.repNode : undefined;
        if (owner !== undefined) entry.owners.set(owner, (entry.owners.get(owner) ?? 0) + (ebb.rep === RepKind.local ? 1000 : 1));
      }
    }
  }
  return [...byId.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, entry]) => ({
      id,
      hex: hexId(id),
      name: entry.name || '?',
      policy: entry.policy || '?',
      owner: entry.policy === 'home' && entry.owners.size > 0 ? [...entry.owners.entries()].sort((a, b) => b[1] - a[1])[0][0] : null,
      reps: [...entry.reps.entries()].sort(([a], [b]) => a - b).map(([node, chars]) => ({ node, cores: chars.join('') })),
    }));
}
