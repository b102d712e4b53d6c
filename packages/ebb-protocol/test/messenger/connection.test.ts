import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ANY_CORE,
  Connection,
  decodeArgs,
  decodeControl,
  decodeReply,
  EbbError,
  encodeArgs,
  encodeControl,
  encodeError,
  encodeFrame,
  encodeResult,
  FrameDecoder,
  FrameKind,
  HANDSHAKE_VERSION,
  HelloKey,
  helloMac,
  SecretKeyring,
  transcriptOf,
  HelloPurpose,
  JoinRejectedError,
  memoryTransportPair,
  Messenger,
  NodeUnavailableError,
  OverloadedError,
  PROTOCOL_VERSION,
  ProtocolError,
  UnencodableError,
  registerErrorCode,
  RejectReason,
  RemoteError,
  TimeoutError,
  UnknownEbbError,
  CONTROL_CODES,
  type ConnectionHandler,
  type ConnectionLimits,
  type ControlBodies,
  type ControlMessage,
  type ControlType,
  type Frame,
  type Transport,
} from '@ebbrt/ebb-protocol/internal';

/**
 * One Connection over an in-memory transport pair: the handshake in both
 * directions, what may cross before it completes, call/reply correlation,
 * errors, timeouts, close, and backpressure.
 */

const SECRET = 'connection-test-secret';

/** Connections opened by a test, closed after it so no timer outlives it. */
const opened: Connection[] = [];
afterEach(() => {
  for (const conn of opened.splice(0)) conn.close();
});

/** A call with encoded arguments and a decoded reply, as the messenger makes it. */
const callOn = (conn: Connection, ebbId: number, core: number, code: number, args: unknown[], timeoutMs: number) =>
  conn.call(ebbId, core, code, encodeArgs(args), timeoutMs, decodeReply);

/** Answers a call with a value, as the messenger does (a result MessagePack cannot carry becomes an error reply). */
function replyValue(conn: Connection, frame: Frame, value: unknown): void {
  let payload: Buffer;
  try {
    payload = encodeResult(value);
  } catch (error) {
    conn.reply(frame, false, encodeError(error));
    return;
  }
  conn.reply(frame, true, payload);
}

/** A handler that records everything and answers calls with `answer`. */
function recorder(answer: (conn: Connection, frame: Frame) => void = () => undefined) {
  const calls: Frame[] = [];
  const messages: Frame[] = [];
  const controls: ControlMessage[] = [];
  const closes: (Error | undefined)[] = [];
  const handler: ConnectionHandler = {
    onCall: (conn, frame) => {
      calls.push(frame);
      answer(conn, frame);
    },
    onMessage: (_conn, frame) => messages.push(frame),
    onControl: (_conn, message) => controls.push(message),
    onClose: (_conn, error) => closes.push(error),
  };
  return { handler, calls, messages, controls, closes };
}

interface PairOptions {
  clientSecret?: string;
  serverSecret?: string;
  limits?: ConnectionLimits;
  /** Wraps the client's transport (backpressure tests). */
  wrapClient?: (t: Transport) => Transport;
}

/** Client (node 2, core 0) ↔ server (node 1) after a handshake. */
async function pair(options: PairOptions = {}) {
  const [clientEnd, serverEnd] = memoryTransportPair('memory:client', 'memory:server');
  const client = options.wrapClient ? options.wrapClient(clientEnd) : clientEnd;
  const decide = vi.fn(() => ({ welcome: { nodeId: 1 } }));
  const [server, { conn, welcome }] = await Promise.all([
    Connection.accept(serverEnd, options.serverSecret ?? SECRET, 1, decide, options.limits),
    Connection.connect(client, options.clientSecret ?? SECRET, { purpose: HelloPurpose.peer, nodeId: 2, core: 0 }, options.limits),
  ]);
  opened.push(conn, server);
  return { client: conn, server, welcome, decide, clientTransport: client, serverTransport: serverEnd };
}

