import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FrameDecoder,
  HEADER_SIZE,
  ProtocolError,
  decodeArgs,
  decodeControl,
  decodeError,
  decodeValue,
  encodeArgs,
  encodeControl,
  encodeFrame,
  type FrameKind,
} from '@ebbrt/ebb-protocol/internal';

/** mulberry32: a small seeded PRNG, so every run feeds the same inputs. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, bytes };
}

type Rng = ReturnType<typeof prng>;

interface Result {
  frames: string[];
  error?: string;
}

const FRAME_FAULTS = new Set(['BAD_MAGIC', 'BAD_VERSION', 'BAD_KIND', 'FRAME_TOO_LARGE', 'TRUNCATED']);

const describeFrame = (kind: number, flags: number, core: number, ebbId: number, code: number, callId: number, payload: Uint8Array) =>
  `${kind}/${flags}/${core}/${ebbId}/${code}/${callId}/${Buffer.from(payload).toString('hex')}`;

/** The obvious whole-buffer parser, written from PROTOCOL.md §3, as the oracle. */
function reference(bytes: Buffer, max: number): Result {
  const frames: string[] = [];
  let off = 0;
  while (bytes.length - off >= HEADER_SIZE) {
    if (bytes[off] !== 0x45 || bytes[off + 1] !== 0x42) return { frames, error: 'BAD_MAGIC' };
    if (bytes[off + 2] !== 1) return { frames, error: 'BAD_VERSION' };
    if (bytes[off + 3] < 1 || bytes[off + 3] > 6) return { frames, error: 'BAD_KIND' };
    const length = bytes.readUInt32LE(off + 8);
    if (length > max) return { frames, error: 'FRAME_TOO_LARGE' };
    if (bytes.length - off - HEADER_SIZE < length) break;
    frames.push(
      describeFrame(
        bytes[off + 3],
        bytes.readUInt16LE(off + 4),
        bytes.readUInt16LE(off + 6),
        bytes.readUInt32LE(off + 12),
        bytes.readUInt32LE(off + 16),
        bytes.readUInt32LE(off + 20),
        bytes.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length),
      ),
    );
    off += HEADER_SIZE + length;
  }
  return off < bytes.length ? { frames, error: 'TRUNCATED' } : { frames };
}

/**
 * Runs the real decoder over `chunks`. Returns its result, or a string
 * describing a broken invariant (a thrown exception, a non-ProtocolError fault,
 * two faults, or more buffered bytes than one header plus one max payload).
 */
function decode(chunks: Buffer[], max: number): Result | string {
  const result: Result = { frames: [] };
  let faults = 0;
  let bad: string | undefined;
  const decoder = new FrameDecoder({
    maxFrameSize: max,
    onFrame: (f) => result.frames.push(describeFrame(f.kind, f.flags, f.core, f.ebbId, f.code, f.callId, f.payload)),
    onError: (e) => {
      faults++;
      if (!(e instanceof ProtocolError) || !FRAME_FAULTS.has(e.code)) bad = `onError got ${String(e)}`;
      result.error = e.code;
    },
  });
  try {
    for (const chunk of chunks) {
      decoder.write(chunk);
      if (decoder.bufferedBytes > HEADER_SIZE + max) return `bufferedBytes ${decoder.bufferedBytes} > ${HEADER_SIZE + max}`;
    }
    decoder.end();
  } catch (e) {
    return `threw ${String(e)}`;
  }
  if (bad) return bad;
  if (faults > 1) return `${faults} faults reported`;
  if (decoder.bufferedBytes !== 0) return `bufferedBytes ${decoder.bufferedBytes} after end()`;
  return result;
}

/** A valid stream of 1..8 frames with small random payloads. */
function validStream(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  const n = 1 + rng.int(8);
  for (let i = 0; i < n; i++) {
    const size = rng.next() < 0.2 ? 0 : rng.int(rng.next() < 0.9 ? 40 : 300);
    parts.push(
      encodeFrame(
        {
          kind: (1 + rng.int(6)) as FrameKind,
          flags: rng.int(0x10000),
          core: rng.int(0x10000),
          ebbId: rng.int(2 ** 32),
          code: rng.int(2 ** 32),
          callId: rng.int(2 ** 32),
        },
        rng.bytes(size),
      ),
    );
  }
  return Buffer.concat(parts);
}

