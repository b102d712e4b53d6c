/**
 * The supervisor side of a native node: the JOIN connection to the frontend,
 * heartbeats on the supervisor's own event loop, membership relay, goodbye.
 * Shared by the process boot entry (cores in worker threads) and by in-process
 * natives (one inline core, for tests and embedding).
 */
import { Connection, HelloPurpose, IdAllocator, type ConnectionHandler, type Peer, type Transport, type TransportConnector, type Welcome } from '@ebbrt/ebb-protocol';

/** What the supervisor tells its cores about. */
export interface SupervisorEvents {
  membership(joined: Peer[], left: number[]): void;
  /** The frontend said goodbye (`lost` = false) or the connection to it was lost (`lost` = true). */
  ended(reason: string, lost: boolean): void;
}

export interface JoinOptions {
  frontendHost: string;
  frontendPort: number;
  secret: string;
  allocationId: string;
  cores: number;
  /** Where this node's messenger listens. */
  host: string;
  port: number;
  backend: string;
  connect: TransportConnector;
}

/** A joined node's supervisor. */
export class Supervisor {
  readonly nodeId: number;
  readonly welcome: Welcome;
  readonly ids: IdAllocator;
  readonly #conn: Connection;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  #ended = false;

  private constructor(conn: Connection, welcome: Welcome, events: SupervisorEvents, inFlight: () => number) {
    this.#conn = conn;
    this.welcome = welcome;
    this.nodeId = welcome.nodeId;
    this.ids = IdAllocator.global(welcome.idSpace);
    const handler: ConnectionHandler = {
      onCall: (c, frame) => c.replyError(frame, new Error('the supervisor connection carries no calls')),
      onMessage: () => undefined,
      onControl: (_c, message) => {
        if (message.type === 'membershipUpdate') events.membership(message.body.joined, message.body.left);
        else if (message.type === 'goodbye') this.#end(events, `frontend said goodbye: ${message.body.reason}`, false);
      },
      onClose: () => this.#end(events, 'lost the connection to the frontend', true),
    };
    conn.handler = handler;
    this.#heartbeat = setInterval(
      () => conn.sendControl('heartbeat', { nodeId: this.nodeId, sentAtMs: Date.now(), inFlight: inFlight(), rssBytes: process.memoryUsage.rss() }),
      welcome.heartbeatMs || 250,
    );
  }

  /** Joins the frontend: challenge → HMAC hello → welcome (node id, id space, peers). */
  static async join(options: JoinOptions, events: SupervisorEvents, inFlight: () => number = () => 0): Promise<Supervisor> {
    const transport: Transport = await options.connect(options.frontendHost, options.frontendPort);
    const { conn, welcome } = await Connection.connect(transport, options.secret, {
      purpose: HelloPurpose.join,
      allocationId: options.allocationId,
      cores: options.cores,
      host: options.host,
      port: options.port,
      backend: options.backend,
      pid: process.pid,
    });
    return new Supervisor(conn, welcome, events, inFlight);
  }

  #end(events: SupervisorEvents, reason: string, lost: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#heartbeat);
    events.ended(reason, lost);
  }

  /** Says goodbye (when leaving on our own) and closes the JOIN connection. */
  close(reason?: string): void {
    clearInterval(this.#heartbeat);
    this.#ended = true;
    if (reason) this.#conn.sendControl('goodbye', { reason });
    this.#conn.close();
  }
}