/** Settles both sides of a handshake (each may reject). */
async function handshakeOutcome(clientSecret: string, serverSecret: string) {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const decide = vi.fn(() => ({ welcome: { nodeId: 1 } }));
  const [server, client] = await Promise.allSettled([
    Connection.accept(serverEnd, serverSecret, 1, decide),
    Connection.connect(clientEnd, clientSecret, { purpose: HelloPurpose.peer, nodeId: 2, core: 0 }),
  ]);
  return { server, client, decide, clientEnd, serverEnd };
}

const reasonOf = (result: PromiseSettledResult<unknown>) => (result.status === 'rejected' ? result.reason : undefined);

/** A scripted peer built on the real decoder: reads frames, writes raw bytes. */
function scripted(transport: Transport) {
  const frames: Frame[] = [];
  let waiter: (() => void) | undefined;
  const decoder = new FrameDecoder({
    onFrame: (frame) => {
      frames.push({ ...frame, payload: Buffer.from(frame.payload) });
      waiter?.();
    },
    onError: (error) => {
      throw error;
    },
  });
  transport.onData((chunk) => decoder.write(chunk));
  let closed = false;
  transport.onClose(() => {
    closed = true;
    waiter?.();
  });
  return {
    frames,
    get closed() {
      return closed;
    },
    /** The next control message of `type` (waits for it). */
    async control<K extends ControlType>(type: K): Promise<{ body: ControlBodies[K]; frame: Frame }> {
      for (;;) {
        for (const frame of frames) {
          if (frame.kind !== FrameKind.control) continue;
          const message = decodeControl(frame.payload);
          if (message.type === type) return { body: message.body as ControlBodies[K], frame };
        }
        if (closed) throw new Error(`closed before ${type}`);
        await new Promise<void>((resolve) => (waiter = resolve));
      }
    },
    write(...buffers: Buffer[]) {
      transport.write(buffers);
    },
  };
}

const controlFrame = <K extends ControlType>(type: K, body: Partial<ControlBodies[K]>, callId = 0) =>
  encodeFrame({ kind: FrameKind.control, flags: 0, core: ANY_CORE, ebbId: 0, code: CONTROL_CODES[type], callId }, encodeControl(type, body));

const callFrame = (callId: number, args: unknown[] = [1, 2]) =>
  encodeFrame({ kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: 0x8001, code: 0xc0de, callId }, encodeArgs(args));

