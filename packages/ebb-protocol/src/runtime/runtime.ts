/**
 * The Ebb runtime of one core: refs, the translation table and the fault path
 * that builds reps by policy, and the app-facing API (remote, cross-core and
 * local calls, messages, dynamic Ebbs). It talks to the messenger in Ebb ids,
 * method codes and values; the messenger does the encoding and the wire. Parts:
 * `translation-table.ts` (the table), `dispatch.ts` (work arriving from the
 * messenger), `call-ledger.ts` (statistics). One instance per core (per worker
 * thread on a native; the main thread is core 0 of the frontend).
 */
import { RepKind, type CoreSnapshot, type EbbSnapshot, type RuntimeStats } from '../wire/call-stats.js';
import { EbbCallStats } from '../wire/call-stats.js';
import { CallLedger } from './call-ledger.js';
import { decodeValue, encodeValue } from '../wire/codec.js';
import type { MembershipUpdate, Peer } from '../wire/control.js';
import { RuntimeDispatcher } from './dispatch.js';
import {
  definitionByName,
  definitionByStaticId,
  type CallOptions,
  type EbbDefinition,
  type EbbRef,
  type MessageSource,
  type MethodName,
  type RemoteRef,
  type RepContext,
} from './ebb.js';
import { NodeUnavailableError, UnknownEbbError, UnknownMethodError } from '../wire/errors.js';
import { ANY_CORE } from '../wire/frame.js';
import type { GlobalIdMap, IdMapEntry } from './global-id-map.js';
import { isEbbId, type EbbId } from '../wire/ids.js';
import type { LocalIdMap } from './local-id-map.js';
import type { Messenger } from '../messenger/messenger.js';
import { TranslationTable } from './translation-table.js';

/** The frontend's node id. */
export const HOSTED_NODE_ID = 1;

/** Node-wide services a core's runtime uses (its cores share them). */
export interface CoreLinks {
  /** A fresh global id from this node's id space (node-wide, so two cores never get the same). */
  allocateId(): Promise<EbbId>;
  /** The node-wide LocalIdMap every core of this node shares. */
  readonly localIdMap: LocalIdMap;
}

export type { RuntimeStats } from '../wire/call-stats.js';

/** Options of {@link EbbRuntime}. */
export interface EbbRuntimeOptions {
  nodeId: number;
  core: number;
  /** Address other nodes reach this node at (`host:port`), for display. */
  address: string;
  /** This core's messenger; the runtime registers itself as its dispatcher. */
  messenger: Messenger;
  idMap: GlobalIdMap;
  links: CoreLinks;
  /** Default deadline of remote and cross-core calls, ms. Default 30000. */
  callTimeoutMs?: number;
  /** Called when delivering a message failed (no rep, handler threw, malformed payload). */
  onMessageError?: (error: unknown, ebbId: EbbId) => void;
}

/** What the GlobalIdMap records for a dynamically created Ebb. */
interface EbbRecord {
  type: string;
  home?: number;
}

type Rep = Record<string, (...args: unknown[]) => unknown>;

export class EbbRuntime {
  readonly nodeId: number;
  readonly core: number;
  readonly address: string;
  readonly messenger: Messenger;
  readonly idMap: GlobalIdMap;
  readonly links: CoreLinks;
  readonly callTimeoutMs: number;
  readonly #ledger = new CallLedger();
  readonly stats: RuntimeStats = this.#ledger.totals;
  readonly #table = new TranslationTable<Rep>();
  readonly #onMessageError?: (error: unknown, ebbId: EbbId) => void;
  readonly #defs = new Map<EbbId, EbbDefinition>();
  readonly #refs = new Map<EbbId, EbbRef<object>>();
  /**
   * Nodes membership reported gone. Node ids are never reused, so a `home` Ebb recorded on one of
   * these has lost its owner (a node merely not heard of yet, e.g. one that just joined, is not in here).
   */
  readonly #departed = new Set<number>();
  /** What each proxy rep forwards to; a rep not in here is the real (local) one. */
  readonly #proxyKinds = new WeakMap<Rep, { kind: RepKind; node: number }>();

