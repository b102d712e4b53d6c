/**
 * The hosted frontend node: core 0 on the main thread, the GlobalIdMap
 * authority, id-space grants, the membership table and failure detection.
 */
import { EventEmitter } from 'node:events';
import {
  EbbRuntime,
  FIRST_INCARNATION,
  HelloKey,
  HOSTED_ID_SPACE,
  HOSTED_INCARNATION,
  JoinRejectedError,
  joinTokenKey,
  MemoryLocalIdMap,
  HOSTED_NODE_ID,
  listenTcp,
  connectTcp,
  Messenger,
  newJoinToken,
  NodeUnavailableError,
  RejectReason,
  seal,
  SecretKeyring,
  type SecretKeyringLookups,
  type Connection,
  type ConnectionLimits,
  type MessengerTls,
  type ControlMessage,
  type CoreLinks,
  type GlobalIdMap,
  type Hello,
  type HelloDecision,
  type MembershipUpdate,
  type Peer,
  type Transport,
  type TransportConnector,
  type TransportServer,
} from '@ebbrt/ebb-protocol/internal';
import { bootEnv } from '@ebbrt/ebb-protocol/node';
import { IdMapServer } from './global-id-map.js';
import { resolveStore, validateClusterName, type ClusterStore, type NodeRecord, type StoreSpec } from './store/index.js';
import { pinoLogger, type Logger } from './log.js';
import { FailureDetector, incarnationOf, reportedServices, sameServices, toPeer, toRecord, type Member, type Verdict } from './membership.js';

/** Defaults of `HostedOptions.heartbeatMs` and `failureTimeoutMs`, ms. */
export const DEFAULT_HEARTBEAT_MS = 100;
export const DEFAULT_FAILURE_TIMEOUT_MS = 2000;

/** The GlobalIdMap requests natives send the frontend (answered by its IdMapServer). */
const ID_MAP_REQUESTS = ['idMapGet', 'idMapSet', 'idMapCas', 'idMapWatch'] as const;

/** Options of {@link startHosted}. */
export interface HostedOptions {
  /** Cluster secret every node proves in the handshake. Required; at least 8 characters. */
  secret: string;
  /** Address the messenger binds. Default `127.0.0.1` (loopback only unless you configure it). */
  host?: string;
  /** Port the messenger binds. Default 0 (a free port). */
  port?: number;
  /** Cluster name, reported to joining nodes. Default `ebbrt`. */
  cluster?: string;
  /** How often natives must heartbeat, ms. Default 100. */
  heartbeatMs?: number;
  /**
   * A native silent for this long is suspected, ms: emitted as `suspect`, and heard from again it is reinstated
   * (`reinstate`). Default 4.5 heartbeats (450 ms), at most `failureTimeoutMs` − `heartbeatMs`.
   */
  suspectAfterMs?: number;
  /** A native silent for this long is declared dead (the grace a suspected node has to come back), ms. Default 2000. */
  failureTimeoutMs?: number;
  /** Default deadline of calls made from the frontend, ms. Default 30000. */
  callTimeoutMs?: number;
  /**
   * The cluster store: GlobalIdMap authority and node registry (id-space grants). `'memory'` (default:
   * embedded, gone with the frontend), a Redis URL (`redis://host:port/db`, `rediss://…`,
   * `redis+cluster://host:port,…`: survives frontend restarts; natives re-register with the new frontend),
   * a `ClusterStore` instance (not closed by the frontend) or a bare `GlobalIdMap` (registry in memory).
   */
  store?: StoreSpec;
  /**
   * After a restart against a persistent store, how long the frontend waits for the natives the store
   * lists as live to re-register before declaring them dead, ms. Default 5000.
   */
  rejoinGraceMs?: number;
  /**
   * TLS for the messenger (PEM text): the frontend serves and dials mutual TLS, and natives it launches get
   * the same files (EBBRT_TLS_*). Default: plain TCP (loopback only unless `host` says otherwise). See the
   * package README for a setup.
   */
  tls?: MessengerTls;
  /** Frame and queue limits of every connection. */
  limits?: ConnectionLimits;
  /** Structured log sink. Default: pino JSON lines on stderr at level `EBBRT_LOG`, else warn. */
  logger?: Logger;
  /** Test hook: replace TCP with another transport (an in-memory network). */
  transport?: { listen(onTransport: (t: Transport) => void): Promise<TransportServer>; connect: TransportConnector };
}

