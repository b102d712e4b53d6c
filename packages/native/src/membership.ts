/**
 * The supervisor side of a native node: the JOIN connection to the frontend,
 * heartbeats on the supervisor's own event loop, membership relay, goodbye.
 * Shared by the process boot entry (cores in worker threads) and by in-process
 * natives (one inline core, for tests and embedding).
 */
// The join's part of the protocol stack only: a native loads the call path (codec, runtime) while it joins.
import {
  Connection,
  HelloKey,
  HelloPurpose,
  IdAllocator,
  JoinRejectedError,
  joinTokenKey,
  RejectReason,
  seal,
  secretKey,
  UnknownEbbError,
  type ClientKey,
  type ConnectionHandler,
  type MembershipUpdate,
  type Peer,
  type Transport,
  type TransportConnector,
  type Welcome,
} from '@ebbrt/ebb-protocol/join';
import type { CoreSnapshot, ServiceAddress } from '@ebbrt/ebb-protocol/internal';

/** What the supervisor tells its cores about. */
export interface SupervisorEvents {
  /**
   * A membership update from the frontend (after a re-registration: the welcome's members, and those gone
   * meanwhile); `joined` records carry their pair key unsealed, for the cores' keyrings.
   */
  membership(update: MembershipUpdate): void;
  /**
   * The node's membership ended: the frontend said goodbye (`goodbye`), declared this node dead while it
   * was unreachable and will not take it back (`replaced`: its group replaces it), or the connection to it
   * was lost for good (`lost`).
   */
  ended(reason: string, how: EndReason): void;
  /** The connection to the frontend was lost; the supervisor keeps trying to re-register (`JoinOptions.reconnectMs`). */
  reconnecting?(reason: string): void;
  /** Re-registered under the same node id and id space (the frontend came back). */
  rejoined?(welcome: Welcome): void;
}

export interface JoinOptions {
  frontendHost: string;
  frontendPort: number;
  /**
   * What proves the first JOIN (PROTOCOL.md §5.1): the one-time join token the launcher got from the
   * frontend, or the cluster secret (a node started by hand). Re-registrations use the node credential
   * the Welcome carried instead.
   */
  proof: { joinToken: string } | { secret: string };
  allocationId: string;
  cores: number;
  /** Where this node's messenger listens. */
  host: string;
  port: number;
  backend: string;
  connect: TransportConnector;
  /**
   * After losing the frontend, keep trying to re-register (backoff 100 ms doubling to 2 s) for this long, ms,
   * then end. 0 (default) = end at once, the behaviour in-process natives rely on.
   */
  reconnectMs?: number;
}

/** What each heartbeat reports besides liveness (PROTOCOL.md §5.4). */
export interface HeartbeatSource {
  /** Calls the node is waiting on. */
  inFlight(): number;
  /** Per-core counters; empty until the app loaded on every core. */
  cores(): CoreSnapshot[];
  /** The node's open listeners and where clients reach them. */
  services(): ServiceAddress[];
}

const NOTHING_TO_REPORT: HeartbeatSource = { inFlight: () => 0, cores: () => [], services: () => [] };

/** How a node's membership ended (see {@link SupervisorEvents.ended}). */
export type EndReason = 'goodbye' | 'replaced' | 'lost';

/** First and longest pause between re-registration attempts, ms. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;

/** What the first JOIN proves with. */
function joinKey(proof: JoinOptions['proof']): ClientKey {
  if ('secret' in proof) return { kind: HelloKey.clusterSecret, key: secretKey(proof.secret) };
  const key = joinTokenKey(proof.joinToken);
  if (!key) throw new TypeError('the join token must be the 64 hex digits the frontend minted');
  return { kind: HelloKey.joinToken, key };
}

/** Member records as the frontend sealed them for `session`, with their pair keys unsealed. */
function unsealed(session: Uint8Array, peers: Peer[]): Peer[] {
  return peers.map((peer) => (peer.pairKey?.length ? { ...peer, pairKey: seal(session, 'pair-key', peer.nodeId, peer.incarnation ?? 0, peer.pairKey) } : peer));
}

