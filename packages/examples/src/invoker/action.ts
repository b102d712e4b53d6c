/**
 * The Action Ebb, shared by both sides: every action is a dynamic Ebb of
 * type `InvokerAction` with a `multicore` policy. The frontend allocates a
 * global id per action and writes the action's record (its code, limits…)
 * to the GlobalIdMap under that id. No native is told about it: the first
 * invocation that reaches a native core names an Ebb the core has never
 * seen, so the core reads the record, finds the type in the app module it
 * loaded, and faults its rep in (EbbRT's remote fault). The rep compiles the
 * code once for that core in a sandbox of its own, then serves every later
 * invocation on that core. It watches the record: an update or a delete
 * evicts it from the core's translation table, and the next invocation
 * faults in a rep built from the new record.
 */
import { decodeValue, defineEbb, DEFAULT_MAX_FRAME_SIZE, type EbbId, type EbbRuntime, type IdMapEntry, type RepContext } from '@ebbrt/ebb-protocol';
import { MESSAGES } from './errors.js';
import { ActionSandbox, STATUS, type Outcome } from './sandbox.js';

/** Per-action limits (OpenWhisk's `limits`). */
export interface ActionLimits {
  /** Longest an activation may run, ms (100..300000; default 60000). */
  timeout: number;
  /** Memory, MB (128..2048; default 256): the heap limit of the action's isolate on each core. */
  memory: number;
  /** Log bytes kept per activation, MB (0..10; default 10). */
  logs: number;
  /** Activations of this action in flight at once over the whole cluster (1..500; default 500); more get 429. */
  concurrency: number;
}

export const DEFAULT_LIMITS: Readonly<ActionLimits> = Object.freeze({ timeout: 60_000, memory: 256, logs: 10, concurrency: 500 });

export interface KeyValue {
  key: string;
  value: unknown;
}

/** What the GlobalIdMap holds under an action's id (msgpack). `type` makes it an Ebb record the runtime can fault from. */
export interface ActionRecord {
  type: 'InvokerAction';
  namespace: string;
  name: string;
  /** OpenWhisk's semantic version, bumped on every update. */
  version: string;
  /** `kind: "sequence"`: `components` are the steps' fully qualified names (`/ns/name`, `/ns/pkg/name`), `code` is empty. */
  exec: { kind: string; code: string; main?: string; components?: string[] };
  limits: ActionLimits;
  parameters: KeyValue[];
  annotations: KeyValue[];
  publish: boolean;
  /** Last change, ms since the epoch. */
  updated: number;
  /** Native nodes allowed to run it (`--isolate namespace`); absent: any node. */
  nodes?: number[];
  /** Set by a delete: reps that still see the id refuse to run. */
  deleted?: boolean;
}

/** What an invocation returns to the frontend. */
export interface ActionOutcome extends Outcome {
  nodeId: number;
  core: number;
  /** Compile and init time when this invocation faulted the rep in (a cold start on this core), ms. */
  initMs?: number;
}

export interface ActionInvoker {
  /**
   * Runs one activation. `version` is the GlobalIdMap entry version of the
   * record the frontend resolved; `params` is the parameters object as JSON.
   */
  invoke(version: number, params: string): ActionOutcome | Promise<ActionOutcome>;
}

/** The one namespace this node serves, on a tenant node (`--isolate tenant`; `EBBRT_INVOKER_TENANT`, set by the frontend). */
const TENANT = process.env.EBBRT_INVOKER_TENANT;

/** How long a rep waits for the watch notification of a record newer than its own before giving up, ms. */
const STALE_WAIT_MS = 5000;

/**
 * Compiled actions a core keeps (`EBBRT_INVOKER_WARM_ACTIONS`, default 256);
 * past it the least recently invoked one leaves the core, as an idle
 * OpenWhisk container is reclaimed, and compiles again if invoked again.
 */
export const WARM_LIMIT = warmLimit(process.env.EBBRT_INVOKER_WARM_ACTIONS);

function warmLimit(raw: string | undefined): number {
  if (raw === undefined) return 256;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1) throw new TypeError(`EBBRT_INVOKER_WARM_ACTIONS must be a positive integer (compiled actions kept per core), got "${raw}"`);
  return n;
}

