/**
 * One authenticated connection between two nodes: handshake, framing,
 * correlation of calls with replies, write coalescing and backpressure.
 * It moves payload bytes and never encodes or decodes them (the messenger
 * does); the messenger owns connections, applications never see them.
 */
import {
  decodeControl,
  encodeControl,
  isControlResponse,
  CONTROL_CODES,
  HelloKey,
  HelloPurpose,
  RejectReason,
  type ControlBodies,
  type ControlMessage,
  type ControlType,
  type Hello,
  type Welcome,
  type Reject,
} from '../wire/control.js';
import { type EbbError, JoinRejectedError, NodeUnavailableError, OverloadedError, ProtocolError, TimeoutError, UnknownEbbError } from '../wire/errors.js';
import { ANY_CORE, FrameBatch, FrameDecoder, FrameKind, kindName, PROTOCOL_VERSION, type Frame, type FrameHeader, type Payload } from '../wire/frame.js';
import {
  HANDSHAKE_VERSION,
  helloMac,
  macEquals,
  newNonce,
  SecretKeyring,
  secretKey,
  sessionKey,
  transcriptOf,
  welcomeMac,
  type ClientKey,
  type Keyring,
} from '../wire/handshake.js';
import { Matcher, type CallMeter, type ReplyDecoder } from './matcher.js';
import type { Transport } from './transport.js';

/** Limits and timeouts of a connection. */
export interface ConnectionLimits {
  /** Largest frame payload accepted. Default 16 MiB. */
  maxFrameSize?: number;
  /** Bytes a connection may queue while the socket is backpressured before new calls fail with `Overloaded`. Default 8 MiB. */
  maxQueuedBytes?: number;
  /** Handshake deadline in ms. Default 5000. */
  handshakeTimeoutMs?: number;
  /**
   * Largest frame payload a server accepts before the handshake completed: a Hello is a few hundred
   * bytes, so an unauthenticated peer can make us hold at most this much. Default 4 KiB.
   */
  preAuthMaxFrameSize?: number;
  /** Handshakes a listener runs at once; more connections are closed at once (and counted). Default 256. */
  maxHandshakes?: number;
  /** Handshakes from one source address at once; more are closed at once (and counted). Default 64. */
  maxHandshakesPerAddress?: number;
  /** How a timeout or an `UNKNOWN_EBB` reply names the call's Ebb and method (`Counter.add`). Default: by hex id. */
  describe?: (ebbId: number, code: number) => string;
}

/** Default of {@link ConnectionLimits.preAuthMaxFrameSize}. */
export const PRE_AUTH_MAX_FRAME_SIZE = 4096;

/** What the server side decides for a Hello: accept with Welcome fields, or reject. */
export type HelloDecision = { welcome: Partial<Welcome> } | { reject: { reason: RejectReason; message: string } };

/** Receives what arrives on an open connection (see {@link Connection.attach}). Handlers must not throw. */
export interface ConnectionHandler {
  /** A call frame; answer it with {@link Connection.reply}. */
  onCall(conn: Connection, frame: Frame): void;
  onMessage(conn: Connection, frame: Frame): void;
  /** The caller gave up on a call it sent on this connection (its deadline passed). */
  onCancel?(conn: Connection, frame: Frame): void;
  /** Control frames that are not responses to our own requests. */
  onControl(conn: Connection, message: ControlMessage, callId: number): void;
  onClose(conn: Connection, error?: Error): void;
  /** A peer broke the protocol; the connection is being closed. For counting and logging. */
  onProtocolError?(conn: Connection, error: ProtocolError): void;
}

const decodeControlReply: ReplyDecoder = (_ok, payload, start = 0, end = payload.length) => decodeControl(payload.subarray(start, end));

type State = 'handshake' | 'open' | 'closed';

/**
 * Bytes after which a batch is written at once instead of when the microtask
 * queue drains: what one synchronous stretch (a loop of calls, the replies to a
 * chunk) may queue before it goes to the socket, where the backpressure bound
 * applies. A window of a few hundred small calls leaves in one write.
 */
const FLUSH_BYTES = 64 * 1024;

const NO_HANDLER: ConnectionHandler = {
  onCall: () => undefined,
  onMessage: () => undefined,
  onControl: () => undefined,
  onClose: () => undefined,
};

/** Frames kept for a handler not set yet; beyond this they are dropped (a connection nobody handles). */
const MAX_EARLY_FRAMES = 64;