  constructor(options: EbbRuntimeOptions) {
    this.nodeId = options.nodeId;
    this.core = options.core;
    this.address = options.address;
    this.messenger = options.messenger;
    this.idMap = options.idMap;
    this.links = options.links;
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.#onMessageError = options.onMessageError;
    options.messenger.serve(new RuntimeDispatcher(this, this.#ledger));
  }

  /** Number of cores of this node. */
  get cores(): number {
    return this.messenger.cores;
  }

  /** The node-wide store shared by every core of this node (EbbRT's LocalIdMap). */
  get localIdMap(): LocalIdMap {
    return this.links.localIdMap;
  }

  /** The cluster's members as this core knows them. */
  get peers(): ReadonlyMap<number, Peer> {
    return this.messenger.peers;
  }

  /**
   * A typed reference to Ebb `id` (default: the definition's static id).
   * Method calls resolve through this core's translation table; the first call
   * faults the rep in according to the definition's policy.
   */
  ref<T extends object>(definition: EbbDefinition<T>, id: EbbId = definition.staticId): EbbRef<T> {
    const cached = this.#refs.get(id);
    // A cached ref of another type falls through to #bind, which refuses the mismatch.
    if (cached && this.#defs.get(id) === (definition as unknown as EbbDefinition)) return cached as EbbRef<T>;
    if (!isEbbId(id)) throw new TypeError(`Ebb id must be an unsigned 32-bit integer, got ${id}`);
    this.#bind(id, definition as unknown as EbbDefinition);
    const LocalRef = localRefClass(definition as unknown as EbbDefinition);
    const ref = new LocalRef(id, () => ((this.lookup(id) as Rep | undefined) ?? this.#fault(id)) as Rep);
    this.#refs.set(id, ref as unknown as EbbRef<object>);
    this.#rebind(id);
    return ref as unknown as EbbRef<T>;
  }

  /**
   * A ref whose calls all go to node `nodeId` (and `core`, default any), returning Promises.
   * `options.timeoutMs` is the deadline of each call (default: the runtime's `callTimeoutMs`).
   */
  remote<T extends object>(target: EbbDefinition<T> | EbbRef<T>, nodeId: number, core: number = ANY_CORE, options: CallOptions = {}): RemoteRef<T> {
    const [definition, id] = this.#resolveTarget(target);
    const timeoutMs = this.#timeoutOf(options);
    const ref = this.#forwarding(
      definition,
      (_method, code) =>
        (...args) =>
          this.callNode(nodeId, core, id, code, args, timeoutMs),
    );
    return Object.freeze(Object.assign(ref, { $id: id })) as unknown as RemoteRef<T>;
  }

  /** A ref whose calls run on `core` of this node (EbbRT's SpawnRemote, as "call this method there"); `options` as for {@link remote}. */
  onCore<T extends object>(target: EbbDefinition<T> | EbbRef<T>, core: number, options: CallOptions = {}): RemoteRef<T> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const timeoutMs = this.#timeoutOf(options);
    const ref = this.#forwarding(
      definition,
      (_method, code) =>
        (...args) =>
          this.#callCore(core, id, code, args, timeoutMs),
    );
    return Object.freeze(Object.assign(ref, { $id: id })) as unknown as RemoteRef<T>;
  }

  #timeoutOf(options: CallOptions): number {
    if (options === null || typeof options !== 'object') throw new TypeError('call options must be an object like { timeoutMs: 5000 }');
    const { timeoutMs } = options;
    if (timeoutMs === undefined) return this.callTimeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0)
      throw new TypeError(`options.timeoutMs must be a positive integer (milliseconds), got ${String(timeoutMs)}`);
    return timeoutMs;
  }