/** A valid Hello answering `nonce` with `secret`. */
function helloFrame(secret: string, nonce: Uint8Array) {
  const clientNonce = Buffer.alloc(32, 7);
  const hello = { purpose: HelloPurpose.peer, key: HelloKey.pairKey, nodeId: 9, incarnation: 0, core: 0, allocationId: '', host: '', port: 0, clientNonce };
  const key = new SecretKeyring(secret, { nodeId: 9, incarnation: 0 }).peerKey({ nodeId: 1, incarnation: 0 })!.key;
  const mac = helloMac(key, transcriptOf(hello, nonce, 1));
  return controlFrame('hello', { ...hello, protocolVersion: PROTOCOL_VERSION, handshakeVersion: HANDSHAKE_VERSION, mac });
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A Messenger (node 1) accepting one in-memory connection, with a spy sink and the faults it reports. */
function acceptingMessenger() {
  const [clientEnd, serverEnd] = memoryTransportPair();
  const messenger = new Messenger({ nodeId: 1, core: 0, keys: SECRET, connect: () => Promise.reject(new Error('unused')) });
  const sink = { call: vi.fn(), served: vi.fn(), message: vi.fn(), messageFailed: vi.fn(), describe: vi.fn(() => 'Sink.method') };
  messenger.serve(sink);
  const faults: Error[] = [];
  messenger.observe({ fault: (error) => faults.push(error) });
  messenger.accept(serverEnd);
  return { clientEnd, serverEnd, messenger, sink, faults };
}

describe('handshake', () => {
  it('succeeds when both sides hold the same secret, and each learns who the other is', async () => {
    const { client, server, welcome, decide } = await pair();
    expect(client.open).toBe(true);
    expect(server.open).toBe(true);
    expect(client.peerNodeId).toBe(1);
    expect(welcome.nodeId).toBe(1);
    expect(server.peerNodeId).toBe(2);
    expect(server.peerCore).toBe(0);
    expect(server.hello?.purpose).toBe(HelloPurpose.peer);
    expect(decide).toHaveBeenCalledTimes(1);
  });

  it('a wrong client secret: the client rejects with BAD_SECRET, and so does the server', async () => {
    const { server, client, decide, clientEnd, serverEnd } = await handshakeOutcome('a-wrong-secret', SECRET);
    expect(reasonOf(client)).toBeInstanceOf(JoinRejectedError);
    expect((reasonOf(client) as EbbError).code).toBe('BAD_SECRET');
    expect(reasonOf(server)).toBeInstanceOf(JoinRejectedError);
    expect((reasonOf(server) as EbbError).code).toBe('BAD_SECRET');
    // The application is never asked to admit a node that failed the MAC.
    expect(decide).not.toHaveBeenCalled();
    await tick();
    expect(clientEnd.closed).toBe(true);
    expect(serverEnd.closed).toBe(true);
  });

  it('a server that cannot prove the secret is refused by the client (BAD_SECRET)', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    const server = scripted(serverEnd);
    const connecting = Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.peer, nodeId: 2 });
    server.write(controlFrame('challenge', { nonce: Buffer.alloc(32, 1), protocolVersion: PROTOCOL_VERSION, handshakeVersion: HANDSHAKE_VERSION, nodeId: 1 }));
    const { body: hello } = await server.control('hello');
    expect(hello.mac.length).toBe(32);
    // The fake server accepts anything but cannot compute the welcome MAC.
    server.write(controlFrame('welcome', { nodeId: 1, mac: Buffer.alloc(32, 0xee) }));
    const error = await connecting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JoinRejectedError);
    expect((error as EbbError).code).toBe('BAD_SECRET');
  });

  it('a server of another protocol version is refused (UNSUPPORTED_VERSION)', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    const server = scripted(serverEnd);
    const connecting = Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.peer, nodeId: 2 });
    server.write(
      controlFrame('challenge', { nonce: Buffer.alloc(32, 1), protocolVersion: PROTOCOL_VERSION + 1, handshakeVersion: HANDSHAKE_VERSION, nodeId: 1 }),
    );
    const error = await connecting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JoinRejectedError);
    expect((error as EbbError).code).toBe('UNSUPPORTED_VERSION');
  });

  it('a rejecting decide() is a JOIN_REJECTED on both sides', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    const [server, client] = await Promise.allSettled([
      Connection.accept(serverEnd, SECRET, 1, () => ({ reject: { reason: RejectReason.badRequest, message: 'no room' } })),
      Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.join }),
    ]);
    expect((reasonOf(server) as EbbError).code).toBe('JOIN_REJECTED');
    expect(reasonOf(client)).toBeInstanceOf(JoinRejectedError);
    expect((reasonOf(client) as EbbError).code).toBe('JOIN_REJECTED');
  });

  it('times out when the peer never speaks', async () => {
    const [clientEnd] = memoryTransportPair();
    const error = await Connection.connect(clientEnd, SECRET, {}, { handshakeTimeoutMs: 30 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NodeUnavailableError);
    await tick();
    expect(clientEnd.closed).toBe(true);
  });
});