export class Connection {
  readonly transport: Transport;
  /** The node at the other end, known after the handshake. */
  peerNodeId = 0;
  /** The peer's core for PEER connections; its Hello for JOIN connections. */
  peerCore = ANY_CORE;
  hello?: Hello;
  #handler: ConnectionHandler = NO_HANDLER;
  /**
   * Frames that arrived before a handler was set: the ones right behind the
   * welcome (a goodbye sent the moment the node joined, a first call) are
   * decoded in the same chunk, before the caller of `connect()` can set it.
   */
  #early: Frame[] = [];
  #state: State = 'handshake';
  readonly #decoder: FrameDecoder;
  readonly #maxQueuedBytes: number;
  /** Requests in flight, each tagged with the header it went out with (a cancel echoes it: PROTOCOL.md §7). */
  readonly #calls: Matcher<FrameHeader>;
  /** Frames waiting for the next write (see {@link FLUSH_BYTES}). */
  readonly #queue = new FrameBatch();
  #flushScheduled = false;
  #blocked = false;
  /**
   * The time the matcher reads, ms (-1: read it anew): one clock read per received chunk and per
   * sent batch, not two per call. A call's latency runs from the batch it left in to the chunk
   * its reply arrived in; deadlines err by at most one synchronous stretch of this thread.
   */
  #now = -1;
  #handshakeFrame?: (frame: Frame) => void;
  #closeError?: Error;

  /** The session key both ends derived in the handshake (PROTOCOL.md §5.1); empty before it completes. */
  sessionKey: Uint8Array = Buffer.alloc(0);
  readonly #maxFrameSize: number;

