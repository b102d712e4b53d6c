// The request/reply matcher: settle-once, deadlines from one timer, cancellation; and a
// connection's deadline: TimeoutError near it, a cancel frame on the wire, the connection kept.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ANY_CORE,
  Connection,
  decodeReply,
  encodeArgs,
  encodeValue,
  FrameDecoder,
  FrameKind,
  HelloPurpose,
  Matcher,
  memoryTransportPair,
  TimeoutError,
  type Frame,
  type Transport,
} from '@ebbrt/ebb-protocol/internal';

const SECRET = 'matcher-test-secret';
const identity = (_ok: boolean, payload: Uint8Array) => payload;

afterEach(() => vi.restoreAllMocks());

describe('Matcher', () => {
  it('settles each request once: a reply after the deadline or a second reply changes nothing', async () => {
    const matcher = new Matcher<string>((_id, tag, ms) => new TimeoutError(`${tag} timed out after ${ms} ms`));
    const id = matcher.nextId();
    const pending = matcher.open(id, 30, identity, 'slow');
    await expect(pending).rejects.toThrow('slow timed out after 30 ms');
    expect(matcher.settle(id, true, Buffer.from('late'))).toBe(false);
    const other = matcher.nextId();
    const answered = matcher.open(other, 1000, identity, 'fast');
    expect(matcher.settle(other, true, Buffer.from('a'))).toBe(true);
    expect(matcher.settle(other, true, Buffer.from('b'))).toBe(false);
    await expect(answered).resolves.toEqual(Buffer.from('a'));
    expect(matcher.size).toBe(0);
  });

  it('tells the meter of a request once how it ended: a decoded reply, an error reply, a deadline, a cancel or the link closing', async () => {
    const outcomes: Array<[string, boolean]> = [];
    const meter = (name: string) => ({
      settled: (ms: number, ok: boolean) => {
        expect(ms).toBeGreaterThanOrEqual(0);
        outcomes.push([name, ok]);
      },
    });
    const matcher = new Matcher<string>();
    const strict = (ok: boolean, payload: Uint8Array) => {
      if (!ok) throw new Error('error reply');
      return payload;
    };
    const ids = ['reply', 'error', 'deadline', 'cancel', 'closed'].map((name) => [name, matcher.nextId()] as const);
    const settled = ids.map(([name, id]) => matcher.open(id, name === 'deadline' ? 20 : 5000, strict, name, meter(name)).catch(() => undefined));
    matcher.settle(ids[0][1], true, Buffer.from('ok'));
    matcher.settle(ids[1][1], false, Buffer.from('no'));
    matcher.cancel(ids[3][1], new Error('cancelled'));
    await settled[2];
    matcher.failAll(new Error('closed'));
    matcher.settle(ids[0][1], true, Buffer.from('again'));
    await Promise.all(settled);
    expect(outcomes).toEqual([
      ['reply', true],
      ['error', false],
      ['cancel', false],
      ['deadline', false],
      ['closed', false],
    ]);
  });

  it('arms one timer for many requests with the same deadline, and each rejects near it', async () => {
    const matcher = new Matcher();
    const arm = vi.spyOn(globalThis, 'setTimeout');
    const started = performance.now();
    const outcomes = Array.from({ length: 1000 }, () =>
      matcher.open(matcher.nextId(), 60, identity, undefined).then(
        () => 'settled',
        (e: unknown) => [e, performance.now() - started] as const,
      ),
    );
    expect(arm.mock.calls.length).toBe(1);
    for (const outcome of await Promise.all(outcomes)) {
      const [error, at] = outcome as readonly [unknown, number];
      expect(error).toBeInstanceOf(TimeoutError);
      expect(at).toBeGreaterThanOrEqual(55);
      expect(at).toBeLessThan(1000);
    }
  });

  it('an earlier deadline re-arms; the later one still fires; a decoder that throws rejects', async () => {
    const matcher = new Matcher();
    const late = matcher.open(matcher.nextId(), 200, identity, undefined).catch((e: unknown) => e);
    const early = matcher.open(matcher.nextId(), 20, identity, undefined).catch((e: unknown) => e);
    expect(await early).toBeInstanceOf(TimeoutError);
    expect(matcher.size).toBe(1);
    expect(await late).toBeInstanceOf(TimeoutError);
    const id = matcher.nextId();
    const bad = matcher.open(
      id,
      0,
      () => {
        throw new RangeError('bad reply');
      },
      undefined,
    );
    matcher.settle(id, true, Buffer.alloc(0));
    await expect(bad).rejects.toBeInstanceOf(RangeError);
  });

  it('cancel and failAll reject what is pending and disarm', async () => {
    const matcher = new Matcher();
    const a = matcher.nextId();
    const first = matcher.open(a, 0, identity, undefined);
    expect(matcher.cancel(a, new Error('aborted'))).toBe(true);
    await expect(first).rejects.toThrow('aborted');
    const rest = [matcher.open(matcher.nextId(), 50, identity, undefined), matcher.open(matcher.nextId(), 0, identity, undefined)];
    matcher.failAll(new Error('closed'));
    for (const r of rest) await expect(r).rejects.toThrow('closed');
    expect(matcher.size).toBe(0);
  });
});

describe('a connection call past its deadline', () => {
  it('rejects with TimeoutError near the deadline, sends a cancel echoing the call, and the connection keeps serving', async () => {
    const [clientEnd, serverEnd] = memoryTransportPair('memory:client', 'memory:server');
    const written: Frame[] = [];
    const decoder = new FrameDecoder({
      onFrame: (frame) => written.push({ ...frame, payload: Buffer.from(frame.payload) }),
      onError: (error) => {
        throw error;
      },
    });
    const spy: Transport = {
      write: (buffers) => {
        for (const b of buffers) decoder.write(b);
        return clientEnd.write(buffers);
      },
      get bufferedBytes() {
        return clientEnd.bufferedBytes;
      },
      close: (reason) => clientEnd.close(reason),
      get closed() {
        return clientEnd.closed;
      },
      remoteAddress: clientEnd.remoteAddress,
      onData: (handler) => clientEnd.onData(handler),
      onDrain: (handler) => clientEnd.onDrain(handler),
      onClose: (handler) => clientEnd.onClose(handler),
    };
    const [server, { conn: client }] = await Promise.all([
      Connection.accept(serverEnd, SECRET, 1, () => ({ welcome: { nodeId: 1 } })),
      Connection.connect(spy, SECRET, { purpose: HelloPurpose.peer, nodeId: 2, core: 0 }),
    ]);
    let answer = false;
    server.attach({
      onCall: (conn, frame) => {
        if (answer) conn.reply(frame, true, encodeValue('served'));
      },
      onMessage: () => undefined,
      onControl: () => undefined,
      onClose: () => undefined,
    });
    const started = performance.now();
    const error = await client.call(0x8001, 3, 0xc0de, encodeArgs([1]), 100, decodeReply).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(1000);
    await vi.waitFor(() => expect(written.some((f) => f.kind === FrameKind.cancel)).toBe(true));
    const call = written.find((f) => f.kind === FrameKind.call)!;
    const cancel = written.find((f) => f.kind === FrameKind.cancel)!;
    expect(cancel).toMatchObject({ callId: call.callId, ebbId: 0x8001, core: 3, code: 0xc0de });
    expect(cancel.payload.length).toBe(0);
    answer = true;
    expect(client.open).toBe(true);
    await expect(client.call(0x8001, ANY_CORE, 0xc0de, encodeArgs([2]), 1000, decodeReply)).resolves.toBe('served');
    client.close();
    server.close();
  });
});