describe('frames before the handshake completes', () => {
  it('a call frame sent before any hello is never dispatched: the server closes with UNAUTHENTICATED', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    const decide = vi.fn(() => ({ welcome: { nodeId: 1 } }));
    const accepting = Connection.accept(serverEnd, SECRET, 1, decide);
    const client = scripted(clientEnd);
    client.write(callFrame(1));
    const error = await accepting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as EbbError).code).toBe('UNAUTHENTICATED');
    expect(decide).not.toHaveBeenCalled();
    await tick();
    expect(serverEnd.closed).toBe(true);
    expect(client.closed).toBe(true);
    // Nothing but the challenge was ever sent back: no reply, no error frame.
    expect(client.frames.map((f) => f.kind)).toEqual([FrameKind.control]);
  });

  it('a call frame right behind a valid hello (same chunk) is never dispatched', async () => {
    const { clientEnd, serverEnd, messenger, sink, faults } = acceptingMessenger();
    const client = scripted(clientEnd);
    const { body: challenge } = await client.control('challenge');
    client.write(helloFrame(SECRET, challenge.nonce), callFrame(1), callFrame(2));
    await vi.waitFor(() => expect(messenger.stats.rejectedHandshakes).toBe(1));
    await tick();
    expect(sink.call).not.toHaveBeenCalled();
    expect(faults).toHaveLength(1);
    expect(faults[0]).toBeInstanceOf(ProtocolError);
    expect((faults[0] as EbbError).code).toBe('UNAUTHENTICATED');
    expect(messenger.stats.connectionsAccepted).toBe(0);
    expect(serverEnd.closed).toBe(true);
    expect(client.frames.some((f) => f.kind === FrameKind.reply || f.kind === FrameKind.error)).toBe(false);
  });

  it('a message frame before the handshake is never delivered either', async () => {
    const { clientEnd, messenger, sink, faults } = acceptingMessenger();
    scripted(clientEnd).write(encodeFrame({ kind: FrameKind.message, flags: 0, core: ANY_CORE, ebbId: 0x8001, code: 1, callId: 0 }, encodeArgs(['hi'])));
    await vi.waitFor(() => expect(messenger.stats.rejectedHandshakes).toBe(1));
    expect(sink.message).not.toHaveBeenCalled();
    expect(faults.map((e) => (e as EbbError).code)).toEqual(['UNAUTHENTICATED']);
  });

  it('the client drops a server that sends a call before its welcome', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair();
    const server = scripted(serverEnd);
    const connecting = Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.peer, nodeId: 2 });
    server.write(controlFrame('challenge', { nonce: Buffer.alloc(32, 1), protocolVersion: PROTOCOL_VERSION, handshakeVersion: HANDSHAKE_VERSION, nodeId: 1 }));
    await server.control('hello');
    server.write(callFrame(5));
    const error = await connecting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as EbbError).code).toBe('UNAUTHENTICATED');
  });
});

