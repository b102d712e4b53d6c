/**
 * The Ebb runtime of one core: its translation table, the fault path that
 * builds reps by policy, refs, remote and cross-core calls, and dispatch of
 * what arrives from the network. One instance per core (per worker thread on
 * a native; the main thread is core 0 of the frontend).
 */
import { EbbCallStats, RepKind, type CoreSnapshot, type EbbSnapshot, type RuntimeStats } from './call-stats.js';
import { decodeArgs, decodeValue, encodeValue } from './codec.js';
import type { Connection } from './connection.js';
import type { ControlMessage, Peer } from './control.js';
import { definitionByName, definitionByStaticId, type EbbDefinition, type EbbRef, type MessageSource, type MethodName, type RemoteRef, type RepContext } from './ebb.js';
import { NodeUnavailableError, UnknownEbbError, UnknownMethodError } from './errors.js';
import { ANY_CORE, FrameFlags, type Frame } from './frame.js';
import type { GlobalIdMap, IdMapEntry, RemoteGlobalIdMap } from './global-id-map.js';
import { isEbbId, type EbbId } from './ids.js';
import type { LocalIdMap } from './local-id-map.js';
import type { Messenger, MessengerSink } from './messenger.js';

/** The frontend's node id. */
export const HOSTED_NODE_ID = 1;

/** How a core reaches the other cores of its node (worker MessagePorts on a native). */
export interface CoreLinks {
  /** Number of cores of this node. */
  readonly cores: number;
  /** Invokes method `code` of Ebb `ebbId` on `core` of this node (EbbRT's SpawnRemote). */
  call(core: number, ebbId: EbbId, code: number, args: readonly unknown[]): Promise<unknown>;
  /** Delivers a one-way message to `core`'s rep of `ebbId`. */
  message(core: number, ebbId: EbbId, payload: Buffer, from: MessageSource): void;
  /** A fresh global id from this node's id space (node-wide, so two cores never get the same). */
  allocateId(): Promise<EbbId>;
  /** The node-wide LocalIdMap every core of this node shares. */
  readonly localIdMap: LocalIdMap;
}

export type { RuntimeStats } from './call-stats.js';

/** Options of {@link EbbRuntime}. */
export interface EbbRuntimeOptions {
  nodeId: number;
  core: number;
  /** Address other nodes reach this node at (`host:port`), for display. */
  address: string;
  messenger: Messenger;
  idMap: GlobalIdMap;
  links: CoreLinks;
  /** Default deadline of remote and cross-core calls, ms. Default 30000. */
  callTimeoutMs?: number;
}

/** What the GlobalIdMap records for a dynamically created Ebb. */
interface EbbRecord {
  type: string;
  home?: number;
}

type Rep = Record<string, (...args: unknown[]) => unknown>;

