/**
 * The messenger of one core (DESIGN §2, EbbRT's Messenger): lazily opens one
 * authenticated connection per peer node from this core, accepts connections
 * from peers, and hands calls and messages to the core's runtime.
 *
 * Connections are used by their opener for calls and by the acceptor for
 * replies. Because every core of a node accepts on one shared socket
 * (DESIGN §5), the kernel, not the caller, picks the accepting core; so a
 * connection accepted by core 2 cannot serve as core 0's outbound connection.
 * The race that matters — many calls from one core to a peer before its
 * connection is up — shares one pending connect.
 */
import { Connection, type ConnectionHandler, type ConnectionLimits, type HelloDecision } from './connection.js';
import { HelloPurpose, RejectReason, type ControlMessage, type Hello, type Peer } from './control.js';
import { NodeUnavailableError, ProtocolError, type EbbError } from './errors.js';
import type { Frame } from './frame.js';
import type { Transport, TransportConnector } from './transport.js';

/** Options of {@link Messenger}. */
export interface MessengerOptions {
  /** This node's id. */
  nodeId: number;
  /** This core's index. */
  core: number;
  /** Cluster secret proven in every handshake. */
  secret: string;
  /** Opens transports to peers (TCP in production, a MemoryNetwork in tests). */
  connect: TransportConnector;
  /** Frame size and queue bounds. */
  limits?: ConnectionLimits;
  /**
   * How long a call to a node this core has no address for yet waits for the membership update
   * that names it, ms (default 2000; 0 fails at once). Nodes known to have left fail at once.
   */
  peerWaitMs?: number;
}

/** What the messenger delivers to (implemented by the core's EbbRuntime and node supervisor). */
export interface MessengerSink {
  onCall(conn: Connection, frame: Frame): void;
  onMessage(conn: Connection, frame: Frame): void;
  /** Control messages that are not answers to our requests (GlobalIdMap, heartbeats, membership). */
  onControl(conn: Connection, message: ControlMessage, callId: number): void;
}

export interface MessengerStats {
  connectionsOpened: number;
  connectionsAccepted: number;
  protocolErrors: number;
  rejectedHandshakes: number;
  /** Connections closed unheard because too many handshakes were in progress (per listener or per address). */
  refusedHandshakes: number;
}

export class Messenger implements ConnectionHandler {
  readonly nodeId: number;
  readonly core: number;
  readonly #secret: string;
  readonly #connect: TransportConnector;
  readonly #limits: ConnectionLimits;
  readonly #peers = new Map<number, Peer>();
  readonly #outbound = new Map<number, Promise<Connection>>();
  /** Nodes membership said left: calls to them fail at once. */
  readonly #left = new Set<number>();
  /** Connects waiting for this core to learn a node's address (see {@link MessengerOptions.peerWaitMs}). */
  readonly #awaitingPeer = new Map<number, Set<(peer: Peer | undefined) => void>>();
  readonly #peerWaitMs: number;
  /** Open outbound connections, for the synchronous fast path of `call`. */
  readonly #ready = new Map<number, Connection>();
  readonly #accepted = new Set<Connection>();
  /** Receives calls, messages and control frames; set by the runtime that owns this messenger. */
  sink?: MessengerSink;
  /** Decides JOIN hellos; only the frontend sets it. */
  onJoin?: (hello: Hello, conn: Transport) => HelloDecision | Promise<HelloDecision>;
  /** Called after a JOIN connection opened (the frontend registers the member). */
  onJoined?: (conn: Connection) => void;
  /** Called when any connection closes (membership uses it to detect a dead node). */
  onConnectionClosed?: (conn: Connection, error?: Error) => void;
  /** Logs handshake failures and protocol errors. */
  onFault?: (error: Error, remote: string) => void;
  readonly stats: MessengerStats = { connectionsOpened: 0, connectionsAccepted: 0, protocolErrors: 0, rejectedHandshakes: 0, refusedHandshakes: 0 };
  #closed = false;

  constructor(options: MessengerOptions) {
    this.nodeId = options.nodeId;
    this.core = options.core;
    this.#secret = options.secret;
    this.#connect = options.connect;
    this.#limits = options.limits ?? {};
    this.#peerWaitMs = options.peerWaitMs ?? 2000;
  }

  /** Known peers (node id → address). */
  get peers(): ReadonlyMap<number, Peer> {
    return this.#peers;
  }

  addPeer(peer: Peer): void {
    this.#peers.set(peer.nodeId, peer);
    this.#left.delete(peer.nodeId);
    const waiters = this.#awaitingPeer.get(peer.nodeId);
    this.#awaitingPeer.delete(peer.nodeId);
    for (const wake of waiters ?? []) wake(peer);
  }