describe('calls', () => {
  it('call → reply, correlated by call id, many in flight', async () => {
    const { client, server } = await pair();
    const rec = recorder((conn, frame) => {
      const [a, b] = decodeArgs(frame.payload) as number[];
      // Answer out of order to prove correlation by call id.
      setTimeout(() => replyValue(conn, frame, { sum: a + b, ebbId: frame.ebbId, code: frame.code }), a === 1 ? 20 : 0);
    });
    server.attach(rec.handler);
    const results = await Promise.all([
      callOn(client, 0x8001, ANY_CORE, 7, [1, 2], 1000),
      callOn(client, 0x8002, 3, 8, [10, 20], 1000),
      callOn(client, 0x8003, ANY_CORE, 9, [100, 200], 1000),
    ]);
    expect(results).toEqual([
      { sum: 3, ebbId: 0x8001, code: 7 },
      { sum: 30, ebbId: 0x8002, code: 8 },
      { sum: 300, ebbId: 0x8003, code: 9 },
    ]);
    expect(rec.calls.map((f) => f.core)).toEqual([ANY_CORE, 3, ANY_CORE]);
    expect(new Set(rec.calls.map((f) => f.callId)).size).toBe(3);
    expect(client.inFlight).toBe(0);
  });

  it('Buffers survive the trip as bytes; undefined travels as nil', async () => {
    const { client, server } = await pair();
    server.attach(recorder((conn, frame) => replyValue(conn, frame, decodeArgs(frame.payload))).handler);
    const reply = (await callOn(client, 0x8001, ANY_CORE, 1, [Buffer.from([1, 2, 3]), undefined, 'x'], 1000)) as unknown[];
    expect(Buffer.isBuffer(reply[0])).toBe(true);
    expect([...(reply[0] as Buffer)]).toEqual([1, 2, 3]);
    expect(reply[1]).toBeNull();
    expect(reply[2]).toBe('x');
  });

  it('one-way messages reach onMessage', async () => {
    const { client, server } = await pair();
    const rec = recorder();
    server.attach(rec.handler);
    client.sendMessage(0x8001, ANY_CORE, 42, encodeArgs(['hello']));
    await vi.waitFor(() => expect(rec.messages).toHaveLength(1));
    expect(rec.messages[0].code).toBe(42);
    expect(decodeArgs(rec.messages[0].payload)).toEqual(['hello']);
  });

  it('a callee error is rebuilt as its class, with code and data', async () => {
    class StockError extends EbbError {
      constructor(message: string, data?: unknown) {
        super('CONNECTION_TEST_OUT_OF_STOCK', message, { data });
      }
    }
    registerErrorCode('CONNECTION_TEST_OUT_OF_STOCK', (m, d) => new StockError(m, d));
    const { client, server } = await pair();
    server.attach(
      recorder((conn, frame) => {
        const [which] = decodeArgs(frame.payload) as string[];
        if (which === 'app') conn.reply(frame, false, encodeError(new StockError('no widgets left', { sku: 'w-1', left: 0 })));
        else if (which === 'runtime') conn.reply(frame, false, encodeError(new UnknownEbbError('no such Ebb')));
        else conn.reply(frame, false, encodeError(new RangeError('plain error')));
      }).handler,
    );

    const app = await callOn(client, 1, ANY_CORE, 1, ['app'], 1000).catch((e: unknown) => e);
    expect(app).toBeInstanceOf(StockError);
    expect((app as StockError).code).toBe('CONNECTION_TEST_OUT_OF_STOCK');
    expect((app as StockError).data).toEqual({ sku: 'w-1', left: 0 });

    const runtime = await callOn(client, 1, ANY_CORE, 1, ['runtime'], 1000).catch((e: unknown) => e);
    expect(runtime).toBeInstanceOf(UnknownEbbError);
    expect((runtime as EbbError).code).toBe('UNKNOWN_EBB');

    const plain = await callOn(client, 1, ANY_CORE, 1, ['plain'], 1000).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(RemoteError);
    expect((plain as EbbError).code).toBe('REMOTE_ERROR');
  });

  it('an unencodable result becomes an UNENCODABLE error reply naming it, not a hang', async () => {
    const { client, server } = await pair();
    server.attach(recorder((conn, frame) => replyValue(conn, frame, { big: 2n ** 70n })).handler);
    const error = await callOn(client, 1, ANY_CORE, 1, [], 1000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnencodableError);
    expect((error as EbbError).code).toBe('UNENCODABLE');
    expect((error as EbbError).data).toMatchObject({ path: 'the result.big' });
  });

  it('a timeout and an UNKNOWN_EBB reply name the Ebb and method as the caller knows them (limits.describe)', async () => {
    const { client, server } = await pair({ limits: { describe: (ebbId, code) => `Counter.add (0x${ebbId.toString(16)}, 0x${code.toString(16)})` } });
    server.attach(
      recorder((conn, frame) => (frame.code === 1 ? conn.reply(frame, false, encodeError(new UnknownEbbError('node 1 knows no Ebb 0xb689'))) : undefined))
        .handler,
    );
    const unknown = await callOn(client, 0xb689, ANY_CORE, 1, [], 1000).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownEbbError);
    expect((unknown as Error).message).toBe('Counter.add (0xb689, 0x1): node 1 knows no Ebb 0xb689');
    const late = await callOn(client, 0xb689, ANY_CORE, 2, [], 40).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(TimeoutError);
    expect((late as Error).message).toMatch(/^call to Counter\.add \(0xb689, 0x2\) on node 1 did not settle within 40 ms/);
  });

  it('a call that is never answered rejects with TimeoutError; a late reply is dropped', async () => {
    const { client, server } = await pair();
    const rec = recorder();
    server.attach(rec.handler);
    const started = Date.now();
    const error = await callOn(client, 0x8001, ANY_CORE, 1, [], 40).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as EbbError).code).toBe('TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(client.inFlight).toBe(0);
    // The late answer finds no pending call and changes nothing.
    replyValue(server, rec.calls[0], 'too late');
    await tick();
    await tick();
    expect(client.open).toBe(true);
    server.attach(recorder((conn, frame) => replyValue(conn, frame, 'on time')).handler);
    await expect(callOn(client, 0x8001, ANY_CORE, 1, [], 1000)).resolves.toBe('on time');
  });

  it('deadlines run from when a call is made, however long the connection was idle before (the clock is read per chunk and per batch)', async () => {
    const { client, server } = await pair();
    server.attach(recorder((conn, frame) => setTimeout(() => replyValue(conn, frame, 'late but in time'), 30)).handler);
    // A reply arrives (the connection reads the clock for it), then nothing happens for a while.
    await expect(callOn(client, 0x8001, ANY_CORE, 1, [], 1000)).resolves.toBe('late but in time');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // From a timer, not from a chunk or a batch: a stale clock would put this deadline 300 ms in the past.
    const started = performance.now();
    await expect(callOn(client, 0x8001, ANY_CORE, 1, [], 200)).resolves.toBe('late but in time');
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    const error = await callOn(client, 0x8001, ANY_CORE, 1, [], 10).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
  });

  it('closing the transport rejects every in-flight call with NodeUnavailableError', async () => {
    const { client, server, clientTransport } = await pair();
    const rec = recorder();
    server.attach(rec.handler);
    const closes = recorder();
    client.attach(closes.handler);
    const inFlight = [callOn(client, 1, ANY_CORE, 1, [], 0), callOn(client, 2, ANY_CORE, 2, [], 60_000), callOn(client, 3, 0, 3, [], 0)];
    await vi.waitFor(() => expect(rec.calls).toHaveLength(3));
    expect(client.inFlight).toBe(3);
    clientTransport.close();
    const results = await Promise.allSettled(inFlight);
    for (const result of results) {
      expect(reasonOf(result)).toBeInstanceOf(NodeUnavailableError);
      expect((reasonOf(result) as EbbError).code).toBe('NODE_UNAVAILABLE');
    }
    expect(client.open).toBe(false);
    expect(closes.closes).toHaveLength(1);
    // Later calls fail at once, with the same class.
    await expect(callOn(client, 1, ANY_CORE, 1, [], 0)).rejects.toBeInstanceOf(NodeUnavailableError);
    expect(() => client.sendMessage(1, ANY_CORE, 1, Buffer.alloc(0))).toThrow(NodeUnavailableError);
  });

  it('the peer closing its end rejects in-flight calls too', async () => {
    const { client, server } = await pair();
    const rec = recorder();
    server.attach(rec.handler);
    const call = callOn(client, 1, ANY_CORE, 1, [], 0);
    await vi.waitFor(() => expect(rec.calls).toHaveLength(1));
    server.close();
    await expect(call).rejects.toBeInstanceOf(NodeUnavailableError);
  });

  it('fail(error) rejects in-flight calls with that error', async () => {
    const { client, server } = await pair();
    server.attach(recorder().handler);
    const call = callOn(client, 1, ANY_CORE, 1, [], 0);
    const reason = new NodeUnavailableError('node 1 missed its heartbeats');
    client.fail(reason);
    await expect(call).rejects.toBe(reason);
  });
});

