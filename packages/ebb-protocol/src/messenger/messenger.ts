/**
 * The messenger of one core (EbbRT's Messenger): lazily opens one
 * authenticated connection per peer node from this core, accepts connections
 * from peers, and hands calls and messages to the core's runtime.
 *
 * Connections are used by their opener for calls and by the acceptor for
 * replies. Because every core of a node accepts on one shared socket
 * (docs/architecture.md, Cores), the kernel, not the caller, picks the accepting core; so a
 * connection accepted by core 2 cannot serve as core 0's outbound connection.
 * The race that matters — many calls from one core to a peer before its
 * connection is up — shares one pending connect.
 */
import { argsPayload, decodeArgs, decodeReply, decodeValue, encodeError, encodeValue, payloadBytes, resultPayload } from '../wire/codec.js';
import { Connection, type ConnectionHandler, type ConnectionLimits, type HelloDecision } from './connection.js';
import { SecretKeyring, type Keyring } from '../wire/handshake.js';
import { HelloPurpose, RejectReason, type ControlBodies, type ControlMessage, type ControlType, type Hello, type Peer } from '../wire/control.js';
import { NodeUnavailableError, type ProtocolError, UnencodableError, type EbbError } from '../wire/errors.js';
import { ANY_CORE, type Frame, type Payload } from '../wire/frame.js';
import type { MessageSource } from '../runtime/ebb.js';
import type { CallMeter, ReplyDecoder } from './matcher.js';
import type { Transport, TransportConnector } from './transport.js';

/**
 * What the messenger hands decoded work to: the Ebb runtime of this core.
 * It sees Ebb ids, method codes and values, never a connection or a frame.
 */
export interface Dispatcher {
  /** Runs method `code` of this core's rep of `ebbId`: returns its value or a Promise of it; may throw. */
  call(ebbId: number, code: number, args: unknown[]): unknown;
  /** Called once per call `call` ran, when its reply is sent (for statistics). */
  served(ebbId: number, startedMs: number, failed: boolean): void;
  /** Delivers a one-way message to this core's rep of `ebbId`. */
  message(ebbId: number, message: unknown, from: MessageSource): void;
  /** A message could not be delivered (its payload was malformed). */
  messageFailed(error: unknown, ebbId: number): void;
  /** How errors name method `code` of `ebbId` (`Counter.add`). */
  describe(ebbId: number, code: number): string;
}

/**
 * How a core reaches the other cores of its node (worker MessagePorts on a
 * native). Payloads are the encoded bytes, handed over as they are: a call
 * that arrived from the network for another core is forwarded without being
 * decoded, and its reply bytes come back the same way.
 */
export interface CoreChannel {
  /** Number of cores of this node. */
  readonly cores: number;
  /**
   * Runs a call on `core` (EbbRT's SpawnRemote); settles with `decode(ok, replyBytes)`, or a
   * TimeoutError at `timeoutMs`, or rejects when `signal` aborts (the caller gave up); tells `meter` how it ended.
   */
  call(
    core: number,
    ebbId: number,
    code: number,
    payload: Uint8Array,
    timeoutMs: number,
    decode: ReplyDecoder,
    meter?: CallMeter,
    signal?: AbortSignal,
  ): Promise<unknown>;
  /** Delivers a one-way message to `core`'s rep of `ebbId`. */
  message(core: number, ebbId: number, payload: Uint8Array, from: MessageSource): void;
}

/** A node of one core: nothing to hand over to. */
const ONE_CORE: CoreChannel = {
  cores: 1,
  call: (core, _ebbId, _code, _payload, _timeoutMs, _decode, meter) => {
    meter?.settled(0, false);
    return Promise.reject(new NodeUnavailableError(`this node runs one core; there is no core ${core}`));
  },
  message: () => undefined,
};

/** Handles control messages of one type that are not responses to our own requests. */
export type ControlHandler<K extends ControlType> = (body: ControlBodies[K], conn: Connection, callId: number) => void;