  /** Forgets a node and rejects every call in flight to it with `error`. */
  removePeer(nodeId: number, error: EbbError = new NodeUnavailableError(`node ${nodeId} left the cluster`)): void {
    this.#peers.delete(nodeId);
    this.#left.add(nodeId);
    const waiters = this.#awaitingPeer.get(nodeId);
    this.#awaitingPeer.delete(nodeId);
    for (const wake of waiters ?? []) wake(undefined);
    this.#ready.delete(nodeId);
    const pending = this.#outbound.get(nodeId);
    this.#outbound.delete(nodeId);
    pending?.then((conn) => conn.fail(error), () => undefined);
    for (const conn of this.#accepted) if (conn.peerNodeId === nodeId) conn.fail(error);
  }

  /** The connection from this core to `nodeId`, opened on first use. */
  connection(nodeId: number): Promise<Connection> {
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

  async #open(peer: Peer): Promise<Connection> {
    const transport = await this.#connect(peer.host, peer.port);
    const { conn } = await Connection.connect(transport, this.#secret, { purpose: HelloPurpose.peer, nodeId: this.nodeId, core: this.core }, this.#limits);
    conn.peerNodeId = peer.nodeId;
    conn.handler = this;
    this.stats.connectionsOpened++;
    this.#ready.set(peer.nodeId, conn);
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
    Connection.accept(transport, this.#secret, this.nodeId, (hello) => this.#decide(hello, transport), this.#limits).then(
      (conn) => {
        finished();
        conn.handler = this;
        this.#accepted.add(conn);
        this.stats.connectionsAccepted++;
        if (conn.hello?.purpose === HelloPurpose.join) this.onJoined?.(conn);
      },
      (error: Error) => {
        finished();
        this.stats.rejectedHandshakes++;
        this.onFault?.(error, transport.remoteAddress);
      },
    );
  }

  #decide(hello: Hello, transport: Transport): HelloDecision | Promise<HelloDecision> {
    if (hello.purpose === HelloPurpose.peer) return { welcome: { nodeId: this.nodeId } };
    if (hello.purpose === HelloPurpose.join && this.onJoin) return this.onJoin(hello, transport);
    return { reject: { reason: RejectReason.badRequest, message: hello.purpose === HelloPurpose.join ? 'this node is not the frontend; join the frontend\'s address instead' : 'hello has no purpose' } };
  }

  /** Sends a call to (`nodeId`, `core`) and resolves with its result. */
  call(nodeId: number, core: number, ebbId: number, code: number, args: readonly unknown[], timeoutMs: number, flags = 0): Promise<unknown> {
    // Fast path: no extra promise hop once the connection is open (bench rpc: remote_rtt_p50_us).
    const open = this.#ready.get(nodeId);
    if (open !== undefined && open.open) return open.call(ebbId, core, code, args, timeoutMs, flags);
    return this.connection(nodeId).then((conn) => conn.call(ebbId, core, code, args, timeoutMs, flags));
  }

  /** Sends a one-way message; resolves once it is queued on the connection. */
  async send(nodeId: number, core: number, ebbId: number, code: number, payload: Buffer): Promise<void> {
    const conn = await this.connection(nodeId);
    conn.sendMessage(ebbId, core, code, payload);
  }

  // ConnectionHandler: route into the sink.
  onCall(conn: Connection, frame: Frame): void {
    this.sink?.onCall(conn, frame);
  }

  onMessage(conn: Connection, frame: Frame): void {
    this.sink?.onMessage(conn, frame);
  }

  onControl(conn: Connection, message: ControlMessage, callId: number): void {
    this.sink?.onControl(conn, message, callId);
  }

  onClose(conn: Connection, error?: Error): void {
    this.#accepted.delete(conn);
    if (this.#ready.get(conn.peerNodeId) === conn) this.#ready.delete(conn.peerNodeId);
    const pending = this.#outbound.get(conn.peerNodeId);
    if (pending) {
      pending.then((open) => {
        if (open === conn && this.#outbound.get(conn.peerNodeId) === pending) this.#outbound.delete(conn.peerNodeId);
      }, () => undefined);
    }
    this.onConnectionClosed?.(conn, error);
  }

  onProtocolError(conn: Connection, error: ProtocolError): void {
    this.stats.protocolErrors++;
    this.onFault?.(error, conn.remoteAddress);
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
    for (const pending of this.#outbound.values()) pending.then((conn) => conn.fail(reason), () => undefined);
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
