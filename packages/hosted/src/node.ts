/**
 * The hosted frontend node: core 0 on the main thread, the GlobalIdMap
 * authority, id-space grants, the membership table and failure detection.
 */
import { EventEmitter } from 'node:events';
import {
  EbbRuntime, HOSTED_ID_SPACE, MemoryLocalIdMap, HOSTED_NODE_ID, IdAllocator, IdSpaceAllocator, listenTcp, connectTcp, Messenger, NodeUnavailableError, RejectReason,
  type Connection, type ConnectionLimits, type ControlMessage, type CoreLinks, type GlobalIdMap, type Hello, type HelloDecision, type Peer, type Transport, type TransportConnector, type TransportServer,
} from '@ebbrt/ebb-protocol';
import { IdMapServer, MemoryIdMapStore } from './global-id-map.js';
import { consoleLogger, type Logger } from './log.js';

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
  /** How often natives must heartbeat, ms. Default 250. */
  heartbeatMs?: number;
  /** A native silent for this long is declared dead, ms. Default 1000. */
  failureTimeoutMs?: number;
  /** Default deadline of calls made from the frontend, ms. Default 30000. */
  callTimeoutMs?: number;
  /** GlobalIdMap store. Default: in memory, embedded in the frontend. */
  store?: GlobalIdMap;
  /** Frame and queue limits of every connection. */
  limits?: ConnectionLimits;
  /** Structured log sink. Default: JSON lines on stderr at level info and above. */
  logger?: Logger;
  /** Test hook: replace TCP with another transport (an in-memory network). */
  transport?: { listen(onTransport: (t: Transport) => void): Promise<TransportServer>; connect: TransportConnector };
}

/** A native node as the membership table knows it. */
export interface Member extends Peer {
  allocationId: string;
  pid: number;
  joinedAt: number;
  lastHeartbeat: number;
  /** The node's supervisor (JOIN) connection. */
  conn: Connection;
}

export interface HostedStats {
  joins: number;
  rejectedJoins: number;
  protocolErrors: number;
  deaths: number;
}