export interface HostedStats {
  joins: number;
  rejectedJoins: number;
  protocolErrors: number;
  deaths: number;
  /** Natives suspected (silent past `suspectAfterMs`), and suspected natives heard from again in time. */
  suspicions: number;
  reinstatements: number;
  /** Natives that re-registered under their node id (after a frontend restart). */
  rejoins: number;
  /** Heartbeats and goodbyes ignored because they did not come on the named node's own JOIN connection. */
  foreignControl: number;
}

/**
 * The running frontend. Emits `join` (Member), `leave` (nodeId, reason), `reject` (error, remote),
 * `suspect` (nodeId, silent ms), `reinstate` (nodeId, silent ms) and `services` (Member) when a
 * member's services changed.
 */
export class HostedNode extends EventEmitter {
  readonly nodeId = HOSTED_NODE_ID;
  readonly runtime: EbbRuntime;
  readonly messenger: Messenger;
  readonly idMap: GlobalIdMap;
  readonly secret: string;
  readonly cluster: string;
  readonly host: string;
  readonly port: number;
  readonly log: Logger;
  readonly stats: HostedStats = { joins: 0, rejectedJoins: 0, protocolErrors: 0, deaths: 0, suspicions: 0, reinstatements: 0, rejoins: 0, foreignControl: 0 };
  readonly members = new Map<number, Member>();
  readonly #server: TransportServer;
  /**
   * The GlobalIdMap authority natives talk to: {@link IdMapServer.assign} lets a node write ids outside
   * its id space, {@link IdMapServer.scopeReads} limits what it may read; `refusals` counts what it refused.
   */
  readonly idMapServer: IdMapServer;
  /** GlobalIdMap authority and node registry (`idMap` is the same object). */
  readonly store: ClusterStore;
  /** Created by startHosted from a URL: closed with the frontend. */
  readonly #ownsStore: boolean;
  readonly #tls?: MessengerTls;
  /** Nodes the store lists as live from before a frontend restart, until they re-register or the grace period ends. */
  readonly #awaiting = new Map<number, NodeRecord>();
  #graceTimer?: ReturnType<typeof setTimeout>;
  readonly #heartbeatMs: number;
  readonly #detector: FailureDetector;
  readonly #detectorTimer: ReturnType<typeof setInterval>;
  /** Id spaces and incarnations granted in a Welcome, until the node's JOIN connection opens. */
  readonly #granted = new Map<number, { idSpace: number; incarnation: number }>();
  /** Every key of the cluster, derived from its secret (PROTOCOL.md §5.1). */
  readonly #keys: SecretKeyring;
  /** Unused one-time join tokens by allocation id (see {@link mintJoinToken}). */
  readonly #joinTokens = new Map<string, { key: Uint8Array; timer: ReturnType<typeof setTimeout> }>();
  /** Nodes asked to stop: their departure is expected, not a failure. */
  readonly #stopping = new Set<number>();
  #closed = false;