  /** Calls `method` of the Ebb's rep on `core` of this node (EbbRT's SpawnRemote, as a method call: closures cannot cross threads). */
  spawnOn<T extends object, K extends MethodName<T>>(
    core: number,
    target: EbbDefinition<T> | EbbRef<T>,
    method: K,
    ...args: Parameters<Extract<T[K], (...a: never[]) => unknown>>
  ): Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(noSuchMethod(definition, method));
    return this.#callCore(core, id, code, args, this.callTimeoutMs) as Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>>;
  }

  /** Runs `method` of the Ebb's rep on every core of this node; results in core order (multicore roots use this to enumerate reps). */
  eachCore<T extends object, R = unknown>(target: EbbDefinition<T> | EbbRef<T>, method: string, ...args: unknown[]): Promise<R[]> {
    const [definition, id] = this.#resolveTarget(target);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(noSuchMethod(definition, method));
    const results: Promise<unknown>[] = [];
    for (let core = 0; core < this.cores; core++) results.push(this.#callCore(core, id, code, args, this.callTimeoutMs));
    return Promise.all(results) as Promise<R[]>;
  }

  /** Sends a one-way message to the Ebb's rep on node `nodeId`; it arrives at `rep.onMessage(msg, from)`. */
  // biome-ignore lint/suspicious/noExplicitAny: any Ebb type: its method names (a keyof of T) vary invariantly, so `object` would refuse them.
  async send<M>(target: EbbDefinition<any, M> | EbbRef<object>, nodeId: number, message: NoInfer<M>, core: number = ANY_CORE): Promise<void> {
    const [definition, id] = this.#resolveTarget(target);
    if (nodeId === this.nodeId) {
      this.messenger.sendCore(core === ANY_CORE ? this.core : core, id, message, { nodeId: this.nodeId, core: this.core });
      return;
    }
    await this.messenger.send(nodeId, core, id, definition.messageCode, message);
  }

  /**
   * Creates a dynamic Ebb: a fresh global id from this node's id space, recorded
   * in the GlobalIdMap with its type (and owner, for `home` Ebbs: default this node),
   * so any node can fault it in by id.
   */
  async createEbb<T extends object>(definition: EbbDefinition<T>, options: { home?: number } = {}): Promise<EbbRef<T>> {
    const id = await this.links.allocateId();
    const record: EbbRecord = { type: definition.name };
    if (definition.policy === 'home') record.home = options.home ?? this.nodeId;
    await this.idMap.set(id, encodeValue(record));
    return this.ref(definition, id);
  }

  /** Calls method `code` of `ebbId` on (`nodeId`, `core`), wherever that is; rejects with a TimeoutError at `timeoutMs`. */
  callNode(nodeId: number, core: number, ebbId: EbbId, code: number, args: readonly unknown[], timeoutMs = this.callTimeoutMs): Promise<unknown> {
    if (nodeId === this.nodeId) {
      if (core === ANY_CORE || core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
      return this.#callCore(core, ebbId, code, args, timeoutMs);
    }
    return this.messenger.call(nodeId, core, ebbId, code, args, timeoutMs, this.#ledger.outgoing(ebbId, true, this.#defs.has(ebbId)));
  }

  /**
   * How errors name an Ebb (`Counter (0xb689)`) or, with `code`, one of its
   * methods (`Counter.add`): by its definition on this core, else by id.
   */
  describe(ebbId: EbbId, code?: number): string {
    const definition = this.#defs.get(ebbId);
    const hex = `0x${ebbId.toString(16)}`;
    if (code === undefined) return definition === undefined ? `Ebb ${hex}` : `${definition.name} (${hex})`;
    const method = definition?.byCode.get(code);
    if (definition === undefined) return `Ebb ${hex} method 0x${code.toString(16)}`;
    return `${definition.name}.${method ?? `0x${code.toString(16)}`}`;
  }

  /** True if this core has a definition bound to `ebbId` (calls to it are counted per Ebb). */
  isDefined(ebbId: EbbId): boolean {
    return this.#defs.has(ebbId);
  }

  /**
   * This core's counters and, for every Ebb it holds a rep of or has counted
   * calls for, the rep's kind and the Ebb's call statistics (cumulative): what a
   * native ships in its heartbeat (PROTOCOL.md §5.4) and the frontend's metrics read.
   */
  snapshot(): CoreSnapshot {
    const ebbs: EbbSnapshot[] = [];
    for (const id of new Set([...this.#table.ids, ...this.#ledger.ids()])) {
      const definition = this.#defs.get(id);
      const rep = this.lookup(id) as Rep | undefined;
      const proxy = rep === undefined ? undefined : this.#proxyKinds.get(rep);
      const stats = this.#ledger.peek(id) ?? new EbbCallStats();
      ebbs.push({
        id,
        name: definition?.name ?? '',
        policy: definition?.policy ?? '',
        rep: rep === undefined ? RepKind.none : (proxy?.kind ?? RepKind.local),
        repNode: proxy?.node ?? (rep === undefined ? 0 : this.nodeId),
        crossCoreCalls: stats.crossCoreCalls,
        crossCoreErrors: stats.crossCoreErrors,
        remoteCalls: stats.remoteCalls,
        remoteErrors: stats.remoteErrors,
        servedCalls: stats.servedCalls,
        servedErrors: stats.servedErrors,
        latency: stats.latency.toSparse(),
        servedLatency: stats.servedLatency.toSparse(),
      });
    }
    return { core: this.core, ...this.stats, ebbs };
  }

  #callCore(core: number, ebbId: EbbId, code: number, args: readonly unknown[], timeoutMs: number): Promise<unknown> {
    if (core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
    return this.messenger.callCore(core, ebbId, code, args, timeoutMs, this.#ledger.outgoing(ebbId, false, this.#defs.has(ebbId)));
  }

  #checkCore(core: number): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.cores) {
      throw new RangeError(`core must be an integer in 0..${this.cores - 1} on node ${this.nodeId}, got ${core}`);
    }
  }

  #resolveTarget<T extends object>(target: EbbDefinition<T> | EbbRef<T>): [EbbDefinition, EbbId] {
    if ('$id' in target) {
      const definition = this.#defs.get(target.$id);
      if (!definition) throw new UnknownEbbError(`no definition bound to Ebb 0x${target.$id.toString(16)} on this core`);
      return [definition, target.$id];
    }
    const definition = target as unknown as EbbDefinition;
    this.#bind(definition.staticId, definition);
    return [definition, definition.staticId];
  }

  #bind(id: EbbId, definition: EbbDefinition): void {
    const bound = this.#defs.get(id);
    if (bound && bound !== definition) throw new UnknownEbbError(`${this.describe(id)} is a ${bound.name}, not a ${definition.name}`);
    this.#defs.set(id, definition);
  }

  // ---- translation table and faults ----

  /** This core's rep of `id`, if it has been faulted in. */
  lookup(id: EbbId): object | undefined {
    return this.#table.lookup(id);
  }

  #install(id: EbbId, rep: Rep): Rep {
    this.#table.install(id, rep);
    this.#rebind(id);
    return rep;
  }

  /**
   * Points this core's ref of `id` at the table's current rep (its methods
   * call it straight away), or at none (they fault it in). The table stays the
   * source of truth: every install and evict rebinds.
   */
  #rebind(id: EbbId): void {
    const ref = this.#refs.get(id) as unknown as LocalRef | undefined;
    if (!ref) return;
    const rep = this.lookup(id);
    // Stored only while there is a rep, never as undefined: a field that held
    // undefined first keeps a generalized type, and V8 no longer inlines
    // through it (3 ns a call instead of 1 in bench rpc: local_call_ns).
    if (rep !== undefined) ref[REP] = rep;
    else delete ref[REP];
  }

  /**
   * This core's rep behind `ref`, faulted in if needed (EbbRT's `ebb->`). On a
   * node that does not own the state this is a proxy; owners get the real object.
   */
  localRep<T extends object>(ref: EbbRef<T>): T {
    return ((this.lookup(ref.$id) as Rep | undefined) ?? this.#fault(ref.$id)) as unknown as T;
  }

  /** Drops this core's rep of `id` (next touch faults again). */
  evict(id: EbbId): void {
    this.#table.evict(id);
    this.#rebind(id);
  }

  /** Translation-table miss: ask the Ebb's policy for this core's rep. */
  #fault(id: EbbId): Rep {
    const definition = this.#defs.get(id);
    if (!definition)
      throw new UnknownEbbError(
        `Ebb 0x${id.toString(16)} has no definition on node ${this.nodeId}; does its app module import the module that defines the Ebb?`,
      );
    this.stats.faults++;
    const ctx: RepContext = { id, runtime: this };
    switch (definition.policy) {
      case 'multicore':
        return this.#install(id, definition.create!(ctx) as Rep);
      case 'shared':
        return this.#install(id, this.core === 0 ? (definition.create!(ctx) as Rep) : this.#coreProxy(definition, id, 0));
      case 'home': {
        const owner = this.#knownOwner(definition, id);
        if (owner !== undefined) return this.#install(id, this.#homeRep(definition, id, owner, ctx));
        return this.#install(
          id,
          this.#pendingProxy(
            definition,
            id,
            this.#findOwner(definition, id).then((o) => this.#homeRep(definition, id, o, ctx)),
          ),
        );
      }
      case 'custom': {
        const rep = definition.fault!(ctx);
        if (rep instanceof Promise) return this.#install(id, this.#pendingProxy(definition, id, rep as Promise<Rep>));
        return this.#install(id, rep as Rep);
      }
    }
  }

  #homeRep(definition: EbbDefinition, id: EbbId, owner: number, ctx: RepContext): Rep {
    if (owner !== this.nodeId) return this.#remoteProxy(definition, id, owner);
    return this.core === 0 ? (definition.create!(ctx) as Rep) : this.#coreProxy(definition, id, 0);
  }

  /** The owner of a `home` Ebb if it is known without asking (static hosted-homed, or cached) and still a member. */
  #knownOwner(definition: EbbDefinition, id: EbbId): number | undefined {
    const entry = this.idMap.peek(id);
    if (entry) {
      const home = (decodeValue(entry.value) as EbbRecord).home;
      // A departed owner is not an answer: the asynchronous path re-homes or fails.
      return home !== undefined && !this.#departed.has(home) ? home : undefined;
    }
    if (id === definition.staticId && (definition.home ?? 'hosted') === 'hosted') return HOSTED_NODE_ID;
    return undefined;
  }

  async #findOwner(definition: EbbDefinition, id: EbbId): Promise<number> {
    const entry = await this.idMap.get(id);
    if (entry) {
      const home = (decodeValue(entry.value) as EbbRecord).home;
      if (home !== undefined) return this.#departed.has(home) ? this.#rehome(definition, id, entry) : home;
    }
    if (definition.home === 'first') {
      const claim = await this.idMap.cas(id, 0, encodeValue({ type: definition.name, home: this.nodeId } satisfies EbbRecord));
      const home = claim.entry ? (decodeValue(claim.entry.value) as EbbRecord).home : undefined;
      if (home !== undefined) return home;
    }
    return HOSTED_NODE_ID;
  }

  /**
   * The owner of a `home` Ebb left the cluster. With `rehome: true` this node
   * claims it (compare-and-set on the record's version, so one claimant wins
   * and the others follow the winner) and builds a fresh rep: the dead owner's
   * state is gone. Otherwise every call fails with a NodeUnavailableError
   * naming the dead owner.
   */
  async #rehome(definition: EbbDefinition, id: EbbId, entry: IdMapEntry): Promise<number> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const record = decodeValue(entry.value) as EbbRecord;
      if (record.home !== undefined && !this.#departed.has(record.home)) return record.home;
      if (!definition.rehome) {
        throw new NodeUnavailableError(
          `${definition.name} (Ebb 0x${id.toString(16)}) is homed on node ${record.home}, which left the cluster; its state is gone and the definition does not allow re-homing (set rehome: true in defineEbb to elect a new owner on the next fault)`,
          { data: { ebbId: id, owner: record.home } },
        );
      }
      const claim = await this.idMap.cas(id, entry.version, encodeValue({ ...record, home: this.nodeId } satisfies EbbRecord));
      if (claim.ok) return this.nodeId;
      if (!claim.entry) break;
      entry = claim.entry;
    }
    throw new NodeUnavailableError(`could not re-home ${definition.name} (Ebb 0x${id.toString(16)}): its GlobalIdMap record kept changing; retry the call`);
  }

  /** A stand-in while the real rep is being resolved; it replaces itself once resolved. */
  #pendingProxy(definition: EbbDefinition, id: EbbId, resolving: Promise<Rep>): Rep {
    const proxy: Rep = {};
    this.#proxyKinds.set(proxy, { kind: RepKind.pending, node: 0 });
    resolving.then(
      (rep) => {
        if (this.lookup(id) === proxy) this.#install(id, rep);
      },
      () => {
        if (this.lookup(id) === proxy) this.evict(id);
      },
    );
    for (const method of [...definition.methods, 'onMessage']) {
      proxy[method] = (...args: unknown[]) => resolving.then((rep) => rep[method](...args));
    }
    return proxy;
  }

  #remoteProxy(definition: EbbDefinition, id: EbbId, nodeId: number): Rep {
    const proxy = this.#forwarding(
      definition,
      (_method, code) =>
        (...args) =>
          this.callNode(nodeId, ANY_CORE, id, code, args),
    );
    this.#proxyKinds.set(proxy, { kind: RepKind.remoteProxy, node: nodeId });
    proxy.onMessage = (message: unknown) => this.messenger.send(nodeId, ANY_CORE, id, definition.messageCode, message);
    return proxy;
  }

  #coreProxy(definition: EbbDefinition, id: EbbId, core: number): Rep {
    const proxy = this.#forwarding(
      definition,
      (_method, code) =>
        (...args) =>
          this.#callCore(core, id, code, args, this.callTimeoutMs),
    );
    this.#proxyKinds.set(proxy, { kind: RepKind.coreProxy, node: this.nodeId });
    proxy.onMessage = (message: unknown, from: unknown) => this.messenger.sendCore(core, id, message, from as MessageSource);
    return proxy;
  }

  /** An object with one function per method of `definition`, each built by `make` from the method's wire code. */
  #forwarding(definition: EbbDefinition, make: (method: string, code: number) => (...args: unknown[]) => unknown): Rep {
    const forwarder: Rep = {};
    for (const method of definition.methods) forwarder[method] = make(method, definition.codes[method]);
    return forwarder;
  }

  // ---- incoming work ----

  /**
   * Runs method `code` of this core's rep of `ebbId`, faulting the rep in if
   * this core never touched it (EbbRT's remote fault). Returns the method's
   * result (a value or a Promise).
   */
  invoke(ebbId: EbbId, code: number, args: readonly unknown[]): unknown {
    const rep = this.lookup(ebbId) as Rep | undefined;
    const definition = this.#defs.get(ebbId);
    if (rep && definition) return this.#apply(definition, rep, ebbId, code, args);
    return this.#definitionFor(ebbId).then((def) => this.#apply(def, (this.lookup(ebbId) as Rep | undefined) ?? this.#fault(ebbId), ebbId, code, args));
  }

  #apply(definition: EbbDefinition, rep: Rep, ebbId: EbbId, code: number, args: readonly unknown[]): unknown {
    const method = definition.byCode.get(code);
    if (method === undefined || typeof rep[method] !== 'function') {
      throw new UnknownMethodError(
        `${this.describe(ebbId)} has no method with code 0x${code.toString(16)} on node ${this.nodeId}; are both sides running the same app version?`,
      );
    }
    return rep[method](...args);
  }

  /** The definition of an Ebb first seen from the network: static registry, else its GlobalIdMap record. */
  async #definitionFor(ebbId: EbbId): Promise<EbbDefinition> {
    const bound = this.#defs.get(ebbId);
    if (bound) return bound;
    let definition = definitionByStaticId(ebbId);
    if (!definition && ebbId >= 0x10000) {
      const entry = await this.idMap.get(ebbId);
      const record = entry ? (decodeValue(entry.value) as EbbRecord) : undefined;
      if (record?.type) definition = definitionByName(record.type);
      if (record && !definition)
        throw new UnknownEbbError(
          `Ebb 0x${ebbId.toString(16)} is a ${record.type}, which node ${this.nodeId} does not define; load the app module that defines it`,
        );
    }
    if (!definition)
      throw new UnknownEbbError(
        `node ${this.nodeId} knows no Ebb 0x${ebbId.toString(16)}: no module loaded there defines it; does the app module that node runs (native.js on a native) import the module that defines the Ebb?`,
        { data: { ebbId, nodeId: this.nodeId } },
      );
    this.#bind(ebbId, definition);
    return definition;
  }

  /** Delivers a one-way message to this core's rep (faulting it in). Errors are counted and reported, never thrown at the sender. */
  deliver(ebbId: EbbId, message: unknown, from: MessageSource): void {
    this.stats.messages++;
    const run = (definition: EbbDefinition) => {
      const rep = (this.lookup(ebbId) as Rep | undefined) ?? this.#fault(ebbId);
      if (typeof rep.onMessage !== 'function') throw new UnknownMethodError(`${definition.name} reps have no onMessage`);
      return rep.onMessage(message, from);
    };
    Promise.resolve()
      .then(() => this.#definitionFor(ebbId))
      .then(run)
      .catch((error: unknown) => this.messageFailed(error, ebbId));
  }

  /** Counts and reports a message that could not be delivered. */
  messageFailed(error: unknown, ebbId: EbbId): void {
    this.stats.servedErrors++;
    this.#onMessageError?.(error, ebbId);
  }

  /**
   * Applies the frontend's membership update (PROTOCOL.md §5.4): joined nodes become reachable,
   * suspected ones fail calls at once until reinstated, departed ones are forgotten.
   */
  membership(update: MembershipUpdate): void {
    for (const peer of update.joined) this.messenger.addPeer(peer);
    for (const nodeId of update.suspected ?? []) this.messenger.suspect(nodeId);
    for (const nodeId of update.reinstated ?? []) this.messenger.reinstate(nodeId);
    for (const nodeId of update.left) this.nodeLeft(nodeId);
  }

  /** Fails every call in flight to `nodeId` and forgets it (membership said it left or died). */
  nodeLeft(nodeId: number, reason?: NodeUnavailableError): void {
    this.messenger.removePeer(nodeId, reason ?? new NodeUnavailableError(`node ${nodeId} left the cluster`));
    this.#departed.add(nodeId);
    // Proxies to `home` Ebbs it owned go, so the next call faults: re-homed, or failed naming the dead owner.
    for (const id of this.#table.ids) {
      const rep = this.lookup(id) as Rep | undefined;
      const proxy = rep === undefined ? undefined : this.#proxyKinds.get(rep);
      if (proxy?.kind === RepKind.remoteProxy && proxy.node === nodeId && this.#defs.get(id)?.policy === 'home') this.evict(id);
    }
  }
}

const REP = Symbol('rep');
const FAULT = Symbol('fault');

/** A local ref: `$id`, the rep its methods call (undefined: fault it in first), and how to fault it in. */
interface LocalRef {
  readonly $id: EbbId;
  [REP]?: object;
  readonly [FAULT]: () => Rep;
}

const localRefClasses = new WeakMap<EbbDefinition, new (id: EbbId, fault: () => Rep) => LocalRef>();

/**
 * The class of an Ebb type's local refs, generated once per definition: each
 * method calls the bound rep's method of the same name (a constant name, so an
 * ordinary property load), or faults the rep in first. Code of its own per
 * type is what lets V8 inline a ref call like a direct call even where one
 * call site sees several Ebb types (bench rpc: local_megamorphic_call_ns;
 * forwarders made from one shared closure cost 4-10x a direct call there).
 * Method names come from the definition and are embedded as JSON strings.
 */
function localRefClass(definition: EbbDefinition): new (id: EbbId, fault: () => Rep) => LocalRef {
  let LocalRef = localRefClasses.get(definition);
  if (LocalRef) return LocalRef;
  const methods = definition.methods.map((method) => {
    const name = JSON.stringify(method);
    return `[${name}](...args) { const rep = this[REP]; if (rep !== undefined) return rep[${name}](...args); return this[FAULT]()[${name}](...args); }`;
  });
  const className = `${definition.name.replace(/[^\w$]/g, '_')}Ref`;
  LocalRef = new Function(
    'REP',
    'FAULT',
    `return class ${className} {
    constructor(id, fault) { Object.defineProperty(this, '$id', { value: id, enumerable: true }); this[FAULT] = fault; }
    ${methods.join('\n    ')}
  };`,
  )(REP, FAULT) as new (
    id: EbbId,
    fault: () => Rep,
  ) => LocalRef;
  localRefClasses.set(definition, LocalRef);
  return LocalRef;
}

function noSuchMethod(definition: EbbDefinition, method: string): UnknownMethodError {
  return new UnknownMethodError(`${definition.name} has no method ${method}`);
}