/** How the frontend admits JOIN hellos (see {@link Messenger.acceptJoins}). */
export interface JoinAdmission {
  /** `session` is the connection's session key: what the Welcome's credential and pair keys are sealed with. */
  decide(hello: Hello, session: Uint8Array): HelloDecision | Promise<HelloDecision>;
  /** A JOIN connection opened (the frontend registers the member). */
  joined(conn: Connection): void;
}

/** Watches the messenger's connections (see {@link Messenger.observe}). */
export interface MessengerObserver {
  /** Any connection closed (membership uses it to detect a dead node). */
  closed?(conn: Connection, error?: Error): void;
  /** A handshake failed or a peer broke the protocol. */
  fault?(error: Error, remote: string): void;
}

/** Options of {@link Messenger}. */
export interface MessengerOptions {
  /** This node's id. */
  nodeId: number;
  /** This core's index. */
  core: number;
  /**
   * The keys this core proves and accepts (PROTOCOL.md §5.1): a native's {@link PairKeyring}
   * (the pair keys its frontend gave it), or the frontend's {@link SecretKeyring}. A cluster
   * secret as text is the keyring of a secret holder at incarnation 0.
   */
  keys: Keyring | string;
  /** Opens transports to peers (TCP in production, a MemoryNetwork in tests). */
  connect: TransportConnector;
  /** Frame size and queue bounds. */
  limits?: ConnectionLimits;
  /**
   * How long a call to a node this core has no address for yet waits for the membership update
   * that names it, ms (default 2000; 0 fails at once). Nodes known to have left fail at once.
   */
  peerWaitMs?: number;
  /** The other cores of this node (default: this node runs one core). */
  cores?: CoreChannel;
  /**
   * Deadline of a call that arrived for another core of this node while it is handed over, ms (its
   * caller's deadline is not on the wire; the caller's cancel at that deadline ends the hand-over
   * sooner). Default 30000.
   */
  handOverTimeoutMs?: number;
}

export interface MessengerStats {
  connectionsOpened: number;
  connectionsAccepted: number;
  protocolErrors: number;
  rejectedHandshakes: number;
  /** Connections closed unheard because too many handshakes were in progress (per listener or per address). */
  refusedHandshakes: number;
}

/** The reply of a handed-over call, as bytes (a call forwarded for another core is answered with them unchanged). */
interface RawReply {
  ok: boolean;
  payload: Uint8Array;
}
const rawReply: ReplyDecoder = (ok, payload, start = 0, end = payload.length) => ({ ok, payload: payload.subarray(start, end) }) satisfies RawReply;

/** Where the answer of a served call goes: `token` names the call there (a connection and the call's frame, say). */
interface ReplyTo<T> {
  reply(token: T, ok: boolean, payload: Payload): void;
}

/** Answers a call another core handed over: its callback gets the bytes. */
const TO_CORE: ReplyTo<(ok: boolean, payload: Uint8Array) => void> = {
  reply: (callback, ok, payload) => callback(ok, payloadBytes(payload)),
};

/**
 * Wires: the runtime registers its {@link Dispatcher} with {@link serve},
 * control handlers register by message type with {@link handle}, the
 * frontend registers its admission with {@link acceptJoins}, and observers
 * with {@link observe}. The messenger does every payload encoding and decoding.
 */
export class Messenger implements ConnectionHandler {
  readonly nodeId: number;
  readonly core: number;
  readonly #keys: Keyring;
  readonly #connect: TransportConnector;
  readonly #limits: ConnectionLimits;
  readonly #peers = new Map<number, Peer>();
  readonly #outbound = new Map<number, Promise<Connection>>();
  /** Nodes membership said left: calls to them fail at once. */
  readonly #left = new Set<number>();
  /** Nodes the frontend suspects (silent past its threshold): new calls and messages to them fail at once until reinstated. */
  readonly #suspected = new Set<number>();
  /** Connects waiting for this core to learn a node's address (see {@link MessengerOptions.peerWaitMs}). */
  readonly #awaitingPeer = new Map<number, Set<(peer: Peer | undefined) => void>>();
  readonly #peerWaitMs: number;
  /** Open outbound connections, for the synchronous fast path of `call`. */
  readonly #ready = new Map<number, Connection>();
  readonly #accepted = new Set<Connection>();
  readonly #cores: CoreChannel;
  readonly #handOverTimeoutMs: number;
  /** Calls handed over to another core, by the connection and call id they came with: a cancel from the caller aborts them. */
  readonly #handOvers = new Map<Connection, Map<number, AbortController>>();
  #dispatcher?: Dispatcher;
  readonly #controlHandlers = new Map<ControlType, ControlHandler<ControlType>>();
  #admission?: JoinAdmission;
  readonly #observers: MessengerObserver[] = [];
  readonly stats: MessengerStats = { connectionsOpened: 0, connectionsAccepted: 0, protocolErrors: 0, rejectedHandshakes: 0, refusedHandshakes: 0 };
  #closed = false;