  /** @internal use {@link startHosted} */
  constructor(
    options: Required<Pick<HostedOptions, 'secret' | 'cluster' | 'heartbeatMs' | 'suspectAfterMs' | 'failureTimeoutMs' | 'callTimeoutMs'>> & HostedOptions,
    messenger: Messenger,
    server: TransportServer,
    logger: Logger,
    store: { store: ClusterStore; owned: boolean } = resolveStore(undefined, options.cluster),
    keys: { keyring: SecretKeyring; lookups: SecretKeyringLookups } = frontendKeys(options.secret),
  ) {
    super();
    this.secret = options.secret;
    this.#keys = keys.keyring;
    keys.lookups.joinToken = (allocationId) => this.#joinTokens.get(allocationId)?.key;
    keys.lookups.incarnationOf = (nodeId) =>
      nodeId === this.nodeId
        ? HOSTED_INCARNATION
        : (this.members.get(nodeId)?.incarnation ?? this.#granted.get(nodeId)?.incarnation ?? incarnationOf(this.#awaiting.get(nodeId)));
    this.cluster = options.cluster;
    this.messenger = messenger;
    this.#server = server;
    this.log = logger;
    this.host = server.address.host;
    this.port = server.address.port;
    this.#heartbeatMs = options.heartbeatMs;
    this.#detector = new FailureDetector({ suspectAfterMs: options.suspectAfterMs, deadAfterMs: options.failureTimeoutMs });
    this.#tls = options.tls;
    this.store = store.store;
    this.#ownsStore = store.owned;
    this.idMap = this.store;
    this.store.onStatus((status, error) => {
      if (status === 'down') this.log.warn('cluster store unavailable', { store: this.store.location, reason: error?.message });
      else this.log.info('cluster store reachable again', { store: this.store.location });
      this.emit('store', status, error);
    });
    this.idMapServer = new IdMapServer(this.idMap, {
      idSpaceOf: (nodeId) => this.members.get(nodeId)?.idSpace ?? this.#granted.get(nodeId)?.idSpace,
      isLive: (nodeId) => nodeId === this.nodeId || this.members.has(nodeId) || this.#awaiting.has(nodeId),
      refused: (nodeId, error) => this.log.warn('GlobalIdMap request refused', { nodeId, code: error.code, reason: error.message }),
    });
    const links: CoreLinks = {
      // Through the store: its counter outlives this frontend, so a restarted one never reuses an id.
      allocateId: () => this.store.allocateId(HOSTED_ID_SPACE),
      localIdMap: new MemoryLocalIdMap(),
    };
    this.runtime = new EbbRuntime({
      nodeId: this.nodeId,
      core: 0,
      address: `${this.host}:${this.port}`,
      messenger,
      idMap: this.idMap,
      links,
      callTimeoutMs: options.callTimeoutMs,
      onMessageError: (error, ebbId) => this.log.warn('message delivery failed', { ebbId, error: String(error) }),
    });
    messenger.addPeer(this.#selfPeer());
    // Control traffic goes straight to its handler by type, never through the Ebb runtime.
    for (const type of ID_MAP_REQUESTS) messenger.handle(type, (body, conn, callId) => this.idMapServer.handle(conn, { type, body } as ControlMessage, callId));
    messenger.handle('heartbeat', (body, conn) => this.#fromMember(conn, { type: 'heartbeat', body }));
    messenger.handle('goodbye', (body, conn) => this.#fromMember(conn, { type: 'goodbye', body }));
    messenger.acceptJoins({ decide: (hello, session) => this.#decideJoin(hello, session), joined: (conn) => this.#joined(conn) });
    messenger.observe({
      closed: (conn, error) => this.#connectionClosed(conn, error),
      fault: (error, remote) => {
        // Every refused handshake (BAD_SECRET, UNSUPPORTED_VERSION, JOIN_REJECTED) is a JoinRejectedError.
        if (error instanceof JoinRejectedError) {
          this.stats.rejectedJoins++;
          this.log.warn('join rejected', { remote, code: error.code, reason: error.message });
          this.emit('reject', error, remote);
        } else {
          this.stats.protocolErrors++;
          this.log.warn('connection closed on protocol error', { remote, code: (error as { code?: string }).code, reason: error.message });
        }
      },
    });
    // The verdicts wait for the check phase: after a stall of this process (GC, a busy loop), timers run
    // before the poll phase reads the heartbeats already waiting in the sockets, and the silence measured
    // would be our own.
    this.#detectorTimer = setInterval(() => setImmediate(() => this.#detectFailures()), Math.max(25, Math.floor(this.#heartbeatMs / 2)));
    this.#detectorTimer.unref();
  }

  /** The TLS settings natives launched by this frontend need (EBBRT_TLS_*), or none. */
  get nativeEnv(): Record<string, string> {
    const tls = this.#tls;
    return tls ? bootEnv({ tlsCert: String(tls.cert), tlsKey: String(tls.key), tlsCa: String(tls.ca) }) : {};
  }

  /** `host:port` natives join and call. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  #selfPeer(): Peer {
    return { nodeId: this.nodeId, host: this.host, port: this.port, cores: 1, idSpace: HOSTED_ID_SPACE, backend: 'hosted', incarnation: HOSTED_INCARNATION };
  }

  /**
   * A one-time join token for the native a launcher is about to start for `allocationId`
   * (PROTOCOL.md §5.1): it proves that allocation's first JOIN and nothing else, and is forgotten
   * once used, revoked or `ttlMs` old. Launchers hand it over instead of the cluster secret.
   */
  mintJoinToken(allocationId: string, ttlMs = 10 * 60_000): string {
    this.revokeJoinToken(allocationId);
    const token = newJoinToken();
    const timer = setTimeout(() => this.#joinTokens.delete(allocationId), ttlMs);
    timer.unref();
    this.#joinTokens.set(allocationId, { key: joinTokenKey(token)!, timer });
    return token;
  }

  /** Forgets the unused join token of `allocationId` (its launch failed or was abandoned). */
  revokeJoinToken(allocationId: string): void {
    clearTimeout(this.#joinTokens.get(allocationId)?.timer);
    this.#joinTokens.delete(allocationId);
  }

  /** `peer` as `to` receives it: with the pair key of the two, sealed with `to`'s JOIN session key. */
  #sealedFor(to: { nodeId: number; incarnation: number }, session: Uint8Array, peer: Peer): Peer {
    const incarnation = peer.incarnation ?? 0;
    return { ...peer, pairKey: seal(session, 'pair-key', peer.nodeId, incarnation, this.#keys.pairKey(to, { nodeId: peer.nodeId, incarnation })) };
  }

  async #decideJoin(hello: Hello, session: Uint8Array): Promise<HelloDecision> {
    // A join token proves one JOIN: used (even by a join refused below), it is gone.
    if (hello.key === HelloKey.joinToken) this.revokeJoinToken(hello.allocationId);
    if (this.#closed) return { reject: { reason: RejectReason.shuttingDown, message: 'the frontend is shutting down' } };
    if (!hello.host || !hello.port || !hello.cores) {
      return { reject: { reason: RejectReason.badRequest, message: 'a joining node must report host, port and cores of its messenger' } };
    }
    let nodeId: number;
    let idSpace: number;
    let incarnation = FIRST_INCARNATION;
    let joinedAt = Date.now();
    try {
      if (hello.nodeId !== 0) {
        // Re-registration (the node lost us: we restarted, or its connection broke): only a live record of that
        // node, from the same allocation, lets it back under its id. A node declared dead never comes back.
        const record = this.#awaiting.get(hello.nodeId) ?? (await this.store.getNode(hello.nodeId));
        const stale = record !== undefined && hello.key === HelloKey.nodeCredential && incarnationOf(record) !== hello.incarnation;
        if (
          record?.state !== 'live' ||
          stale ||
          record.allocationId !== hello.allocationId ||
          this.members.has(hello.nodeId) ||
          this.#granted.has(hello.nodeId)
        ) {
          const why = !record
            ? `the cluster store (${this.store.location}) has no record of node ${hello.nodeId}${this.store.kind === 'memory' ? ' (the memory store does not survive a frontend restart; use a redis:// store)' : ''}`
            : record.state !== 'live'
              ? `node ${hello.nodeId} was declared dead`
              : stale
                ? `node ${hello.nodeId} is at incarnation ${incarnationOf(record)}, not ${hello.incarnation}`
                : `node ${hello.nodeId} is registered to another allocation or already connected`;
          if (record?.state === 'dead')
            return {
              reject: {
                reason: RejectReason.declaredDead,
                message: `cannot re-register: ${why} while it was unreachable; its node group (if any) replaces it`,
              },
            };
          return { reject: { reason: RejectReason.unknownAllocation, message: `cannot re-register: ${why}; start a new node instead` } };
        }
        ({ nodeId, idSpace, joinedAt } = record);
        incarnation = record.incarnation ?? FIRST_INCARNATION;
      } else {
        ({ nodeId, idSpace } = await this.store.grant());
      }
      await this.store.putNode({
        nodeId,
        idSpace,
        incarnation,
        allocationId: hello.allocationId,
        host: hello.host,
        port: hello.port,
        cores: hello.cores,
        backend: hello.backend || 'process',
        pid: hello.pid,
        joinedAt,
        state: 'live',
      });
    } catch (error) {
      this.log.warn('join refused: the cluster store failed', { store: this.store.location, reason: (error as Error).message });
      return { reject: { reason: RejectReason.unspecified, message: `the frontend cannot reach its cluster store: ${(error as Error).message}` } };
    }
    if (this.#closed) return { reject: { reason: RejectReason.shuttingDown, message: 'the frontend is shutting down' } };
    this.#granted.set(nodeId, { idSpace, incarnation });
    // The node gets its own credential and the pair key of each member, sealed for this connection only.
    const self = { nodeId, incarnation };
    const peers = [this.#selfPeer(), ...[...this.members.values()].map(toPeer)].map((peer) => this.#sealedFor(self, session, peer));
    const credential = seal(session, 'credential', nodeId, incarnation, this.#keys.credential(nodeId, incarnation));
    return { welcome: { nodeId, idSpace, incarnation, credential, peers, heartbeatMs: this.#heartbeatMs, cluster: this.cluster } };
  }

  #joined(conn: Connection): void {
    const hello = conn.hello!;
    const member: Member = {
      nodeId: conn.peerNodeId,
      host: hello.host,
      port: hello.port,
      cores: hello.cores,
      idSpace: this.#granted.get(conn.peerNodeId)?.idSpace ?? 0,
      incarnation: this.#granted.get(conn.peerNodeId)?.incarnation ?? FIRST_INCARNATION,
      backend: hello.backend || 'process',
      allocationId: hello.allocationId,
      pid: hello.pid,
      joinedAt: Date.now(),
      lastHeartbeat: Date.now(),
      suspected: false,
      services: [],
      conn,
    };
    this.#granted.delete(member.nodeId);
    if (conn.hello?.nodeId) {
      this.stats.rejoins++;
      this.#awaiting.delete(member.nodeId);
    }
    this.members.set(member.nodeId, member);
    this.#detector.add(member.nodeId, member.lastHeartbeat);
    this.messenger.addPeer(toPeer(member));
    this.stats.joins++;
    this.#broadcast({ joined: [toPeer(member)] }, member.nodeId);
    const suspected = [...this.members.values()].filter((m) => m.suspected).map((m) => m.nodeId);
    if (suspected.length > 0) conn.sendControl('membershipUpdate', { suspected });
    this.log.info('node joined', {
      nodeId: member.nodeId,
      address: `${member.host}:${member.port}`,
      cores: member.cores,
      allocationId: member.allocationId,
      backend: member.backend,
    });
    this.emit('join', member);
  }

  /** Heartbeats and goodbyes: a node speaks only for itself, on its own JOIN connection (PROTOCOL.md §5.4). */
  #fromMember(conn: Connection, message: ControlMessage): void {
    const member = this.members.get(conn.peerNodeId);
    if (!member || member.conn !== conn || (message.type === 'heartbeat' && message.body.nodeId !== member.nodeId)) {
      this.stats.foreignControl++;
      return;
    }
    if (message.type === 'heartbeat') {
      member.lastHeartbeat = Date.now();
      member.heartbeat = message.body;
      const services = reportedServices(message.body.services);
      if (!sameServices(services, member.services)) {
        member.services = services;
        this.store
          .putNode(toRecord(member))
          .catch((e: Error) => this.log.warn("could not record a node's services in the cluster store", { nodeId: member.nodeId, reason: e.message }));
        this.emit('services', member);
      }
      const verdict = this.#detector.heard(member.nodeId, member.lastHeartbeat);
      if (verdict) this.#verdict(verdict);
    } else if (message.type === 'goodbye') {
      this.#declareLeft(member.nodeId, `node said goodbye: ${message.body.reason}`);
    }
  }

  #connectionClosed(conn: Connection, error?: Error): void {
    this.idMapServer.forget(conn);
    const member = this.members.get(conn.peerNodeId);
    if (member && member.conn === conn) this.#declareLeft(member.nodeId, error ? `connection lost: ${error.message}` : 'connection closed');
  }

  #detectFailures(): void {
    if (this.#closed) return;
    for (const verdict of this.#detector.check(Date.now())) this.#verdict(verdict);
  }

  #verdict({ kind, nodeId, silentMs }: Verdict): void {
    const member = this.members.get(nodeId);
    if (!member) return;
    if (kind === 'dead') {
      this.stats.deaths++;
      this.#declareLeft(nodeId, `missed heartbeats for ${silentMs} ms`);
    } else if (kind === 'suspect') {
      member.suspected = true;
      this.stats.suspicions++;
      this.#broadcast({ suspected: [nodeId] }, nodeId);
      this.log.warn('node suspected', { nodeId, silentMs });
      this.emit('suspect', nodeId, silentMs);
    } else {
      member.suspected = false;
      this.stats.reinstatements++;
      this.#broadcast({ reinstated: [nodeId] }, nodeId);
      this.log.info('node reinstated', { nodeId, silentMs });
      this.emit('reinstate', nodeId, silentMs);
    }
  }

  /**
   * Sends a membership update to every member but `except` (joined peers carry the pair key of
   * each recipient and the peer, sealed for it); suspicion also applies to the frontend's own calls.
   */
  #broadcast(update: Partial<MembershipUpdate>, except?: number): void {
    if (update.suspected || update.reinstated) this.runtime.membership({ joined: [], left: [], ...update });
    for (const member of this.members.values()) {
      if (member.nodeId === except) continue;
      const joined = update.joined?.map((peer) => this.#sealedFor(member, member.conn.sessionKey, peer));
      member.conn.sendControl('membershipUpdate', joined ? { ...update, joined } : update);
    }
  }

  #declareLeft(nodeId: number, reason: string): void {
    const member = this.members.get(nodeId);
    if (!member) return;
    const expected = this.#stopping.delete(nodeId) || this.#closed;
    this.members.delete(nodeId);
    this.#detector.remove(nodeId);
    this.idMapServer.forgetNode(nodeId);
    const error = new NodeUnavailableError(`node ${nodeId} (${member.host}:${member.port}) is unavailable: ${reason}`);
    // A tombstone, so the node cannot come back under its id; if the store is down the record stays live and a
    // later frontend retires it after its re-registration grace period.
    this.store
      .putNode({ ...toRecord(member), state: 'dead' })
      .catch((e: Error) => this.log.warn('could not record a departure in the cluster store', { nodeId, reason: e.message }));
    this.runtime.nodeLeft(nodeId, error);
    member.conn.fail(error);
    this.#broadcast({ left: [nodeId] });
    if (expected) this.log.info('node stopped', { nodeId, reason });
    else this.log.warn('node left', { nodeId, reason });
    this.emit('leave', nodeId, reason);
  }

  /** Resolves with the member that joined with `allocationId`. */
  waitForJoin(allocationId: string, timeoutMs: number, abort?: Promise<unknown>): Promise<Member> {
    for (const member of this.members.values()) if (member.allocationId === allocationId) return Promise.resolve(member);
    return new Promise((resolve, reject) => {
      const onJoin = (member: Member) => {
        if (member.allocationId !== allocationId) return;
        cleanup();
        resolve(member);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new NodeUnavailableError(`allocation ${allocationId} did not join within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('join', onJoin);
      };
      this.on('join', onJoin);
      abort?.then(
        (reason) => {
          cleanup();
          reject(reason instanceof Error ? reason : new NodeUnavailableError(String(reason)));
        },
        (error) => {
          cleanup();
          reject(error);
        },
      );
    });
  }

  /** Asks a native to shut down cleanly. */
  stopNode(nodeId: number, reason = 'stopped by the frontend'): void {
    const member = this.members.get(nodeId);
    if (!member) return;
    this.#stopping.add(nodeId);
    member.conn.sendControl('goodbye', { reason });
  }

  /** Says goodbye to every native and closes the messenger. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#detectorTimer);
    clearTimeout(this.#graceTimer);
    for (const allocationId of [...this.#joinTokens.keys()]) this.revokeJoinToken(allocationId);
    for (const member of this.members.values()) member.conn.sendControl('goodbye', { reason: 'frontend shutting down' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    this.messenger.close();
    await this.#server.close();
    if (this.#ownsStore) await this.store.close();
  }

  /**
   * After a restart against a persistent store: the nodes it lists as live may
   * re-register (their natives keep reconnecting); those that have not within
   * `graceMs` are recorded dead and reported as left.
   * @internal called by {@link startHosted}
   */
  async awaitRejoins(graceMs: number): Promise<void> {
    for (const record of await this.store.nodes()) if (record.state === 'live') this.#awaiting.set(record.nodeId, record);
    if (this.#awaiting.size === 0) return;
    this.log.info('waiting for natives to re-register', { nodes: [...this.#awaiting.keys()], graceMs });
    this.#graceTimer = setTimeout(() => {
      const gone = [...this.#awaiting.values()];
      this.#awaiting.clear();
      for (const record of gone) {
        this.store.putNode({ ...record, state: 'dead' }).catch(() => undefined);
        this.runtime.nodeLeft(record.nodeId);
        this.#broadcast({ left: [record.nodeId] });
        this.log.warn('node did not re-register', { nodeId: record.nodeId, graceMs });
        this.emit('leave', record.nodeId, `did not re-register within ${graceMs} ms of the frontend restart`);
      }
    }, graceMs);
    this.#graceTimer.unref();
  }
}

/** The frontend's keyring; the node fills in the lookups (its join tokens and members) when it starts. */
function frontendKeys(secret: string): { keyring: SecretKeyring; lookups: SecretKeyringLookups } {
  const lookups: SecretKeyringLookups = {};
  return { keyring: new SecretKeyring(secret, { nodeId: HOSTED_NODE_ID, incarnation: HOSTED_INCARNATION }, lookups), lookups };
}

/** Starts the frontend: validates options, binds the messenger, and serves joins. */
export async function startHosted(options: HostedOptions): Promise<HostedNode> {
  if (options === null || typeof options !== 'object') throw new TypeError('startHosted(options): options must be an object');
  if (typeof options.secret !== 'string' || options.secret.length < 8)
    throw new TypeError('options.secret must be a string of at least 8 characters (the cluster secret natives must present)');
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host.length === 0))
    throw new TypeError('options.host must be a non-empty string');
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535))
    throw new TypeError('options.port must be an integer in 0..65535');
  for (const key of ['heartbeatMs', 'suspectAfterMs', 'failureTimeoutMs', 'callTimeoutMs'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value <= 0)) throw new TypeError(`options.${key} must be a positive integer (milliseconds)`);
  }
  if (options.rejoinGraceMs !== undefined && (!Number.isInteger(options.rejoinGraceMs) || options.rejoinGraceMs < 0))
    throw new TypeError('options.rejoinGraceMs must be a non-negative integer (milliseconds)');
  const cluster = validateClusterName(options.cluster ?? 'ebbrt');
  const store = resolveStore(options.store, cluster);
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const failureTimeoutMs = options.failureTimeoutMs ?? DEFAULT_FAILURE_TIMEOUT_MS;
  if (failureTimeoutMs <= heartbeatMs) throw new TypeError('options.failureTimeoutMs must be larger than options.heartbeatMs');
  const suspectAfterMs = options.suspectAfterMs ?? Math.min(Math.round(4.5 * heartbeatMs), failureTimeoutMs - heartbeatMs);
  if (suspectAfterMs <= heartbeatMs || suspectAfterMs >= failureTimeoutMs)
    throw new TypeError('options.suspectAfterMs must be larger than options.heartbeatMs and smaller than options.failureTimeoutMs');
  const logger = options.logger ?? pinoLogger({ base: { nodeId: HOSTED_NODE_ID } });
  if (
    options.tls !== undefined &&
    (typeof options.tls !== 'object' ||
      options.tls === null ||
      !['cert', 'key', 'ca'].every(
        (k) =>
          typeof (options.tls as unknown as Record<string, unknown>)[k] === 'string' || Buffer.isBuffer((options.tls as unknown as Record<string, unknown>)[k]),
      ))
  ) {
    throw new TypeError('options.tls must be { cert, key, ca } with PEM text (string or Buffer) for each');
  }
  const connect = options.transport?.connect ?? ((host: string, port: number) => connectTcp(host, port, undefined, options.tls));
  const keys = frontendKeys(options.secret);
  const messenger = new Messenger({ nodeId: HOSTED_NODE_ID, core: 0, keys: keys.keyring, connect, limits: options.limits });
  const listen =
    options.transport?.listen ?? ((onTransport) => listenTcp({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, tls: options.tls }, onTransport));
  // The store first: a frontend that cannot reach it must not accept joins it cannot record.
  await store.store.open();
  let server: TransportServer;
  try {
    server = await listen((transport) => messenger.accept(transport));
  } catch (error) {
    if (store.owned) await store.store.close();
    throw error;
  }
  const node = new HostedNode(
    { ...options, cluster, heartbeatMs, suspectAfterMs, failureTimeoutMs, callTimeoutMs: options.callTimeoutMs ?? 30_000 },
    messenger,
    server,
    logger,
    store,
    keys,
  );
  try {
    await node.awaitRejoins(options.rejoinGraceMs ?? 5000);
  } catch (error) {
    await node.close();
    throw error;
  }
  return node;
}