/** The running frontend. Emits `join` (Member), `leave` (nodeId, reason), `reject` (error, remote). */
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
  readonly stats: HostedStats = { joins: 0, rejectedJoins: 0, protocolErrors: 0, deaths: 0 };
  readonly members = new Map<number, Member>();
  readonly #server: TransportServer;
  readonly #idMapServer: IdMapServer;
  readonly #spaces = new IdSpaceAllocator();
  readonly #heartbeatMs: number;
  readonly #failureTimeoutMs: number;
  readonly #detector: ReturnType<typeof setInterval>;
  #nextNodeId = HOSTED_NODE_ID + 1;
  /** Id spaces granted in a Welcome, until the node's JOIN connection opens. */
  readonly #granted = new Map<number, number>();
  /** Nodes asked to stop: their departure is expected, not a failure. */
  readonly #stopping = new Set<number>();
  #closed = false;

  /** @internal use {@link startHosted} */
  constructor(options: Required<Pick<HostedOptions, 'secret' | 'cluster' | 'heartbeatMs' | 'failureTimeoutMs' | 'callTimeoutMs'>> & HostedOptions, messenger: Messenger, server: TransportServer, logger: Logger) {
    super();
    this.secret = options.secret;
    this.cluster = options.cluster;
    this.messenger = messenger;
    this.#server = server;
    this.log = logger;
    this.host = server.address.host;
    this.port = server.address.port;
    this.#heartbeatMs = options.heartbeatMs;
    this.#failureTimeoutMs = options.failureTimeoutMs;
    this.idMap = options.store ?? new MemoryIdMapStore();
    this.#idMapServer = new IdMapServer(this.idMap);
    const ids = IdAllocator.global(HOSTED_ID_SPACE);
    const links: CoreLinks = {
      cores: 1,
      call: () => Promise.reject(new NodeUnavailableError('the frontend runs one core')),
      message: () => undefined,
      allocateId: async () => ids.allocate(),
      localIdMap: new MemoryLocalIdMap(),
    };
    this.runtime = new EbbRuntime({ nodeId: this.nodeId, core: 0, address: `${this.host}:${this.port}`, messenger, idMap: this.idMap, links, callTimeoutMs: options.callTimeoutMs });
    this.runtime.onOtherControl = (conn, message, callId) => this.#control(conn, message, callId);
    this.runtime.onMessageError = (error, ebbId) => this.log.warn('message delivery failed', { ebbId, error: String(error) });
    messenger.addPeer(this.#selfPeer());
    messenger.onJoin = (hello) => this.#decideJoin(hello);
    messenger.onJoined = (conn) => this.#joined(conn);
    messenger.onConnectionClosed = (conn, error) => this.#connectionClosed(conn, error);
    messenger.onFault = (error, remote) => {
      if ((error as { code?: string }).code === 'BAD_SECRET' || (error as { code?: string }).code === 'UNSUPPORTED_VERSION' || (error as { code?: string }).code === 'JOIN_REJECTED') {
        this.stats.rejectedJoins++;
        this.log.warn('join rejected', { remote, code: (error as { code?: string }).code, reason: error.message });
        this.emit('reject', error, remote);
      } else {
        this.stats.protocolErrors++;
        this.log.warn('connection closed on protocol error', { remote, code: (error as { code?: string }).code, reason: error.message });
      }
    };
    this.#detector = setInterval(() => this.#detectFailures(), Math.max(50, Math.floor(this.#heartbeatMs / 2)));
    this.#detector.unref();
  }

  /** `host:port` natives join and call. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  #selfPeer(): Peer {
    return { nodeId: this.nodeId, host: this.host, port: this.port, cores: 1, idSpace: HOSTED_ID_SPACE, backend: 'hosted' };
  }

  #decideJoin(hello: Hello): HelloDecision {
    if (this.#closed) return { reject: { reason: RejectReason.shuttingDown, message: 'the frontend is shutting down' } };
    if (!hello.host || !hello.port || !hello.cores) {
      return { reject: { reason: RejectReason.badRequest, message: 'a joining node must report host, port and cores of its messenger' } };
    }
    const nodeId = this.#nextNodeId++;
    const idSpace = this.#spaces.allocate();
    this.#granted.set(nodeId, idSpace);
    const peers = [this.#selfPeer(), ...[...this.members.values()].map(toPeer)];
    return { welcome: { nodeId, idSpace, peers, heartbeatMs: this.#heartbeatMs, cluster: this.cluster } };
  }

  #joined(conn: Connection): void {
    const hello = conn.hello!;
    const member: Member = {
      nodeId: conn.peerNodeId,
      host: hello.host,
      port: hello.port,
      cores: hello.cores,
      idSpace: this.#granted.get(conn.peerNodeId) ?? 0,
      backend: hello.backend || 'process',
      allocationId: hello.allocationId,
      pid: hello.pid,
      joinedAt: Date.now(),
      lastHeartbeat: Date.now(),
      conn,
    };
    this.#granted.delete(member.nodeId);
    this.members.set(member.nodeId, member);
    this.messenger.addPeer(toPeer(member));
    this.stats.joins++;
    for (const other of this.members.values()) {
      if (other.nodeId !== member.nodeId) other.conn.sendControl('membershipUpdate', { joined: [toPeer(member)], left: [] });
    }
    this.log.info('node joined', { nodeId: member.nodeId, address: `${member.host}:${member.port}`, cores: member.cores, allocationId: member.allocationId, backend: member.backend });
    this.emit('join', member);
  }

  #control(conn: Connection, message: ControlMessage, callId: number): void {
    if (this.#idMapServer.handle(conn, message, callId)) return;
    if (message.type === 'heartbeat') {
      const member = this.members.get(conn.peerNodeId);
      if (member && member.conn === conn) member.lastHeartbeat = Date.now();
      return;
    }
    if (message.type === 'goodbye') {
      this.#declareLeft(conn.peerNodeId, `node said goodbye: ${message.body.reason}`);
      return;
    }
    this.log.debug('ignored control message', { type: message.type, nodeId: conn.peerNodeId });
  }

  #connectionClosed(conn: Connection, error?: Error): void {
    this.#idMapServer.forget(conn);
    const member = this.members.get(conn.peerNodeId);
    if (member && member.conn === conn) this.#declareLeft(member.nodeId, error ? `connection lost: ${error.message}` : 'connection closed');
  }

  #detectFailures(): void {
    const now = Date.now();
    for (const member of this.members.values()) {
      if (now - member.lastHeartbeat > this.#failureTimeoutMs) {
        this.stats.deaths++;
        this.#declareLeft(member.nodeId, `missed heartbeats for ${now - member.lastHeartbeat} ms`);
      }
    }
  }

  #declareLeft(nodeId: number, reason: string): void {
    const member = this.members.get(nodeId);
    if (!member) return;
    const expected = this.#stopping.delete(nodeId) || this.#closed;
    this.members.delete(nodeId);
    const error = new NodeUnavailableError(`node ${nodeId} (${member.host}:${member.port}) is unavailable: ${reason}`);
    this.runtime.nodeLeft(nodeId, error);
    member.conn.fail(error);
    for (const other of this.members.values()) other.conn.sendControl('membershipUpdate', { joined: [], left: [nodeId] });
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
    clearInterval(this.#detector);
    for (const member of this.members.values()) member.conn.sendControl('goodbye', { reason: 'frontend shutting down' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    this.messenger.close();
    await this.#server.close();
  }
}

function toPeer(member: Member): Peer {
  return { nodeId: member.nodeId, host: member.host, port: member.port, cores: member.cores, idSpace: member.idSpace, backend: member.backend };
}

/** Starts the frontend: validates options, binds the messenger, and serves joins. */
export async function startHosted(options: HostedOptions): Promise<HostedNode> {
  if (options === null || typeof options !== 'object') throw new TypeError('startHosted(options): options must be an object');
  if (typeof options.secret !== 'string' || options.secret.length < 8) throw new TypeError('options.secret must be a string of at least 8 characters (the cluster secret natives must present)');
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host.length === 0)) throw new TypeError('options.host must be a non-empty string');
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) throw new TypeError('options.port must be an integer in 0..65535');
  for (const key of ['heartbeatMs', 'failureTimeoutMs', 'callTimeoutMs'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value <= 0)) throw new TypeError(`options.${key} must be a positive integer (milliseconds)`);
  }
  const heartbeatMs = options.heartbeatMs ?? 250;
  const failureTimeoutMs = options.failureTimeoutMs ?? 1000;
  if (failureTimeoutMs <= heartbeatMs) throw new TypeError('options.failureTimeoutMs must be larger than options.heartbeatMs');
  const logger = options.logger ?? consoleLogger({ nodeId: HOSTED_NODE_ID });
  const connect = options.transport?.connect ?? ((host: string, port: number) => connectTcp(host, port));
  const messenger = new Messenger({ nodeId: HOSTED_NODE_ID, core: 0, secret: options.secret, connect, limits: options.limits });
  const listen = options.transport?.listen ?? ((onTransport) => listenTcp({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, onTransport));
  const server = await listen((transport) => messenger.accept(transport));
  return new HostedNode({ ...options, cluster: options.cluster ?? 'ebbrt', heartbeatMs, failureTimeoutMs, callTimeoutMs: options.callTimeoutMs ?? 30_000 }, messenger, server, logger);
}