  constructor(options: MessengerOptions) {
    this.nodeId = options.nodeId;
    this.core = options.core;
    this.#keys = typeof options.keys === 'string' ? new SecretKeyring(options.keys, { nodeId: options.nodeId, incarnation: 0 }) : options.keys;
    this.#connect = options.connect;
    this.#limits = { describe: (ebbId, code) => this.#describe(ebbId, code), ...options.limits };
    this.#peerWaitMs = options.peerWaitMs ?? 2000;
    this.#cores = options.cores ?? ONE_CORE;
    this.#handOverTimeoutMs = options.handOverTimeoutMs ?? 30_000;
  }

  /** Number of cores of this node. */
  get cores(): number {
    return this.#cores.cores;
  }

  /** Registers the runtime that runs calls and messages arriving for this core (one per messenger). */
  serve(dispatcher: Dispatcher): void {
    if (this.#dispatcher && this.#dispatcher !== dispatcher) throw new Error('this messenger already serves a runtime');
    this.#dispatcher = dispatcher;
  }

  /** Registers the handler of control messages of `type` (heartbeats, goodbyes, GlobalIdMap requests and notifications). */
  handle<K extends ControlType>(type: K, handler: ControlHandler<K>): void {
    if (this.#controlHandlers.has(type)) throw new Error(`control messages of type ${type} already have a handler`);
    this.#controlHandlers.set(type, handler as unknown as ControlHandler<ControlType>);
  }

  /** Makes this messenger admit JOIN hellos (the frontend). */
  acceptJoins(admission: JoinAdmission): void {
    this.#admission = admission;
  }

  /** Adds an observer of connection closes and faults. */
  observe(observer: MessengerObserver): void {
    this.#observers.push(observer);
  }

  /** Known peers (node id → address). */
  get peers(): ReadonlyMap<number, Peer> {
    return this.#peers;
  }

  /** A member's record; the pair key it may carry goes to the keyring, not into {@link peers}. */
  addPeer(peer: Peer): void {
    const { pairKey: _key, ...record } = peer;
    this.#keys.addPeer?.(peer);
    this.#peers.set(peer.nodeId, record);
    this.#left.delete(peer.nodeId);
    this.#suspected.delete(peer.nodeId);
    const waiters = this.#awaitingPeer.get(peer.nodeId);
    this.#awaitingPeer.delete(peer.nodeId);
    for (const wake of waiters ?? []) wake(peer);
  }

  /**
   * The frontend suspects `nodeId`: from now on calls and messages to it fail at once with
   * {@link NodeUnavailableError} (calls already in flight keep their deadline), until
   * {@link reinstate} or {@link removePeer}. Off the per-call path: the node's open connection
   * leaves the fast path, and the slow path checks.
   */
  suspect(nodeId: number): void {
    this.#suspected.add(nodeId);
    this.#ready.delete(nodeId);
  }

  /** The suspected `nodeId` was heard from again: calls to it go through. */
  reinstate(nodeId: number): void {
    if (!this.#suspected.delete(nodeId)) return;
    const pending = this.#outbound.get(nodeId);
    pending?.then(
      (conn) => {
        if (conn.open && this.#outbound.get(nodeId) === pending && !this.#suspected.has(nodeId)) this.#ready.set(nodeId, conn);
      },
      () => undefined,
    );
  }

  /** True while the frontend suspects `nodeId`. */
  suspected(nodeId: number): boolean {
    return this.#suspected.has(nodeId);
  }

  /** Forgets a node and rejects every call in flight to it with `error`. */
  removePeer(nodeId: number, error: EbbError = new NodeUnavailableError(`node ${nodeId} left the cluster`)): void {
    this.#peers.delete(nodeId);
    this.#keys.removePeer?.(nodeId);
    this.#suspected.delete(nodeId);
    this.#left.add(nodeId);
    const waiters = this.#awaitingPeer.get(nodeId);
    this.#awaitingPeer.delete(nodeId);
    for (const wake of waiters ?? []) wake(undefined);
    this.#ready.delete(nodeId);
    const pending = this.#outbound.get(nodeId);
    this.#outbound.delete(nodeId);
    pending?.then(
      (conn) => conn.fail(error),
      () => undefined,
    );
    for (const conn of this.#accepted) if (conn.peerNodeId === nodeId) conn.fail(error);
  }

  /** The connection from this core to `nodeId`, opened on first use. */
  connection(nodeId: number): Promise<Connection> {
    if (this.#suspected.has(nodeId)) {
      return Promise.reject(
        new NodeUnavailableError(
          `node ${nodeId} is suspected: the frontend has not heard from it within its suspicion threshold; calls to it fail at once until it is heard from again or replaced`,
        ),
      );
    }
    const existing = this.#outbound.get(nodeId);
    if (existing) return existing;
    if (this.#closed) return Promise.reject(new NodeUnavailableError('this node is shutting down'));
    const peer = this.#peers.get(nodeId);
    if (!peer) {
      const notMember = () => new NodeUnavailableError(`node ${nodeId} is not a member of the cluster (it never joined, or it left)`);
      if (this.#left.has(nodeId) || this.#peerWaitMs === 0) return Promise.reject(notMember());
      // The id can be known before this core's membership update names the node (a GlobalIdMap
      // record written right after it joined travels on another connection): wait a little for it.
      return this.#waitForPeer(nodeId).then((joined) => (joined ? this.connection(nodeId) : Promise.reject(notMember())));
    }
    const opening = this.#open(peer);
    this.#outbound.set(nodeId, opening);
    opening.catch(() => {
      if (this.#outbound.get(nodeId) === opening) this.#outbound.delete(nodeId);
    });
    return opening;
  }

  #waitForPeer(nodeId: number): Promise<Peer | undefined> {
    return new Promise((resolve) => {
      let waiters = this.#awaitingPeer.get(nodeId);
      if (!waiters) this.#awaitingPeer.set(nodeId, (waiters = new Set()));
      const wake = (peer: Peer | undefined) => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(peer);
      };
      const timer = setTimeout(() => wake(undefined), this.#peerWaitMs);
      timer.unref?.();
      waiters.add(wake);
    });
  }

  /** Transports whose handshake is in progress: {@link close} closes them, so a pending connect fails at once. */
  readonly #dialing = new Set<Transport>();

  async #open(peer: Peer): Promise<Connection> {
    const transport = await this.#connect(peer.host, peer.port);
    if (this.#closed) {
      transport.close();
      throw new NodeUnavailableError('this node is shutting down');
    }
    this.#dialing.add(transport);
    const { conn } = await Connection.connect(
      transport,
      this.#keys,
      { purpose: HelloPurpose.peer, nodeId: this.nodeId, incarnation: this.#keys.incarnation, core: this.core },
      this.#limits,
    ).finally(() => this.#dialing.delete(transport));
    conn.peerNodeId = peer.nodeId;
    conn.attach(this);
    this.stats.connectionsOpened++;
    if (!this.#suspected.has(peer.nodeId)) this.#ready.set(peer.nodeId, conn);
    return conn;
  }

  /** Handshakes in progress, in total and by source address (the bound on memory before authentication). */
  #handshaking = 0;
  readonly #handshakingFrom = new Map<string, number>();

  /**
   * Runs the server side of the handshake on an accepted transport, unless
   * {@link ConnectionLimits.maxHandshakes} (or the per-address cap) are in
   * progress already: then the transport is closed unheard and counted.
   */
  accept(transport: Transport): void {
    if (this.#closed) {
      transport.close();
      return;
    }
    const from = sourceAddress(transport.remoteAddress);
    const fromCount = this.#handshakingFrom.get(from) ?? 0;
    if (this.#handshaking >= (this.#limits.maxHandshakes ?? 256) || fromCount >= (this.#limits.maxHandshakesPerAddress ?? 64)) {
      this.stats.refusedHandshakes++;
      transport.close();
      return;
    }
    this.#handshaking++;
    this.#handshakingFrom.set(from, fromCount + 1);
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      this.#handshaking--;
      const left = (this.#handshakingFrom.get(from) ?? 1) - 1;
      if (left > 0) this.#handshakingFrom.set(from, left);
      else this.#handshakingFrom.delete(from);
    };
    Connection.accept(transport, this.#keys, this.nodeId, (hello, session) => this.#decide(hello, session), this.#limits).then(
      (conn) => {
        finished();
        conn.attach(this);
        this.#accepted.add(conn);
        this.stats.connectionsAccepted++;
        if (conn.hello?.purpose === HelloPurpose.join) this.#admission?.joined(conn);
      },
      (error: Error) => {
        finished();
        this.stats.rejectedHandshakes++;
        for (const observer of this.#observers) observer.fault?.(error, transport.remoteAddress);
      },
    );
  }

  /** A call's arguments encoded, or the rejection of a call whose arguments the wire cannot carry (naming the Ebb and method; its meter told). */
  #encodeCall(args: readonly unknown[], meter: CallMeter | undefined, ebbId: number, code: number): Payload | Promise<never> {
    try {
      return argsPayload(args);
    } catch (error) {
      meter?.settled(0, false);
      return Promise.reject(this.#named(error, ebbId, code));
    }
  }

  /** An {@link UnencodableError} with the Ebb and method in front (`Counter.add: argument 0 is a Map…`). */
  #named(error: unknown, ebbId: number, code: number): unknown {
    if (!(error instanceof UnencodableError)) return error;
    return new UnencodableError(`${this.#describe(ebbId, code)}: ${error.message}`, { data: error.data });
  }

  /** How errors name method `code` of `ebbId`: by the runtime's definition (`Counter.add`), else by hex ids. */
  #describe(ebbId: number, code: number): string {
    return this.#dispatcher?.describe(ebbId, code) ?? `Ebb 0x${ebbId.toString(16)} method 0x${code.toString(16)}`;
  }

  #decide(hello: Hello, session: Uint8Array): HelloDecision | Promise<HelloDecision> {
    if (hello.purpose === HelloPurpose.peer) return { welcome: { nodeId: this.nodeId, incarnation: this.#keys.incarnation } };
    if (hello.purpose === HelloPurpose.join && this.#admission) return this.#admission.decide(hello, session);
    return {
      reject: {
        reason: RejectReason.badRequest,
        message: hello.purpose === HelloPurpose.join ? "this node is not the frontend; join the frontend's address instead" : 'hello has no purpose',
      },
    };
  }

  /**
   * Sends a call to (`nodeId`, `core`) and resolves with its result; rejects with a TimeoutError at
   * `timeoutMs`. `meter`, if given, is told how the call ended.
   */
  call(nodeId: number, core: number, ebbId: number, code: number, args: readonly unknown[], timeoutMs: number, meter?: CallMeter): Promise<unknown> {
    const payload = this.#encodeCall(args, meter, ebbId, code);
    if (payload instanceof Promise) return payload;
    // Fast path: no extra promise hop once the connection is open (bench rpc: remote_rtt_p50_us).
    const open = this.#ready.get(nodeId);
    if (open?.open) return open.call(ebbId, core, code, payload, timeoutMs, decodeReply, meter);
    // The arguments are encoded now: the caller may change them while the connection opens.
    const bytes = payloadBytes(payload);
    return this.connection(nodeId).then(
      (conn) => conn.call(ebbId, core, code, bytes, timeoutMs, decodeReply, meter),
      (error: unknown) => {
        meter?.settled(0, false);
        throw error;
      },
    );
  }

  /** Runs a call on `core` of this node (EbbRT's SpawnRemote); rejects with a TimeoutError at `timeoutMs`; `meter` as for {@link call}. */
  callCore(core: number, ebbId: number, code: number, args: readonly unknown[], timeoutMs: number, meter?: CallMeter): Promise<unknown> {
    const payload = this.#encodeCall(args, meter, ebbId, code);
    if (payload instanceof Promise) return payload;
    return this.#cores.call(core, ebbId, code, payloadBytes(payload), timeoutMs, decodeReply, meter);
  }

  /** Sends a one-way message to (`nodeId`, `core`); resolves once it is queued on the connection. */
  async send(nodeId: number, core: number, ebbId: number, code: number, message: unknown): Promise<void> {
    const payload = encodeValue(message);
    const conn = await this.connection(nodeId);
    conn.sendMessage(ebbId, core, code, payload);
  }

  /** Delivers a one-way message to `core` of this node (this core too: always as a copy, as from elsewhere). */
  sendCore(core: number, ebbId: number, message: unknown, from: MessageSource): void {
    const payload = encodeValue(message);
    if (core === this.core) queueMicrotask(() => this.deliverFromCore(ebbId, payload, from));
    else this.#cores.message(core, ebbId, payload, from);
  }

  /**
   * Runs a call another core handed over (its encoded arguments) and answers
   * with `reply(ok, bytes)`, exactly once.
   */
  serveFromCore(ebbId: number, code: number, payload: Uint8Array, reply: (ok: boolean, payload: Uint8Array) => void): void {
    this.#serve(ebbId, code, payload, 0, payload.length, performance.now(), TO_CORE, reply);
  }

  /**
   * Runs a call (its arguments `bytes[start, end)`) that arrived at `started` and answers it with
   * `to.reply(token, ok, payload)`, exactly once (no closure per call unless the method is async).
   */
  #serve<T>(ebbId: number, code: number, bytes: Uint8Array, start: number, end: number, started: number, to: ReplyTo<T>, token: T): void {
    const dispatcher = this.#dispatcher;
    if (dispatcher === undefined) {
      to.reply(token, false, encodeError(new NodeUnavailableError(`core ${this.core} of node ${this.nodeId} is not serving calls yet`)));
      return;
    }
    let result: unknown;
    try {
      result = dispatcher.call(ebbId, code, decodeArgs(bytes, start, end));
    } catch (error) {
      dispatcher.served(ebbId, started, true);
      to.reply(token, false, encodeError(error));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#answer(dispatcher, ebbId, code, started, value, to, token),
        (error: unknown) => {
          dispatcher.served(ebbId, started, true);
          to.reply(token, false, encodeError(error));
        },
      );
    } else this.#answer(dispatcher, ebbId, code, started, result, to, token);
  }

  #answer<T>(dispatcher: Dispatcher, ebbId: number, code: number, started: number, value: unknown, to: ReplyTo<T>, token: T): void {
    let payload: Payload;
    try {
      payload = resultPayload(value);
    } catch (error) {
      dispatcher.served(ebbId, started, true);
      to.reply(token, false, encodeError(this.#named(error, ebbId, code)));
      return;
    }
    dispatcher.served(ebbId, started, false);
    to.reply(token, true, payload);
  }

  /** Delivers a one-way message another core handed over. */
  deliverFromCore(ebbId: number, payload: Uint8Array, from: MessageSource): void {
    this.#deliver(ebbId, payload, from);
  }

  #deliver(ebbId: number, payload: Uint8Array, from: MessageSource): void {
    const dispatcher = this.#dispatcher;
    if (dispatcher === undefined) return;
    let message: unknown;
    try {
      message = decodeValue(payload);
    } catch (error) {
      dispatcher.messageFailed(error, ebbId);
      return;
    }
    dispatcher.message(ebbId, message, from);
  }

  // ConnectionHandler: decode and route.

  onCall(conn: Connection, frame: Frame): void {
    const core = frame.core;
    if (core === ANY_CORE || core === this.core) {
      // Arrival is the chunk's time (read once per chunk): the served latency includes the wait behind the chunk's earlier calls.
      this.#serve(frame.ebbId, frame.code, frame.source, frame.start, frame.end, conn.time(), conn, frame);
      return;
    }
    if (core >= this.#cores.cores) {
      conn.reply(frame, false, encodeError(new NodeUnavailableError(`node ${this.nodeId} has no core ${core} (it runs ${this.#cores.cores})`)));
      return;
    }
    // Another core's call: its bytes go over as they arrived, and the reply's bytes come back
    // unchanged; the caller's cancel (its deadline passed) stops the wait, and nothing is answered.
    let handOvers = this.#handOvers.get(conn);
    if (handOvers === undefined) this.#handOvers.set(conn, (handOvers = new Map()));
    const abort = new AbortController();
    const pending = handOvers;
    pending.set(frame.callId, abort);
    const done = () => {
      if (pending.get(frame.callId) === abort) pending.delete(frame.callId);
    };
    (this.#cores.call(core, frame.ebbId, frame.code, frame.payload, this.#handOverTimeoutMs, rawReply, undefined, abort.signal) as Promise<RawReply>).then(
      (reply) => {
        done();
        conn.reply(frame, reply.ok, reply.payload);
      },
      (error: unknown) => {
        done();
        if (!abort.signal.aborted) conn.reply(frame, false, encodeError(error));
      },
    );
  }

  onCancel(conn: Connection, frame: Frame): void {
    this.#handOvers.get(conn)?.get(frame.callId)?.abort();
  }

  onMessage(conn: Connection, frame: Frame): void {
    const from = { nodeId: conn.peerNodeId, core: conn.peerCore };
    if (frame.core === ANY_CORE || frame.core === this.core) this.#deliver(frame.ebbId, frame.payload, from);
    else if (frame.core < this.#cores.cores) this.#cores.message(frame.core, frame.ebbId, frame.payload, from);
  }

  onControl(conn: Connection, message: ControlMessage, callId: number): void {
    this.#controlHandlers.get(message.type)?.(message.body, conn, callId);
  }

  onClose(conn: Connection, error?: Error): void {
    this.#accepted.delete(conn);
    // Nobody is left to answer: stop waiting for the calls handed over for it.
    const handOvers = this.#handOvers.get(conn);
    this.#handOvers.delete(conn);
    for (const abort of handOvers?.values() ?? []) abort.abort();
    if (this.#ready.get(conn.peerNodeId) === conn) this.#ready.delete(conn.peerNodeId);
    const pending = this.#outbound.get(conn.peerNodeId);
    if (pending) {
      pending.then(
        (open) => {
          if (open === conn && this.#outbound.get(conn.peerNodeId) === pending) this.#outbound.delete(conn.peerNodeId);
        },
        () => undefined,
      );
    }
    for (const observer of this.#observers) observer.closed?.(conn, error);
  }

  onProtocolError(conn: Connection, error: ProtocolError): void {
    this.stats.protocolErrors++;
    for (const observer of this.#observers) observer.fault?.(error, conn.remoteAddress);
  }

  /** Number of calls this core is waiting on, over all its connections. */
  get inFlight(): number {
    let n = 0;
    for (const conn of this.#accepted) n += conn.inFlight;
    return n;
  }

  /** Closes every connection; in-flight calls reject with {@link NodeUnavailableError}. */
  close(reason = new NodeUnavailableError('node is shutting down')): void {
    this.#closed = true;
    for (const waiters of this.#awaitingPeer.values()) for (const wake of waiters) wake(undefined);
    this.#awaitingPeer.clear();
    for (const transport of this.#dialing) transport.close(reason);
    this.#dialing.clear();
    for (const pending of this.#outbound.values())
      pending.then(
        (conn) => conn.fail(reason),
        () => undefined,
      );
    this.#outbound.clear();
    this.#ready.clear();
    for (const conn of this.#accepted) conn.fail(reason);
    this.#accepted.clear();
  }
}

/** The host part of a transport's `host:port` remote address (IPv6 hosts keep their colons). */
function sourceAddress(remote: string): string {
  const colon = remote.lastIndexOf(':');
  return colon > 0 ? remote.slice(0, colon) : remote;
}