export class EbbRuntime implements MessengerSink {
  readonly nodeId: number;
  readonly core: number;
  readonly address: string;
  readonly messenger: Messenger;
  readonly idMap: GlobalIdMap;
  readonly links: CoreLinks;
  readonly callTimeoutMs: number;
  readonly stats: RuntimeStats = { faults: 0, remoteCalls: 0, crossCoreCalls: 0, servedCalls: 0, servedErrors: 0, messages: 0 };
  /** Translation table: dense array for ids below 0x10000, a Map above (never string keys). */
  // Preallocated: assigning index 0x8000+ into an empty array would turn it into a
  // slow dictionary-mode array (measured: 19 ns vs 4 ns per table lookup, bench rpc).
  readonly #low: (Rep | undefined)[] = new Array(0x10000).fill(undefined);
  readonly #high = new Map<EbbId, Rep>();
  readonly #defs = new Map<EbbId, EbbDefinition>();
  readonly #refs = new Map<EbbId, EbbRef<object>>();
  /**
   * Nodes membership reported gone. Node ids are never reused, so a `home` Ebb recorded on one of
   * these has lost its owner (a node merely not heard of yet, e.g. one that just joined, is not in here).
   */
  readonly #departed = new Set<number>();
  /** Per-Ebb call counters and latency (DESIGN §7), only for Ebbs with a definition on this core. */
  readonly #callStats = new Map<EbbId, EbbCallStats>();
  /** Ids in this core's translation table, for {@link snapshot} (the dense table is not scanned). */
  readonly #repIds = new Set<EbbId>();
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
    options.messenger.sink = this;
  }

  /** Number of cores of this node. */
  get cores(): number {
    return this.links.cores;
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
  ref<T extends object>(definition: EbbDefinition<T, any>, id: EbbId = definition.staticId): EbbRef<T> {
    const cached = this.#refs.get(id);
    // A cached ref of another type falls through to #bind, which refuses the mismatch.
    if (cached && this.#defs.get(id) === (definition as unknown as EbbDefinition)) return cached as EbbRef<T>;
    if (!isEbbId(id)) throw new TypeError(`Ebb id must be an unsigned 32-bit integer, got ${id}`);
    this.#bind(id, definition as unknown as EbbDefinition);
    const ref: Record<string, unknown> = {};
    Object.defineProperty(ref, '$id', { value: id, enumerable: true });
    this.#refs.set(id, ref as EbbRef<object>);
    this.#rebind(id);
    return ref as EbbRef<T>;
  }

  /** A ref whose calls all go to node `nodeId` (and `core`, default any), returning Promises. */
  remote<T extends object>(target: EbbDefinition<T, any> | EbbRef<T>, nodeId: number, core: number = ANY_CORE): RemoteRef<T> {
    const [definition, id] = this.#resolveTarget(target);
    const ref = this.#forwarding(definition, (method, code) => {
      const flags = definition.idempotent?.includes(method as never) ? FrameFlags.idempotent : 0;
      return (...args) => this.callNode(nodeId, core, id, code, args, flags);
    });
    return Object.freeze(Object.assign(ref, { $id: id })) as unknown as RemoteRef<T>;
  }

  /** A ref whose calls run on `core` of this node (EbbRT's SpawnRemote, as "call this method there"). */
  onCore<T extends object>(target: EbbDefinition<T, any> | EbbRef<T>, core: number): RemoteRef<T> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const ref = this.#forwarding(definition, (_method, code) => (...args) => this.#callCore(core, id, code, args));
    return Object.freeze(Object.assign(ref, { $id: id })) as unknown as RemoteRef<T>;
  }

  /** Calls `method` of the Ebb's rep on `core` of this node (EbbRT's SpawnRemote, as a method call: closures cannot cross threads). */
  spawnOn<T extends object, K extends MethodName<T>>(core: number, target: EbbDefinition<T, any> | EbbRef<T>, method: K, ...args: Parameters<Extract<T[K], (...a: never[]) => unknown>>): Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(noSuchMethod(definition, method));
    return this.#callCore(core, id, code, args) as Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>>;
  }

  /** Runs `method` of the Ebb's rep on every core of this node; results in core order (multicore roots use this to enumerate reps). */
  eachCore<T extends object, R = unknown>(target: EbbDefinition<T, any> | EbbRef<T>, method: string, ...args: unknown[]): Promise<R[]> {
    const [definition, id] = this.#resolveTarget(target);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(noSuchMethod(definition, method));
    const results: Promise<unknown>[] = [];
    for (let core = 0; core < this.cores; core++) results.push(this.#callCore(core, id, code, args));
    return Promise.all(results) as Promise<R[]>;
  }

  /** Sends a one-way message to the Ebb's rep on node `nodeId`; it arrives at `rep.onMessage(msg, from)`. */
  async send<M>(target: EbbDefinition<any, M> | EbbRef<object>, nodeId: number, message: NoInfer<M>, core: number = ANY_CORE): Promise<void> {
    const [definition, id] = this.#resolveTarget(target);
    const payload = encodeValue(message);
    if (nodeId === this.nodeId) {
      const dest = core === ANY_CORE ? this.core : core;
      if (dest === this.core) this.#deliver(id, payload, { nodeId: this.nodeId, core: this.core });
      else this.links.message(dest, id, payload, { nodeId: this.nodeId, core: this.core });
      return;
    }
    await this.messenger.send(nodeId, core, id, definition.messageCode, payload);
  }

  /**
   * Creates a dynamic Ebb: a fresh global id from this node's id space, recorded
   * in the GlobalIdMap with its type (and owner, for `home` Ebbs: default this node),
   * so any node can fault it in by id.
   */
  async createEbb<T extends object>(definition: EbbDefinition<T, any>, options: { home?: number } = {}): Promise<EbbRef<T>> {
    const id = await this.links.allocateId();
    const record: EbbRecord = { type: definition.name };
    if (definition.policy === 'home') record.home = options.home ?? this.nodeId;
    await this.idMap.set(id, encodeValue(record));
    return this.ref(definition, id);
  }

  /** Calls method `code` of `ebbId` on (`nodeId`, `core`), wherever that is. */
  callNode(nodeId: number, core: number, ebbId: EbbId, code: number, args: readonly unknown[], flags = 0, timeoutMs = this.callTimeoutMs): Promise<unknown> {
    if (nodeId === this.nodeId) {
      if (core === ANY_CORE || core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
      return this.#callCore(core, ebbId, code, args);
    }
    this.stats.remoteCalls++;
    const call = this.messenger.call(nodeId, core, ebbId, code, args, timeoutMs, flags);
    return this.#defs.has(ebbId) ? this.#timed(call, ebbId, true) : call;
  }

  /**
   * Counts a call leaving this core and records its latency when it succeeds.
   * Only cross-core and remote calls come here (microseconds each); the local
   * ref path is never measured.
   */
  #timed(call: Promise<unknown>, ebbId: EbbId, remote: boolean): Promise<unknown> {
    const stats = this.#statsOf(ebbId);
    if (remote) stats.remoteCalls++;
    else stats.crossCoreCalls++;
    const started = performance.now();
    return call.then(
      (value) => {
        stats.latency.record(performance.now() - started);
        return value;
      },
      (error: unknown) => {
        if (remote) stats.remoteErrors++;
        else stats.crossCoreErrors++;
        throw error;
      },
    );
  }

  #statsOf(ebbId: EbbId): EbbCallStats {
    let stats = this.#callStats.get(ebbId);
    if (stats === undefined) this.#callStats.set(ebbId, (stats = new EbbCallStats()));
    return stats;
  }

  /** Runs a call another core of this node handed over (EbbRT's SpawnRemote target), counted as served here. */
  invokeFromCore(ebbId: EbbId, code: number, args: readonly unknown[]): Promise<unknown> {
    this.stats.servedCalls++;
    const started = performance.now();
    return Promise.resolve()
      .then(() => this.invoke(ebbId, code, args))
      .then(
        (value) => {
          this.#served(ebbId, started, false);
          return value;
        },
        (error: unknown) => {
          this.stats.servedErrors++;
          this.#served(ebbId, started, true);
          throw error;
        },
      );
  }

  /** Records a call served here; ids straight from the network count only once they have a definition (they must not grow the map). */
  #served(ebbId: EbbId, started: number, failed: boolean): void {
    if (!this.#defs.has(ebbId)) return;
    const stats = this.#statsOf(ebbId);
    stats.servedCalls++;
    if (failed) stats.servedErrors++;
    stats.servedLatency.record(performance.now() - started);
  }

  /**
   * This core's counters and, for every Ebb it holds a rep of or has counted
   * calls for, the rep's kind and the Ebb's call statistics (cumulative): what a
   * native ships in its heartbeat (PROTOCOL.md §5.4) and the frontend's metrics read.
   */
  snapshot(): CoreSnapshot {
    const ebbs: EbbSnapshot[] = [];
    for (const id of new Set([...this.#repIds, ...this.#callStats.keys()])) {
      const definition = this.#defs.get(id);
      const rep = this.lookup(id) as Rep | undefined;
      const proxy = rep === undefined ? undefined : this.#proxyKinds.get(rep);
      const stats = this.#callStats.get(id) ?? new EbbCallStats();
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

  #callCore(core: number, ebbId: EbbId, code: number, args: readonly unknown[]): Promise<unknown> {
    if (core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
    this.stats.crossCoreCalls++;
    const call = this.links.call(core, ebbId, code, args);
    return this.#defs.has(ebbId) ? this.#timed(call, ebbId, false) : call;
  }

  #checkCore(core: number): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.cores) {
      throw new RangeError(`core must be an integer in 0..${this.cores - 1} on node ${this.nodeId}, got ${core}`);
    }
  }

  #resolveTarget<T extends object>(target: EbbDefinition<T, any> | EbbRef<T>): [EbbDefinition, EbbId] {
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
    if (bound && bound !== definition) throw new UnknownEbbError(`Ebb 0x${id.toString(16)} is a ${bound.name}, not a ${definition.name}`);
    this.#defs.set(id, definition);
  }

  // ---- translation table and faults ----

  /** This core's rep of `id`, if it has been faulted in. */
  lookup(id: EbbId): object | undefined {
    return id < 0x10000 ? this.#low[id] : this.#high.get(id);
  }

  #install(id: EbbId, rep: Rep): Rep {
    if (id < 0x10000) this.#low[id] = rep;
    else this.#high.set(id, rep);
    this.#repIds.add(id);
    this.#rebind(id);
    return rep;
  }

  /**
   * Points the methods of this core's ref of `id` at the table's current rep:
   * straight to the rep once it is faulted in, else to a stub that faults.
   * The table stays the source of truth (every install/evict rebinds); binding
   * the rep into the ref's closures lets V8 inline a ref call into the caller
   * like a direct call (bench rpc, local_call_ns: 4 ns with a table load per
   * call, same as a direct call when bound).
   */
  #rebind(id: EbbId): void {
    const ref = this.#refs.get(id) as Record<string, unknown> | undefined;
    const definition = this.#defs.get(id);
    if (!ref || !definition) return;
    const rep = this.lookup(id) as Rep | undefined;
    for (const method of definition.methods) {
      ref[method] = rep ? (...args: unknown[]) => rep[method](...args) : (...args: unknown[]) => ((this.lookup(id) as Rep | undefined) ?? this.#fault(id))[method](...args);
    }
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
    if (id < 0x10000) this.#low[id] = undefined;
    else this.#high.delete(id);
    this.#repIds.delete(id);
    this.#rebind(id);
  }

  /** Translation-table miss: ask the Ebb's policy for this core's rep. */
  #fault(id: EbbId): Rep {
    const definition = this.#defs.get(id);
    if (!definition) throw new UnknownEbbError(`Ebb 0x${id.toString(16)} has no definition on node ${this.nodeId}`);
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
        return this.#install(id, this.#pendingProxy(definition, id, this.#findOwner(definition, id).then((o) => this.#homeRep(definition, id, o, ctx))));
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
    const proxy = this.#forwarding(definition, (_method, code) => (...args) => this.callNode(nodeId, ANY_CORE, id, code, args));
    this.#proxyKinds.set(proxy, { kind: RepKind.remoteProxy, node: nodeId });
    proxy.onMessage = (message: unknown) => this.messenger.send(nodeId, ANY_CORE, id, definition.messageCode, encodeValue(message));
    return proxy;
  }

  #coreProxy(definition: EbbDefinition, id: EbbId, core: number): Rep {
    const proxy = this.#forwarding(definition, (_method, code) => (...args) => this.#callCore(core, id, code, args));
    this.#proxyKinds.set(proxy, { kind: RepKind.coreProxy, node: this.nodeId });
    proxy.onMessage = (message: unknown, from: unknown) => this.links.message(core, id, encodeValue(message), from as MessageSource);
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
      throw new UnknownMethodError(`${definition.name} (Ebb 0x${ebbId.toString(16)}) has no method with code 0x${code.toString(16)} on node ${this.nodeId}; are both sides running the same app version?`);
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
      if (record && !definition) throw new UnknownEbbError(`Ebb 0x${ebbId.toString(16)} is a ${record.type}, which node ${this.nodeId} does not define; load the app module that defines it`);
    }
    if (!definition) throw new UnknownEbbError(`node ${this.nodeId} knows no Ebb 0x${ebbId.toString(16)}`);
    this.#bind(ebbId, definition);
    return definition;
  }

  /** Delivers a one-way message to this core's rep (faulting it in). Errors are counted, never thrown at the sender. */
  #deliver(ebbId: EbbId, payload: Buffer, from: MessageSource): void {
    this.stats.messages++;
    const run = (definition: EbbDefinition) => {
      const rep = (this.lookup(ebbId) as Rep | undefined) ?? this.#fault(ebbId);
      if (typeof rep.onMessage !== 'function') throw new UnknownMethodError(`${definition.name} reps have no onMessage`);
      return rep.onMessage(decodeValue(payload), from);
    };
    Promise.resolve()
      .then(() => this.#definitionFor(ebbId))
      .then(run)
      .catch((error) => {
        this.stats.servedErrors++;
        this.onMessageError?.(error, ebbId);
      });
  }

  /** Called when delivering a message failed (no rep, handler threw). */
  onMessageError?: (error: unknown, ebbId: EbbId) => void;

  /** Entry for cross-core message hand-over. */
  deliverMessage(ebbId: EbbId, payload: Buffer, from: MessageSource): void {
    this.#deliver(ebbId, payload, from);
  }

  // MessengerSink

  onCall(conn: Connection, frame: Frame): void {
    this.stats.servedCalls++;
    const started = performance.now();
    let result: unknown;
    try {
      const args = decodeArgs(frame.payload);
      result = frame.core === ANY_CORE || frame.core === this.core ? this.invoke(frame.ebbId, frame.code, args) : this.#handOver(frame, args);
    } catch (error) {
      this.stats.servedErrors++;
      this.#served(frame.ebbId, started, true);
      conn.replyError(frame, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => {
          this.#served(frame.ebbId, started, false);
          conn.reply(frame, value);
        },
        (error) => {
          this.stats.servedErrors++;
          this.#served(frame.ebbId, started, true);
          conn.replyError(frame, error);
        },
      );
    } else {
      this.#served(frame.ebbId, started, false);
      conn.reply(frame, result);
    }
  }

  #handOver(frame: Frame, args: unknown[]): Promise<unknown> {
    if (frame.core >= this.cores) throw new NodeUnavailableError(`node ${this.nodeId} has no core ${frame.core} (it runs ${this.cores})`);
    return this.links.call(frame.core, frame.ebbId, frame.code, args);
  }

  onMessage(conn: Connection, frame: Frame): void {
    const from = { nodeId: conn.peerNodeId, core: conn.peerCore };
    if (frame.core === ANY_CORE || frame.core === this.core) this.#deliver(frame.ebbId, frame.payload, from);
    else if (frame.core < this.cores) this.links.message(frame.core, frame.ebbId, Buffer.from(frame.payload), from);
  }

  /** Control frames on a messenger connection: GlobalIdMap notifications reach the id map client. */
  onControl(conn: Connection, message: ControlMessage, callId: number): void {
    if (message.type === 'idMapChanged' && 'changed' in this.idMap) (this.idMap as RemoteGlobalIdMap).changed(message.body);
    else this.onOtherControl?.(conn, message, callId);
  }

  /** Control frames the runtime does not handle itself (the frontend's id-map authority sets this). */
  onOtherControl?: (conn: Connection, message: ControlMessage, callId: number) => void;

  /** Fails every call in flight to `nodeId` and forgets it (membership said it left or died). */
  nodeLeft(nodeId: number, reason?: NodeUnavailableError): void {
    this.messenger.removePeer(nodeId, reason ?? new NodeUnavailableError(`node ${nodeId} left the cluster`));
    this.#departed.add(nodeId);
    // Proxies to `home` Ebbs it owned go, so the next call faults: re-homed, or failed naming the dead owner.
    for (const id of this.#repIds) {
      const rep = this.lookup(id) as Rep | undefined;
      const proxy = rep === undefined ? undefined : this.#proxyKinds.get(rep);
      if (proxy?.kind === RepKind.remoteProxy && proxy.node === nodeId && this.#defs.get(id)?.policy === 'home') this.evict(id);
    }
  }
}

function noSuchMethod(definition: EbbDefinition, method: string): UnknownMethodError {
  return new UnknownMethodError(`${definition.name} has no method ${method}`);
}