/** One mutated (or not) input. */
function mutate(rng: Rng, input: Buffer): Buffer {
  const bytes = Buffer.from(input);
  switch (rng.int(9)) {
    case 0: // untouched
      return bytes;
    case 1: {
      // bit flips
      const flips = 1 + rng.int(4);
      for (let i = 0; i < flips && bytes.length > 0; i++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      return bytes;
    }
    case 2: // truncation
      return bytes.subarray(0, rng.int(bytes.length + 1));
    case 3: {
      // insertion of random bytes
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), rng.bytes(1 + rng.int(12)), bytes.subarray(at)]);
    }
    case 4: {
      // deletion of a range
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + rng.int(30))]);
    }
    case 5: {
      // a random length field in one of the frame headers
      let off = 0;
      const hops = rng.int(3);
      for (let i = 0; i < hops && off + HEADER_SIZE <= bytes.length; i++) off += HEADER_SIZE + bytes.readUInt32LE(off + 8);
      if (off + HEADER_SIZE <= bytes.length) bytes.writeUInt32LE(rng.next() < 0.5 ? rng.int(2 ** 32) : rng.int(400), off + 8);
      return bytes;
    }
    case 6: {
      // overwrite a run with random bytes
      const at = rng.int(bytes.length + 1);
      rng.bytes(1 + rng.int(8)).copy(bytes, at);
      return bytes;
    }
    case 7: // pure random bytes
      return rng.bytes(rng.int(200));
    default: // random bytes behind a valid-looking magic and version
      return Buffer.concat([Buffer.from([0x45, 0x42, 0x01, rng.int(8)]), rng.bytes(rng.int(120))]);
  }
}

/** Random chunking: 1..6 cut points, sometimes byte by byte. */
function split(rng: Rng, bytes: Buffer): Buffer[] {
  if (rng.next() < 0.03) return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  const cuts = Array.from({ length: rng.int(6) }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

const MAX_SIZES = [0, 16, 64, 300, 1024, DEFAULT_MAX_FRAME_SIZE];

describe('fuzz', () => {
  it('FrameDecoder: 100,000 random and mutated streams only yield frames or a ProtocolError, match the oracle, stay bounded', () => {
    const rng = prng(0xebb0001);
    const failures: string[] = [];
    let frames = 0;
    const faults = new Map<string, number>();
    const started = performance.now();
    let base = validStream(rng);
    for (let i = 0; i < 100_000 && failures.length < 5; i++) {
      if (i % 4 === 0) base = validStream(rng);
      const input = mutate(rng, base);
      const max = MAX_SIZES[rng.int(MAX_SIZES.length)];
      const got = decode(split(rng, input), max);
      const want = reference(input, max);
      if (typeof got === 'string') {
        failures.push(`#${i} max=${max} ${got}: ${input.toString('hex')}`);
        continue;
      }
      if (got.error !== want.error || got.frames.length !== want.frames.length || got.frames.some((f, k) => f !== want.frames[k])) {
        failures.push(`#${i} max=${max} got ${JSON.stringify(got)} want ${JSON.stringify(want)}: ${input.toString('hex')}`);
      }
      frames += got.frames.length;
      if (got.error) faults.set(got.error, (faults.get(got.error) ?? 0) + 1);
    }
    expect(failures).toEqual([]);
    // the corpus really exercised every path
    expect(frames).toBeGreaterThan(100_000);
    for (const code of FRAME_FAULTS) expect(faults.get(code) ?? 0, code).toBeGreaterThan(500);
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it('FrameDecoder: bounded memory on streams that announce huge frames', () => {
    const rng = prng(0xebb0002);
    for (let i = 0; i < 200; i++) {
      const max = 1 + rng.int(4096);
      const header = encodeFrame({ kind: 2, flags: 0, core: 0, ebbId: 1, code: 1, callId: 1 });
      header.writeUInt32LE(rng.next() < 0.5 ? max : max + 1 + rng.int(1000), 8);
      const stream = Buffer.concat([header, rng.bytes(max + 50)]);
      const got = decode(split(rng, stream), max);
      expect(typeof got === 'string' ? got : 'ok').toBe('ok');
    }
  });

  it('payload and control decoders: 30,000 garbage inputs throw only ProtocolError and leave the codecs working', () => {
    const rng = prng(0xebb0003);
    const goodArgs = encodeArgs([1, 'x', Buffer.from([9, 9])]);
    const goodControl = encodeControl('heartbeat', { nodeId: 7, sentAtMs: 1_700_000_000_000, inFlight: 1, rssBytes: 2 ** 33 });
    const failures: string[] = [];
    const codes = new Map<string, number>();
    const decoders: Array<[string, (b: Uint8Array) => unknown, string]> = [
      ['decodeValue', decodeValue, 'BAD_PAYLOAD'],
      ['decodeArgs', decodeArgs, 'BAD_PAYLOAD'],
      ['decodeError', decodeError, 'BAD_PAYLOAD'],
      ['decodeControl', decodeControl, 'BAD_CONTROL'],
    ];
    for (let i = 0; i < 30_000 && failures.length < 5; i++) {
      const [name, fn, code] = decoders[i % decoders.length];
      const valid = name === 'decodeControl' ? goodControl : goodArgs;
      const input = rng.next() < 0.5 ? rng.bytes(rng.int(64)) : mutate(rng, valid);
      try {
        fn(input);
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.code !== code) failures.push(`#${i} ${name} threw ${String(e)}: ${input.toString('hex')}`);
        else codes.set(name, (codes.get(name) ?? 0) + 1);
      }
      if (i % 100 === 0) {
        expect(decodeArgs(goodArgs)).toEqual([1, 'x', Buffer.from([9, 9])]);
        expect(decodeControl(goodControl).type).toBe('heartbeat');
      }
    }
    expect(failures).toEqual([]);
    for (const [name] of decoders) expect(codes.get(name) ?? 0, name).toBeGreaterThan(100);
  });
});
