/**
 * The Ebb runtime of one core: its translation table, the fault path that
 * builds reps by policy, refs, remote and cross-core calls, and dispatch of
 * what arrives from the network. One instance per core (per worker thread on
 * a native; the main thread is core 0 of the frontend).
 */
import { decodeArgs, decodeValue, encodeValue } from './codec.js';
import type { Connection } from './connection.js';
import type { ControlMessage, Peer } from './control.js';
import { definitionByName, definitionByStaticId, type EbbDefinition, type EbbRef, type MessageSource, type MethodName, type RemoteRef, type RepContext } from './ebb.js';
import { NodeUnavailableError, UnknownEbbError, UnknownMethodError } from './errors.js';
import { ANY_CORE, FrameFlags, type Frame } from './frame.js';
import type { GlobalIdMap, RemoteGlobalIdMap } from './global-id-map.js';
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

/** Where calls resolved: counted per core for metrics (DESIGN §7). */
export interface RuntimeStats {
  /** First touches of an Ebb on this core (translation-table misses). */
  faults: number;
  /** Calls this core sent to other nodes. */
  remoteCalls: number;
  /** Calls this core sent to other cores of its node. */
  crossCoreCalls: number;
  /** Calls that arrived from other nodes or cores and ran here. */
  servedCalls: number;
  /** Calls that arrived and ended in an error. */
  servedErrors: number;
  /** Messages delivered to reps on this core. */
  messages: number;
}

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
    const ref: Record<string, unknown> = { $id: id };
    for (const method of definition.methods) {
      const code = definition.codes[method];
      const flags = definition.idempotent?.includes(method as never) ? FrameFlags.idempotent : 0;
      ref[method] = (...args: unknown[]) => this.callNode(nodeId, core, id, code, args, flags);
    }
    return Object.freeze(ref) as RemoteRef<T>;
  }

  /** A ref whose calls run on `core` of this node (EbbRT's SpawnRemote, as "call this method there"). */
  onCore<T extends object>(target: EbbDefinition<T, any> | EbbRef<T>, core: number): RemoteRef<T> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const ref: Record<string, unknown> = { $id: id };
    for (const method of definition.methods) {
      const code = definition.codes[method];
      ref[method] = (...args: unknown[]) => this.#callCore(core, id, code, args);
    }
    return Object.freeze(ref) as RemoteRef<T>;
  }

  /** Calls `method` of the Ebb's rep on `core` of this node (EbbRT's SpawnRemote, as a method call: closures cannot cross threads). */
  spawnOn<T extends object, K extends MethodName<T>>(core: number, target: EbbDefinition<T, any> | EbbRef<T>, method: K, ...args: Parameters<Extract<T[K], (...a: never[]) => unknown>>): Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>> {
    const [definition, id] = this.#resolveTarget(target);
    this.#checkCore(core);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(new UnknownMethodError(`${definition.name} has no method ${method}`));
    return this.#callCore(core, id, code, args) as Promise<Awaited<ReturnType<Extract<T[K], (...a: never[]) => unknown>>>>;
  }

  /** Runs `method` of the Ebb's rep on every core of this node; results in core order (multicore roots use this to enumerate reps). */
  eachCore<T extends object, R = unknown>(target: EbbDefinition<T, any> | EbbRef<T>, method: string, ...args: unknown[]): Promise<R[]> {
    const [definition, id] = this.#resolveTarget(target);
    const code = definition.codes[method];
    if (code === undefined) return Promise.reject(new UnknownMethodError(`${definition.name} has no method ${method}`));
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
  callNode(nodeId: number, core: number, ebbId: EbbId, code: number, args: readonly unknown[], flags = 0): Promise<unknown> {
    if (nodeId === this.nodeId) {
      if (core === ANY_CORE || core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
      return this.#callCore(core, ebbId, code, args);
    }
    this.stats.remoteCalls++;
    return this.messenger.call(nodeId, core, ebbId, code, args, this.callTimeoutMs, flags);
  }

  #callCore(core: number, ebbId: EbbId, code: number, args: readonly unknown[]): Promise<unknown> {
    if (core === this.core) return Promise.resolve().then(() => this.invoke(ebbId, code, args));
    this.stats.crossCoreCalls++;
    return this.links.call(core, ebbId, code, args);
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

  /** The owner of a `home` Ebb if it is known without asking (static hosted-homed, or cached). */
  #knownOwner(definition: EbbDefinition, id: EbbId): number | undefined {
    const entry = this.idMap.peek(id);
    if (entry) return (decodeValue(entry.value) as EbbRecord).home;
    if (id === definition.staticId && (definition.home ?? 'hosted') === 'hosted') return HOSTED_NODE_ID;
    return undefined;
  }

  async #findOwner(definition: EbbDefinition, id: EbbId): Promise<number> {
    const entry = await this.idMap.get(id);
    if (entry) {
      const home = (decodeValue(entry.value) as EbbRecord).home;
      if (home !== undefined) return home;
    }
    if (definition.home === 'first') {
      const claim = await this.idMap.cas(id, 0, encodeValue({ type: definition.name, home: this.nodeId } satisfies EbbRecord));
      const home = claim.entry ? (decodeValue(claim.entry.value) as EbbRecord).home : undefined;
      if (home !== undefined) return home;
    }
    return HOSTED_NODE_ID;
  }

  /** A stand-in while the real rep is being resolved; it replaces itself once resolved. */
  #pendingProxy(definition: EbbDefinition, id: EbbId, resolving: Promise<Rep>): Rep {
    const proxy: Rep = {};
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
    const proxy: Rep = {};
    for (const method of definition.methods) {
      const code = definition.codes[method];
      proxy[method] = (...args: unknown[]) => this.callNode(nodeId, ANY_CORE, id, code, args);
    }
    proxy.onMessage = (message: unknown) => this.messenger.send(nodeId, ANY_CORE, id, definition.messageCode, encodeValue(message));
    return proxy;
  }

  #coreProxy(definition: EbbDefinition, id: EbbId, core: number): Rep {
    const proxy: Rep = {};
    for (const method of definition.methods) {
      const code = definition.codes[method];
      proxy[method] = (...args: unknown[]) => this.#callCore(core, id, code, args);
    }
    proxy.onMessage = (message: unknown, from: unknown) => this.links.message(core, id, encodeValue(message), from as MessageSource);
    return proxy;
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
    let result: unknown;
    try {
      const args = decodeArgs(frame.payload);
      result = frame.core === ANY_CORE || frame.core === this.core ? this.invoke(frame.ebbId, frame.code, args) : this.#handOver(frame, args);
    } catch (error) {
      this.stats.servedErrors++;
      conn.replyError(frame, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => conn.reply(frame, value),
        (error) => {
          this.stats.servedErrors++;
          conn.replyError(frame, error);
        },
      );
    } else {
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
  }
}