  private constructor(transport: Transport, limits: ConnectionLimits, preAuth: boolean) {
    this.transport = transport;
    this.#maxFrameSize = limits.maxFrameSize ?? 16 * 1024 * 1024;
    this.#maxQueuedBytes = limits.maxQueuedBytes ?? 8 * 1024 * 1024;
    const describe = limits.describe ?? ((ebbId: number, code: number) => `Ebb 0x${ebbId.toString(16)} method 0x${code.toString(16)}`);
    this.#calls = new Matcher<FrameHeader>(
      (callId, tag, timeoutMs) => {
        if (tag.kind === FrameKind.call) this.#enqueue({ kind: FrameKind.cancel, flags: 0, core: tag.core, ebbId: tag.ebbId, code: tag.code, callId });
        return new TimeoutError(`call to ${describe(tag.ebbId, tag.code)} on node ${this.peerNodeId} did not settle within ${timeoutMs} ms`);
      },
      // The callee knows only the id; the caller knows the name.
      (error, tag) =>
        error instanceof UnknownEbbError && tag.kind === FrameKind.call
          ? new UnknownEbbError(`${describe(tag.ebbId, tag.code)}: ${error.message}`, { data: error.data })
          : error,
      () => this.time(),
    );
    this.#decoder = new FrameDecoder({
      maxFrameSize: preAuth ? Math.min(limits.preAuthMaxFrameSize ?? PRE_AUTH_MAX_FRAME_SIZE, this.#maxFrameSize) : this.#maxFrameSize,
      onFrame: (frame) => this.#onFrame(frame),
      onError: (error) => this.#protocolError(error),
    });
    transport.onData((chunk) => {
      this.#now = -1;
      this.#decoder.write(chunk);
      this.#now = -1;
    });
    transport.onDrain(() => {
      this.#blocked = false;
      this.#flush();
    });
    transport.onClose((error) => this.#closed(error));
  }

  get open(): boolean {
    return this.#state === 'open';
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }

  /**
   * Client side: waits for the Challenge, proves its key, checks the server's
   * proof. `key` is what this side proves: a {@link ClientKey} (a JOIN with the
   * secret, a join token or the node credential), a {@link Keyring} (PEER: the
   * pair key of the node the Challenge names), or the cluster secret as text.
   * `expectNodeId`, when given, is the node the caller meant to reach: another
   * node answering is refused. Rejects with {@link JoinRejectedError} on Reject
   * or a bad server MAC.
   */
  static connect(
    transport: Transport,
    key: ClientKey | Keyring | string,
    hello: Partial<Hello>,
    limits: ConnectionLimits = {},
    expectNodeId?: number,
  ): Promise<{ conn: Connection; welcome: Welcome }> {
    const conn = new Connection(transport, limits, false);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new NodeUnavailableError(`handshake with ${transport.remoteAddress} timed out; is a runtime of this protocol listening there?`));
        conn.close();
      }, limits.handshakeTimeoutMs ?? 5000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
        conn.close(error);
      };
      conn.#closeHook = (error) => fail(error ?? new NodeUnavailableError(`${transport.remoteAddress} closed the connection during the handshake`));
      let nonce: Uint8Array | undefined;
      let session: Uint8Array | undefined;
      const clientNonce = newNonce();
      conn.#handshakeFrame = (frame) => {
        const message = conn.#controlOf(frame);
        if (!message) return;
        if (message.type === 'challenge' && nonce === undefined) {
          nonce = message.body.nonce;
          conn.peerNodeId = message.body.nodeId;
          if (message.body.protocolVersion !== PROTOCOL_VERSION || message.body.handshakeVersion !== HANDSHAKE_VERSION) {
            fail(
              new JoinRejectedError(
                'UNSUPPORTED_VERSION',
                `server speaks protocol version ${message.body.protocolVersion} (handshake ${message.body.handshakeVersion}), this node speaks ${PROTOCOL_VERSION} (handshake ${HANDSHAKE_VERSION}); run matching runtime versions`,
              ),
            );
            return;
          }
          if (expectNodeId !== undefined && message.body.nodeId !== expectNodeId) {
            fail(
              new NodeUnavailableError(`${transport.remoteAddress} is node ${message.body.nodeId}, not node ${expectNodeId}; the member list is out of date`),
            );
            return;
          }
          const full: Hello = {
            protocolVersion: PROTOCOL_VERSION,
            handshakeVersion: HANDSHAKE_VERSION,
            purpose: HelloPurpose.peer,
            allocationId: '',
            nodeId: 0,
            incarnation: 0,
            core: 0,
            cores: 0,
            host: '',
            port: 0,
            backend: '',
            pid: 0,
            ...hello,
            key: HelloKey.unspecified,
            clientNonce,
            mac: Buffer.alloc(0),
          };
          const target = { nodeId: message.body.nodeId, incarnation: message.body.incarnation };
          const proof = clientKeyFor(key, full, target);
          if (!proof) {
            fail(
              new JoinRejectedError(
                'BAD_SECRET',
                `this node holds no key for node ${target.nodeId} (incarnation ${target.incarnation}); it was not introduced to that node by the frontend`,
              ),
            );
            return;
          }
          full.key = proof.kind;
          const transcript = transcriptOf(full, nonce, target.nodeId);
          full.mac = helloMac(proof.key, transcript);
          session = sessionKey(proof.key, transcript);
          conn.sendControl('hello', full);
        } else if (message.type === 'welcome' && session !== undefined) {
          if (!macEquals(message.body.mac, welcomeMac(session, message.body))) {
            fail(
              new JoinRejectedError(
                'BAD_SECRET',
                `${transport.remoteAddress} could not prove it knows this node's key; check that it is the cluster's frontend (the same \`secret\`) or a member`,
              ),
            );
            return;
          }
          clearTimeout(timer);
          conn.#closeHook = undefined;
          conn.#state = 'open';
          conn.sessionKey = session;
          if (message.body.nodeId && hello.purpose !== HelloPurpose.join) conn.peerNodeId = message.body.nodeId;
          resolve({ conn, welcome: message.body });
        } else if (message.type === 'reject') {
          fail(rejectToError(message.body));
        } else {
          conn.#protocolError(new ProtocolError('UNAUTHENTICATED', `unexpected ${message.type} during the handshake`));
        }
      };
    });
  }

  /**
   * Server side: sends the Challenge, checks the Hello's versions and its MAC
   * with the key `keys` names for it (a cluster secret as text means a
   * {@link SecretKeyring}), asks `decide` whether to admit it, then answers
   * Welcome or Reject. Until then frames are limited to
   * {@link ConnectionLimits.preAuthMaxFrameSize}. Resolves with the open
   * connection; rejects (and closes) otherwise.
   */
  static accept(
    transport: Transport,
    keys: Keyring | string,
    selfNodeId: number,
    decide: (hello: Hello, session: Uint8Array) => HelloDecision | Promise<HelloDecision>,
    limits: ConnectionLimits = {},
  ): Promise<Connection> {
    const keyring = typeof keys === 'string' ? new SecretKeyring(keys, { nodeId: selfNodeId, incarnation: 0 }) : keys;
    const conn = new Connection(transport, limits, true);
    const nonce = newNonce();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new ProtocolError('UNAUTHENTICATED', `no hello from ${transport.remoteAddress} within the handshake timeout`)),
        limits.handshakeTimeoutMs ?? 5000,
      );
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
        conn.close(error);
      };
      const refuse = (reason: RejectReason, message: string, error: Error) => {
        conn.sendControl('reject', { reason, message, supportedVersion: PROTOCOL_VERSION });
        conn.#flush();
        fail(error);
      };
      conn.#closeHook = (error) => fail(error ?? new NodeUnavailableError(`${transport.remoteAddress} closed the connection during the handshake`));
      conn.#handshakeFrame = async (frame) => {
        const message = conn.#controlOf(frame);
        if (!message) return;
        if (message.type !== 'hello') {
          conn.#protocolError(new ProtocolError('UNAUTHENTICATED', `expected hello, got ${message.type}`));
          return;
        }
        conn.#handshakeFrame = () => conn.#protocolError(new ProtocolError('UNAUTHENTICATED', 'frame before welcome'));
        const hello = message.body;
        if (hello.protocolVersion !== PROTOCOL_VERSION || hello.handshakeVersion !== HANDSHAKE_VERSION) {
          refuse(
            RejectReason.unsupportedVersion,
            `protocol version ${hello.protocolVersion} (handshake ${hello.handshakeVersion}) is not supported; this node speaks ${PROTOCOL_VERSION} (handshake ${HANDSHAKE_VERSION})`,
            new JoinRejectedError(
              'UNSUPPORTED_VERSION',
              `${transport.remoteAddress} speaks protocol version ${hello.protocolVersion} (handshake ${hello.handshakeVersion})`,
            ),
          );
          return;
        }
        const key = keyring.acceptKey(hello);
        const transcript = transcriptOf(hello, nonce, selfNodeId);
        if (!key || !macEquals(hello.mac, helloMac(key, transcript))) {
          refuse(
            RejectReason.badSecret,
            "the hello is not signed with a key this node accepts; start the node with the frontend's secret or a fresh join token",
            new JoinRejectedError(
              'BAD_SECRET',
              `${transport.remoteAddress} presented no valid key (purpose ${hello.purpose}, key kind ${hello.key}, node ${hello.nodeId})`,
            ),
          );
          return;
        }
        conn.sessionKey = sessionKey(key, transcript);
        let decision: HelloDecision;
        try {
          decision = await decide(hello, conn.sessionKey);
        } catch (error) {
          decision = { reject: { reason: RejectReason.badRequest, message: (error as Error).message } };
        }
        // Closed while `decide` ran (a frame behind the hello broke the protocol, or the peer left): stay closed.
        if (conn.#state !== 'handshake') return;
        if ('reject' in decision) {
          refuse(decision.reject.reason, decision.reject.message, new JoinRejectedError('JOIN_REJECTED', decision.reject.message));
          return;
        }
        clearTimeout(timer);
        conn.#closeHook = undefined;
        conn.hello = hello;
        conn.peerNodeId = hello.purpose === HelloPurpose.peer ? hello.nodeId : (decision.welcome.nodeId ?? 0);
        conn.peerCore = hello.purpose === HelloPurpose.peer ? hello.core : ANY_CORE;
        const welcome = { nodeId: 0, incarnation: 0, idSpace: 0, ...decision.welcome };
        conn.sendControl('welcome', { ...welcome, mac: welcomeMac(conn.sessionKey, welcome) });
        conn.#state = 'open';
        conn.#decoder.maxFrameSize = conn.#maxFrameSize;
        resolve(conn);
      };
      conn.sendControl('challenge', {
        nonce,
        protocolVersion: PROTOCOL_VERSION,
        handshakeVersion: HANDSHAKE_VERSION,
        nodeId: selfNodeId,
        incarnation: keyring.incarnation,
      });
    });
  }

  #closeHook?: (error?: Error) => void;

  /**
   * Sends a call whose arguments are already encoded, and resolves with
   * `decode(ok, replyPayload)`. Every call settles: reply, error, deadline
   * (`timeoutMs`; then a cancel goes to the peer) or close; `meter`, if
   * given, is told how it ended.
   */
  call(ebbId: number, core: number, code: number, payload: Payload, timeoutMs: number, decode: ReplyDecoder, meter?: CallMeter): Promise<unknown> {
    return this.#request(FrameKind.call, ebbId, core, code, payload, timeoutMs, decode, meter);
  }

  /** Sends a control request (GlobalIdMap) and resolves with the response. */
  request<K extends ControlType>(type: K, body: Partial<ControlBodies[K]>, timeoutMs: number): Promise<ControlMessage> {
    return this.#request(
      FrameKind.control,
      0,
      ANY_CORE,
      CONTROL_CODES[type],
      encodeControl(type, body),
      timeoutMs,
      decodeControlReply,
    ) as Promise<ControlMessage>;
  }

  #request(
    kind: FrameKind,
    ebbId: number,
    core: number,
    code: number,
    payload: Payload,
    timeoutMs: number,
    decode: ReplyDecoder,
    meter?: CallMeter,
  ): Promise<unknown> {
    if (this.#state !== 'open') {
      meter?.settled(0, false);
      return Promise.reject(this.#closeError ?? new NodeUnavailableError(`connection to node ${this.peerNodeId} (${this.remoteAddress}) is closed`));
    }
    if (this.#blocked && this.#queue.bytes + payload.length > this.#maxQueuedBytes) {
      meter?.settled(0, false);
      return Promise.reject(
        new OverloadedError(
          `send queue to node ${this.peerNodeId} is full (${this.#queue.bytes} bytes waiting on a slow socket); retry later or lower the call rate`,
        ),
      );
    }
    const callId = this.#calls.nextId();
    const header: FrameHeader = { kind, flags: 0, core, ebbId, code, callId };
    const settled = this.#calls.open(callId, timeoutMs, decode, header, meter);
    this.#enqueue(header, payload);
    return settled;
  }

  /** One-way message; throws {@link OverloadedError} or {@link NodeUnavailableError} synchronously. */
  sendMessage(ebbId: number, core: number, code: number, payload: Buffer): void {
    if (this.#state !== 'open') throw this.#closeError ?? new NodeUnavailableError(`connection to node ${this.peerNodeId} is closed`);
    if (this.#blocked && this.#queue.bytes + payload.length > this.#maxQueuedBytes) {
      throw new OverloadedError(`send queue to node ${this.peerNodeId} is full; retry later`);
    }
    this.#enqueue({ kind: FrameKind.message, flags: 0, core, ebbId, code, callId: 0 }, payload);
  }

  /** Answers a call received on this connection: a `reply` (`ok`) or an `error` frame with `payload`. */
  reply(call: Frame, ok: boolean, payload: Payload): void {
    this.#enqueue(
      { kind: ok ? FrameKind.reply : FrameKind.error, flags: 0, core: call.core, ebbId: call.ebbId, code: call.code, callId: call.callId },
      payload,
    );
  }

  /** Sends a control message (a response when `callId` is the request's). */
  sendControl<K extends ControlType>(type: K, body: Partial<ControlBodies[K]>, callId = 0): void {
    if (this.#state === 'closed') return;
    this.#enqueue({ kind: FrameKind.control, flags: 0, core: ANY_CORE, ebbId: 0, code: CONTROL_CODES[type], callId }, encodeControl(type, body));
  }

  #enqueue(header: FrameHeader, payload?: Payload): void {
    if (this.#state === 'closed') return;
    this.#queue.push(header, payload);
    if (this.#blocked) return;
    // One write per stretch of work, as a corked socket would: splitting a
    // window into writes of 64 frames cost a syscall (and a wake-up of the
    // peer) per 64 calls on both ends (bench rpc: remote_pipelined_per_s).
    if (this.#queue.bytes >= FLUSH_BYTES) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Coalesce everything produced before the microtask queue drains (every
      // frame of one received chunk and the calls their replies unblock) into
      // one writev. setImmediate batched as well but added a loop phase of
      // latency to every serial round trip (bench rpc: remote_rtt_p50_us).
      queueMicrotask(() => this.#flush());
    }
  }

  /** Now, ms on the `performance.now()` clock, as this connection's matcher reads it (once per chunk received and batch sent). */
  time(): number {
    if (this.#now < 0) this.#now = performance.now();
    return this.#now;
  }

  #flush(): void {
    this.#flushScheduled = false;
    this.#now = -1;
    if (this.#queue.frames === 0 || this.#blocked || this.transport.closed) return;
    if (!this.transport.write(this.#queue.take())) this.#blocked = true;
  }

  /** Where frames, control messages and the close go. */
  get handler(): ConnectionHandler {
    return this.#handler;
  }

  /** Sets where frames, control messages and the close go; frames that arrived before are delivered to it now. */
  attach(handler: ConnectionHandler): void {
    this.#handler = handler;
    const early = this.#early;
    this.#early = [];
    for (const frame of early) this.#onFrame(frame);
  }

  #onFrame(frame: Frame): void {
    if (this.#state === 'handshake') {
      if (frame.kind !== FrameKind.control) {
        this.#protocolError(new ProtocolError('UNAUTHENTICATED', `${kindName(frame.kind)} frame before the handshake completed`));
        return;
      }
      this.#handshakeFrame?.(frame);
      return;
    }
    if (this.#state === 'closed') return;
    if (this.#handler === NO_HANDLER && frame.kind !== FrameKind.reply && frame.kind !== FrameKind.error && this.#early.length < MAX_EARLY_FRAMES) {
      this.#early.push(frame);
      return;
    }
    switch (frame.kind) {
      case FrameKind.call:
        this.handler.onCall(this, frame);
        return;
      case FrameKind.message:
        this.handler.onMessage(this, frame);
        return;
      case FrameKind.reply:
      case FrameKind.error:
        this.#settle(frame);
        return;
      case FrameKind.control: {
        const message = this.#controlOf(frame);
        if (!message) return;
        // Responses answer our requests by callId; a request of the peer can carry the same number.
        if (frame.callId !== 0 && isControlResponse(message.type) && this.#calls.settle(frame.callId, true, frame.payload)) return;
        this.handler.onControl(this, message, frame.callId);
        return;
      }
      case FrameKind.cancel:
        // Calls are at-most-once and JS cannot pre-empt a running method; the
        // eventual reply is dropped by the caller, which already settled. The
        // handler may stop waiting on the caller's behalf (a call handed over to another core).
        this.handler.onCancel?.(this, frame);
        return;
    }
  }

  #settle(frame: Frame): void {
    // A reply to a call that already timed out finds nothing and is dropped.
    this.#calls.settle(frame.callId, frame.kind === FrameKind.reply, frame.source, frame.start, frame.end);
  }

  #controlOf(frame: Frame): ControlMessage | undefined {
    if (frame.kind !== FrameKind.control) {
      this.#protocolError(new ProtocolError('UNAUTHENTICATED', `${kindName(frame.kind)} frame during the handshake`));
      return undefined;
    }
    try {
      return decodeControl(frame.payload);
    } catch (error) {
      this.#protocolError(error instanceof ProtocolError ? error : new ProtocolError('BAD_CONTROL', String(error)));
      return undefined;
    }
  }

  #protocolError(error: ProtocolError): void {
    if (this.#state === 'closed') return;
    this.handler.onProtocolError?.(this, error);
    this.close(error);
  }

  /** Closes the connection; pending calls reject with `reason` or {@link NodeUnavailableError}. */
  close(reason?: Error): void {
    if (this.#state === 'closed') return;
    this.#flush();
    this.transport.close(reason);
    this.#closed(reason);
  }

  #closed(error?: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#decoder.end();
    const cause = error ?? this.#closeError;
    const failure =
      cause instanceof NodeUnavailableError
        ? cause
        : new NodeUnavailableError(
            `connection to node ${this.peerNodeId} (${this.remoteAddress}) closed${cause ? `: ${cause.message}` : ''}`,
            cause ? { cause } : undefined,
          );
    this.#closeError = failure;
    this.#calls.failAll(failure);
    this.#queue.clear();
    this.#closeHook?.(error);
    this.handler.onClose(this, error);
  }

  /** Rejects every in-flight call with `error` (the peer was declared dead) and closes. */
  fail(error: EbbError): void {
    this.#closeError = error;
    this.close(error);
  }
}

/** What the client proves: the given key, the pair key of the target from a keyring, or the cluster secret. */
function clientKeyFor(key: ClientKey | Keyring | string, hello: Hello, target: { nodeId: number; incarnation: number }): ClientKey | undefined {
  if (typeof key === 'string') {
    if (hello.purpose === HelloPurpose.join) return { kind: HelloKey.clusterSecret, key: secretKey(key) };
    return new SecretKeyring(key, { nodeId: hello.nodeId, incarnation: hello.incarnation }).peerKey(target);
  }
  return 'kind' in key ? key : key.peerKey(target);
}

function rejectToError(reject: Reject): Error {
  if (reject.reason === RejectReason.badSecret) return new JoinRejectedError('BAD_SECRET', `join refused: ${reject.message}`);
  if (reject.reason === RejectReason.unsupportedVersion) return new JoinRejectedError('UNSUPPORTED_VERSION', `join refused: ${reject.message}`);
  // The reason travels as data: a re-registering node gives up on UNKNOWN_ALLOCATION and retries on the others.
  return new JoinRejectedError('JOIN_REJECTED', `join refused: ${reject.message}`, { data: { reason: reject.reason } });
}