/** One core's rep of one action: the action compiled in its own sandbox. */
export class ActionRep implements ActionInvoker {
  /** This core's reps holding a sandbox, least recently invoked first (module state is per core: one worker thread each). */
  static readonly #warm = new Set<ActionRep>();
  readonly #rt: EbbRuntime;
  readonly #id: EbbId;
  readonly #unwatch: () => void;
  #version = 0;
  #sandbox?: ActionSandbox;
  /** Set when this core must not run the action (deleted, or another node's namespace): the outcome it answers. */
  #refusal?: { status: Outcome['status']; error: string };
  #loading?: Promise<void>;
  /** Init time, reported once: by the first activation this rep serves. */
  #initMs?: number;
  /** Resolvers of invocations waiting for a newer record. */
  #waiting: (() => void)[] = [];
  #retired = false;

  constructor(ctx: RepContext) {
    this.#rt = ctx.runtime;
    this.#id = ctx.id;
    this.#unwatch = ctx.runtime.idMap.watch(ctx.id, () => this.#retire());
    // The remote fault just read the record, so it is normally cached; after a reconnect it is fetched again.
    const entry = ctx.runtime.idMap.peek(ctx.id);
    if (entry) this.#load(entry);
    else {
      this.#loading = ctx.runtime.idMap.get(ctx.id).then(
        (fetched) => {
          this.#loading = undefined;
          if (fetched) this.#load(fetched);
          else this.#refusal = { status: STATUS.internalError, error: MESSAGES.actionRemoved };
        },
        (error: Error) => {
          this.#loading = undefined;
          this.#refusal = { status: STATUS.internalError, error: `Action could not be fetched: ${error.message}` };
        },
      );
    }
  }

  #load(entry: IdMapEntry): void {
    this.#version = entry.version;
    const record = decodeValue(entry.value) as ActionRecord;
    if (record.deleted) {
      this.#refusal = { status: STATUS.internalError, error: MESSAGES.actionRemoved };
      return;
    }
    if (TENANT !== undefined && record.namespace !== TENANT) {
      this.#refusal = { status: STATUS.internalError, error: `node ${this.#rt.nodeId} serves namespace ${TENANT} only (--isolate tenant)` };
      return;
    }
    if (record.nodes && !record.nodes.includes(this.#rt.nodeId)) {
      this.#refusal = { status: STATUS.internalError, error: `node ${this.#rt.nodeId} does not serve namespace ${record.namespace} (--isolate namespace)` };
      return;
    }
    const sandbox = new ActionSandbox({
      code: record.exec.code,
      main: record.exec.main,
      filename: `${record.namespace}/${record.name}.js`,
      timeoutMs: record.limits.timeout,
      logLimitBytes: record.limits.logs * 1024 * 1024,
      memoryMb: record.limits.memory,
    });
    this.#initMs = sandbox.initMs;
    this.#sandbox = sandbox;
    ActionRep.#touch(this);
    sandbox.onPoisoned = () => this.#drop();
    // An initialization that timed out is not kept: the next invocation tries again with a fresh sandbox.
    if (sandbox.poisoned) this.#drop();
  }

  invoke(version: number, params: string): ActionOutcome | Promise<ActionOutcome> {
    if (this.#loading) return this.#loading.then(() => this.invoke(version, params));
    if (version > this.#version) return this.#stale(version, params);
    if (this.#refusal) {
      const now = Date.now();
      return this.#outcome({ status: this.#refusal.status, result: JSON.stringify({ error: this.#refusal.error }), logs: [], start: now, end: now });
    }
    ActionRep.#touch(this);
    return this.#sandbox!.run(params).then((outcome) => (outcome ? this.#outcome(outcome) : this.#elsewhere(version, params)));
  }

  /** The sandbox was poisoned before this activation started: run it on the rep faulted in next. */
  #elsewhere(version: number, params: string): Promise<ActionOutcome> {
    this.#drop();
    return Promise.resolve(this.#rt.invoke(this.#id, ActionEbb.codes.invoke, [version, params]) as ActionOutcome | Promise<ActionOutcome>);
  }

  #outcome(outcome: Outcome): ActionOutcome {
    const result = fitReply(outcome) as ActionOutcome;
    result.nodeId = this.#rt.nodeId;
    result.core = this.#rt.core;
    if (this.#initMs !== undefined) {
      result.initMs = this.#initMs;
      this.#initMs = undefined;
    }
    return result;
  }

  /**
   * The frontend resolved a newer record than the one this rep was built
   * from: the call overtook the watch notification (they travel on different
   * connections). Wait for the notification, which retires this rep, then run
   * on the rep faulted in from the new record.
   */
  async #stale(version: number, params: string): Promise<ActionOutcome> {
    const deadline = Date.now() + STALE_WAIT_MS;
    let current = this.#rt.idMap.peek(this.#id)?.version;
    while (current !== undefined && current < version && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#waiting.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      current = this.#rt.idMap.peek(this.#id)?.version;
    }
    if (current !== undefined && current < version) {
      const now = Date.now();
      return this.#outcome({
        status: STATUS.internalError,
        result: JSON.stringify({ error: 'Action version is not compatible and cannot be invoked.' }),
        logs: [],
        start: now,
        end: now,
      });
    }
    // Caught up: the rep faulted in next is built from the current record (or, when the cache was
    // dropped because the connection to the frontend was replaced, fetches it afresh).
    return this.#elsewhere(version, params);
  }

  /** Marks `rep` most recently used; retires the least recently used rep past {@link WARM_LIMIT}. */
  static #touch(rep: ActionRep): void {
    const warm = ActionRep.#warm;
    warm.delete(rep);
    warm.add(rep);
    if (warm.size > WARM_LIMIT) warm.values().next().value!.#retire();
  }

  /** The record changed (or the rep is reclaimed): leave the translation table; the sandbox goes once its activations settled. */
  #retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#unwatch();
    this.#drop();
    this.#sandbox?.retire();
    for (const wake of this.#waiting.splice(0)) wake();
  }

  /** Leaves this core's translation table, so the next invocation faults in a fresh rep. */
  #drop(): void {
    ActionRep.#warm.delete(this);
    if (this.#rt.lookup(this.#id) === this) this.#rt.evict(this.#id);
    if (!this.#retired) {
      this.#retired = true;
      this.#unwatch();
      for (const wake of this.#waiting.splice(0)) wake();
    }
  }
}