/** A joined node's supervisor. */
export class Supervisor {
  readonly nodeId: number;
  /** This node's incarnation: its credential and pair keys are bound to it. */
  readonly incarnation: number;
  /** The Welcome, its member records' pair keys unsealed. */
  readonly welcome: Welcome;
  /** The credential the Welcome carried (unsealed): what re-registrations prove. */
  readonly #credential: Uint8Array;
  readonly ids: IdAllocator;
  #conn: Connection;
  readonly #options: JoinOptions;
  readonly #events: SupervisorEvents;
  /** Members as the frontend last told us (welcome + membership updates), to diff after a re-registration. */
  #peers: Set<number>;
  #heartbeat: ReturnType<typeof setInterval>;
  readonly #beat: () => void;
  #ended = false;

  private constructor(options: JoinOptions, conn: Connection, welcome: Welcome, events: SupervisorEvents, report: HeartbeatSource) {
    this.#options = options;
    this.#events = events;
    this.#conn = conn;
    this.nodeId = welcome.nodeId;
    this.incarnation = welcome.incarnation;
    this.welcome = { ...welcome, peers: unsealed(conn.sessionKey, welcome.peers) };
    this.#credential = seal(conn.sessionKey, 'credential', welcome.nodeId, welcome.incarnation, welcome.credential);
    this.ids = IdAllocator.global(welcome.idSpace);
    this.#peers = new Set(welcome.peers.map((p) => p.nodeId));
    this.#attach(conn);
    this.#beat = () =>
      this.#conn.sendControl('heartbeat', {
        nodeId: this.nodeId,
        sentAtMs: Date.now(),
        inFlight: report.inFlight(),
        rssBytes: process.memoryUsage.rss(),
        cores: report.cores(),
        services: report.services(),
      });
    this.#heartbeat = setInterval(this.#beat, welcome.heartbeatMs || 250);
  }

  #attach(conn: Connection): void {
    this.#conn = conn;
    const handler: ConnectionHandler = {
      // Never sent by a frontend; the payload codec is loaded for the answer only.
      onCall: (c, frame) =>
        void import('@ebbrt/ebb-protocol/internal').then(({ encodeError }) =>
          c.reply(frame, false, encodeError(new UnknownEbbError('the supervisor connection carries no calls; call the node on its messenger address'))),
        ),
      onMessage: () => undefined,
      onControl: (c, message) => {
        if (message.type === 'membershipUpdate') {
          for (const peer of message.body.joined) this.#peers.add(peer.nodeId);
          for (const nodeId of message.body.left) this.#peers.delete(nodeId);
          this.#events.membership({ ...message.body, joined: unsealed(c.sessionKey, message.body.joined) });
        } else if (message.type === 'goodbye') this.#end(this.#events, `frontend said goodbye: ${message.body.reason}`, 'goodbye');
      },
      // Only the current connection counts: an older one closing late must not start another reconnection.
      onClose: (c, error) => {
        if (c === this.#conn) this.#lost(error);
      },
    };
    conn.attach(handler);
  }

  /** Joins the frontend: challenge → HMAC hello → welcome (node id, id space, peers); `report` gives what each heartbeat carries. */
  static async join(options: JoinOptions, events: SupervisorEvents, report: HeartbeatSource = NOTHING_TO_REPORT): Promise<Supervisor> {
    if (options.reconnectMs !== undefined && (!Number.isInteger(options.reconnectMs) || options.reconnectMs < 0))
      throw new TypeError('options.reconnectMs must be a non-negative integer (milliseconds)');
    const { conn, welcome } = await Supervisor.#hello(options, joinKey(options.proof));
    return new Supervisor(options, conn, welcome, events, report);
  }

  /** One JOIN handshake; `self` (with the node credential) re-registers under that node id and incarnation. */
  static async #hello(
    options: JoinOptions,
    key: ClientKey,
    self: { nodeId: number; incarnation: number } = { nodeId: 0, incarnation: 0 },
  ): Promise<{ conn: Connection; welcome: Welcome }> {
    const transport: Transport = await options.connect(options.frontendHost, options.frontendPort);
    return Connection.connect(transport, key, {
      purpose: HelloPurpose.join,
      allocationId: options.allocationId,
      ...self,
      cores: options.cores,
      host: options.host,
      port: options.port,
      backend: options.backend,
      pid: process.pid,
    });
  }

  #lost(error?: Error): void {
    if (this.#ended) return;
    const reason = `lost the connection to the frontend${error ? ` (${error.message})` : ''}`;
    if (!this.#options.reconnectMs) {
      this.#end(this.#events, reason, 'lost');
      return;
    }
    this.#events.reconnecting?.(reason);
    void this.#reconnect(reason, Date.now() + this.#options.reconnectMs);
  }

  /**
   * Re-registers with the frontend under our node id, with exponential
   * backoff, until it welcomes us, refuses us for good (wrong secret, no live
   * record of this node), or `reconnectMs` passed.
   */
  async #reconnect(reason: string, deadline: number): Promise<void> {
    let delay = BACKOFF_FIRST_MS;
    let last = reason;
    while (!this.#ended) {
      // Jitter, so the natives of a cluster do not all knock at the same instant.
      await new Promise((resolve) => setTimeout(resolve, delay * (0.75 + Math.random() / 2)));
      if (this.#ended) return;
      try {
        const { conn, welcome } = await Supervisor.#hello(
          this.#options,
          { kind: HelloKey.nodeCredential, key: this.#credential },
          { nodeId: this.nodeId, incarnation: this.incarnation },
        );
        if (this.#ended) {
          conn.close();
          return;
        }
        if (welcome.nodeId !== this.nodeId || welcome.idSpace !== this.welcome.idSpace || welcome.incarnation !== this.incarnation) {
          conn.close();
          this.#end(
            this.#events,
            `the frontend re-registered this node as node ${welcome.nodeId} with id space ${welcome.idSpace} (was ${this.nodeId}, ${this.welcome.idSpace})`,
            'lost',
          );
          return;
        }
        this.#attach(conn);
        clearInterval(this.#heartbeat);
        this.#heartbeat = setInterval(this.#beat, welcome.heartbeatMs || 250);
        const now = new Set(welcome.peers.map((p) => p.nodeId));
        const left = [...this.#peers].filter((nodeId) => !now.has(nodeId));
        this.#peers = now;
        this.#events.membership({ joined: unsealed(conn.sessionKey, welcome.peers), left });
        this.#events.rejoined?.(welcome);
        return;
      } catch (error) {
        last = (error as Error).message;
        const code = (error as JoinRejectedError).code;
        const rejectReason = error instanceof JoinRejectedError ? (error.data as { reason?: number } | undefined)?.reason : undefined;
        if (rejectReason === RejectReason.declaredDead) {
          // Not a failure of this node: it was away too long and has been (or is being) replaced. A clean exit.
          this.#end(this.#events, `${reason}; the frontend declared this node dead meanwhile and will not take it back (${last})`, 'replaced');
          return;
        }
        const refused =
          error instanceof JoinRejectedError && (code === 'BAD_SECRET' || code === 'UNSUPPORTED_VERSION' || rejectReason === RejectReason.unknownAllocation);
        if (refused) {
          this.#end(this.#events, `${reason}; the frontend refused to take this node back: ${last}`, 'lost');
          return;
        }
      }
      if (Date.now() + delay > deadline) {
        this.#end(this.#events, `${reason}; gave up re-registering after ${this.#options.reconnectMs} ms (last attempt: ${last})`, 'lost');
        return;
      }
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }

  #end(events: SupervisorEvents, reason: string, how: EndReason): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#heartbeat);
    events.ended(reason, how);
  }

  /** Sends a heartbeat now, besides the periodic ones (what it reports just changed, e.g. the app loaded on every core). */
  heartbeatNow(): void {
    if (!this.#ended) this.#beat();
  }

  /** Says goodbye (when leaving on our own) and closes the JOIN connection. */
  close(reason?: string): void {
    clearInterval(this.#heartbeat);
    this.#ended = true;
    if (reason) this.#conn.sendControl('goodbye', { reason });
    this.#conn.close();
  }
}