/**
 * A transport that can be "choked" like a socket whose peer stopped reading:
 * writes are held and return false, and `drain` fires only on `release()`.
 */
class ChokeableTransport implements Transport {
  choked = false;
  held: Buffer[][] = [];
  heldBytes = 0;
  readonly #inner: Transport;
  readonly #drain: (() => void)[] = [];

  constructor(inner: Transport) {
    this.#inner = inner;
  }

  write(chunks: Buffer[]): boolean {
    if (this.choked) {
      this.held.push(chunks);
      this.heldBytes += chunks.reduce((n, c) => n + c.length, 0);
      return false;
    }
    return this.#inner.write(chunks);
  }

  release(): void {
    this.choked = false;
    for (const chunks of this.held.splice(0)) this.#inner.write(chunks);
    this.heldBytes = 0;
    for (const h of this.#drain) h();
  }

  get bufferedBytes() {
    return this.heldBytes;
  }
  get closed() {
    return this.#inner.closed;
  }
  get remoteAddress() {
    return this.#inner.remoteAddress;
  }
  close(reason?: Error) {
    this.#inner.close(reason);
  }
  onData(handler: (chunk: Buffer) => void) {
    this.#inner.onData(handler);
  }
  onDrain(handler: () => void) {
    this.#drain.push(handler);
  }
  onClose(handler: (error?: Error) => void) {
    this.#inner.onClose(handler);
  }
}

describe('backpressure', () => {
  const maxQueuedBytes = 4096;
  const payload = Buffer.alloc(500, 1);

  async function choked() {
    let transport!: ChokeableTransport;
    const p = await pair({ limits: { maxQueuedBytes }, wrapClient: (t) => (transport = new ChokeableTransport(t)) });
    const rec = recorder((conn, frame) => replyValue(conn, frame, frame.callId));
    p.server.attach(rec.handler);
    transport.choked = true;
    // The first write after choking returns false: the connection is now blocked.
    const first = callOn(p.client, 1, ANY_CORE, 1, [payload], 0);
    await tick();
    expect(transport.held).toHaveLength(1);
    first.catch(() => undefined);
    return { ...p, transport, rec, first };
  }

  it('a socket that never drains: once maxQueuedBytes are queued, new calls reject with OverloadedError', async () => {
    const { client, transport, first } = await choked();
    const accepted: Promise<unknown>[] = [first];
    let overloaded: unknown;
    for (let i = 0; i < 100 && overloaded === undefined; i++) {
      const call = callOn(client, 1, ANY_CORE, 1, [payload], 0);
      const outcome = await Promise.race([
        call.then(
          () => 'settled',
          (e: unknown) => e,
        ),
        tick().then(() => 'pending'),
      ]);
      if (outcome === 'pending') accepted.push(call);
      else overloaded = outcome;
    }
    expect(overloaded).toBeInstanceOf(OverloadedError);
    expect((overloaded as EbbError).code).toBe('OVERLOADED');
    // Bounded: the queue held about maxQueuedBytes, not more.
    const frameBytes = payload.length + 24 + 8;
    expect((accepted.length - 1) * frameBytes).toBeLessThanOrEqual(maxQueuedBytes + frameBytes);
    expect((accepted.length - 1) * frameBytes).toBeGreaterThan(maxQueuedBytes - 2 * frameBytes);
    // Nothing more reached the transport while it was choked.
    expect(transport.held).toHaveLength(1);
    // Messages are refused the same way, synchronously.
    expect(() => client.sendMessage(1, ANY_CORE, 1, payload)).toThrow(OverloadedError);
    // Refused calls never became in-flight.
    expect(client.inFlight).toBe(accepted.length);
    // The accepted calls are still pending; closing settles them all.
    client.close();
    const settled = await Promise.allSettled(accepted);
    for (const result of settled) expect(reasonOf(result)).toBeInstanceOf(NodeUnavailableError);
  });

  it('when the socket drains, the queued calls go out and are answered, and new calls are accepted again', async () => {
    const { client, transport, first, rec } = await choked();
    const queued = [first];
    for (let i = 0; i < 3; i++) queued.push(callOn(client, 1, ANY_CORE, 1, [payload], 0));
    await tick();
    expect(rec.calls).toHaveLength(0);
    transport.release();
    const ids = await Promise.all(queued);
    expect(ids).toHaveLength(4);
    expect(rec.calls).toHaveLength(4);
    await expect(callOn(client, 1, ANY_CORE, 1, [payload], 1000)).resolves.toEqual(expect.any(Number));
  });

  it('the bound is per connection: a flood of calls never exceeds it while blocked', async () => {
    const { client } = await choked();
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => callOn(client, 1, ANY_CORE, 1, [payload], 20)));
    const overloaded = outcomes.filter((r) => reasonOf(r) instanceof OverloadedError).length;
    const timedOut = outcomes.filter((r) => reasonOf(r) instanceof TimeoutError).length;
    // Every call settles: the queued ones time out, the rest are refused.
    expect(overloaded + timedOut).toBe(50);
    expect(overloaded).toBeGreaterThan(40);
  });
});