/**
 * Room for an outcome in one reply frame: the frame limit less space for the
 * header, the msgpack framing and the other fields. The sandbox's own limits
 * (1 MiB result, at most 10 MB of logs) keep outcomes far below it; this is the
 * last guard, so that no activation can make a reply the connection would be
 * closed for (which would fail every other call on it).
 */
const REPLY_BUDGET = DEFAULT_MAX_FRAME_SIZE - 64 * 1024;

/** `outcome`, or, when its result and logs would not fit one reply frame, a developer error in its place with the logs cut to fit. */
export function fitReply(outcome: Outcome, budget = REPLY_BUDGET): Outcome {
  // msgpack spends at most 5 bytes of framing per string.
  let bytes = Buffer.byteLength(outcome.result) + 5;
  for (const line of outcome.logs) bytes += Buffer.byteLength(line) + 5;
  if (bytes <= budget) return outcome;
  const error = JSON.stringify({ error: MESSAGES.truncatedResponse(bytes, budget) });
  const logs: string[] = [];
  let kept = Buffer.byteLength(error) + 5;
  for (const line of outcome.logs) {
    kept += Buffer.byteLength(line) + 5;
    if (kept > budget / 2) break;
    logs.push(line);
  }
  return { ...outcome, status: STATUS.developerError, result: error, logs };
}

export const ActionEbb = defineEbb<ActionInvoker>({
  name: 'InvokerAction',
  policy: 'multicore',
  methods: ['invoke'],
  create: (ctx) => new ActionRep(ctx),
});

/**
 * The GlobalIdMap entry that holds the invoker's directory (kind → namespace
 * → name → entity id). The action type's static id is never used as an Ebb
 * (every action has a dynamic id), so its entry is free for this.
 */
export const DIRECTORY_ID: EbbId = ActionEbb.staticId;

/** The directory's shape in the GlobalIdMap (msgpack). */
export type Directory = Partial<Record<'actions' | 'packages' | 'triggers' | 'rules', Record<string, Record<string, EbbId>>>>;
