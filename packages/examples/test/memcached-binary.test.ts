/**
 * The memcached binary protocol parser and response header encoder: header
 * fixtures as hex, every opcode, the per-opcode length rules memcached 1.6
 * enforces, quiet opcodes, skipped bodies, and streams run three ways.
 */
import { describe, expect, test } from 'vitest';
import { BinaryParser, BinaryStatus, Op, writeResponseHeader, type BinaryRequest } from '@ebbrt/examples/memcached/binary-protocol.js';
import { MemcachedProtocolError } from '@ebbrt/examples/memcached/errors.js';
import { parsePaused } from './paused-parse.js';

interface ReqOptions {
  key?: string;
  extras?: Buffer;
  value?: string | Buffer;
  cas?: bigint;
  opaque?: number;
  magic?: number;
  bodyLength?: number;
}

function req(opcode: number, o: ReqOptions = {}): Buffer {
  const key = Buffer.from(o.key ?? '');
  const extras = o.extras ?? Buffer.alloc(0);
  const value = typeof o.value === 'string' ? Buffer.from(o.value) : (o.value ?? Buffer.alloc(0));
  const header = Buffer.alloc(24);
  header[0] = o.magic ?? 0x80;
  header[1] = opcode;
  header.writeUInt16BE(key.length, 2);
  header[4] = extras.length;
  header.writeUInt32BE(o.bodyLength ?? extras.length + key.length + value.length, 8);
  header.writeUInt32BE(o.opaque ?? 0, 12);
  header.writeBigUInt64BE(o.cas ?? 0n, 16);
  return Buffer.concat([header, extras, key, value]);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const setExtras = (flags: number, exptime: number) => Buffer.concat([u32(flags), u32(exptime)]);
const deltaExtras = (delta: bigint, initial: bigint, exptime: number) => {
  const b = Buffer.alloc(20);
  b.writeBigUInt64BE(delta, 0);
  b.writeBigUInt64BE(initial, 8);
  b.writeUInt32BE(exptime, 16);
  return b;
};

function snapshot(r: BinaryRequest): Record<string, unknown> {
  return {
    opcode: r.opcode,
    command: r.command,
    quiet: r.quiet,
    opaque: r.opaque,
    cas: r.cas,
    extras: Buffer.from(r.body.subarray(r.bodyStart, r.bodyStart + r.extrasLength)).toString('hex'),
    key: Buffer.from(r.body.subarray(r.keyStart, r.keyStart + r.keyLength)).toString(),
    ...(r.tooLarge ? { tooLarge: true } : { value: Buffer.from(r.body.subarray(r.valueStart, r.valueStart + r.valueLength)).toString() }),
  };
}

function parse(chunks: Uint8Array[]): { requests: Record<string, unknown>[]; faults: { code: string; opcode: number }[] } {
  const requests: Record<string, unknown>[] = [];
  const faults: { code: string; opcode: number }[] = [];
  const parser = new BinaryParser(
    (r) => requests.push(snapshot(r)),
    (e, r) => {
      expect(e).toBeInstanceOf(MemcachedProtocolError);
      faults.push({ code: e.code, opcode: r.opcode });
    },
  );
  for (const chunk of chunks) parser.write(chunk);
  return { requests, faults };
}

function threeWays(input: Buffer): ReturnType<typeof parse> {
  const whole = parse([input]);
  expect(parse(Array.from(input, (b) => Uint8Array.of(b)))).toEqual(whole);
  for (let i = 1; i < input.length; i++) expect(parse([input.subarray(0, i), input.subarray(i)]), `split at ${i}`).toEqual(whole);
  return whole;
}

describe('BinaryParser', () => {
  test('a get header, as hex', () => {
    const bytes = Buffer.from('80000001' + '00000000' + '00000001' + '0000002a' + '0000000000000007' + '61', 'hex');
    expect(threeWays(bytes).requests).toEqual([{ opcode: 0, command: 0, quiet: false, opaque: 42, cas: 7, extras: '', key: 'a', value: '' }]);
  });

  test('every opcode: command, quiet flag, extras, key and value', () => {
    const stream = Buffer.concat([
      req(Op.GET, { key: 'a', opaque: 1 }),
      req(Op.GETQ, { key: 'a' }),
      req(Op.GETK, { key: 'a' }),
      req(Op.GETKQ, { key: 'a' }),
      req(Op.SET, { key: 'k', extras: setExtras(7, 100), value: 'hello', cas: 5n }),
      req(Op.SETQ, { key: 'k', extras: setExtras(0, 0), value: '' }),
      req(Op.ADD, { key: 'k', extras: setExtras(0, 0), value: 'x' }),
      req(Op.ADDQ, { key: 'k', extras: setExtras(0, 0), value: 'x' }),
      req(Op.REPLACE, { key: 'k', extras: setExtras(0, 0), value: 'x' }),
      req(Op.REPLACEQ, { key: 'k', extras: setExtras(0, 0), value: 'x' }),
      req(Op.APPEND, { key: 'k', value: '>' }),
      req(Op.APPENDQ, { key: 'k', value: '>' }),
      req(Op.PREPEND, { key: 'k', value: '<' }),
      req(Op.PREPENDQ, { key: 'k', value: '<' }),
      req(Op.DELETE, { key: 'k' }),
      req(Op.DELETEQ, { key: 'k', cas: 9n }),
      req(Op.INCREMENT, { key: 'n', extras: deltaExtras(1n, 10n, 0) }),
      req(Op.INCREMENTQ, { key: 'n', extras: deltaExtras(1n, 10n, 0) }),
      req(Op.DECREMENT, { key: 'n', extras: deltaExtras(2n, 0n, 0xffffffff) }),
      req(Op.DECREMENTQ, { key: 'n', extras: deltaExtras(2n, 0n, 0) }),
      req(Op.TOUCH, { key: 't', extras: u32(60) }),
      req(Op.GAT, { key: 't', extras: u32(60) }),
      req(Op.GATQ, { key: 't', extras: u32(60) }),
      req(Op.GATK, { key: 't', extras: u32(60) }),
      req(Op.GATKQ, { key: 't', extras: u32(60) }),
      req(Op.FLUSH),
      req(Op.FLUSH, { extras: u32(10) }),
      req(Op.FLUSHQ),
      req(Op.STAT),
      req(Op.STAT, { key: 'settings' }),
      req(Op.VERSION),
      req(Op.NOOP, { opaque: 0xdeadbeef }),
      req(Op.QUITQ),
      req(Op.QUIT),
    ]);
    const { requests, faults } = threeWays(stream);
    expect(faults).toEqual([]);
    const short = requests.map((r) => [r.opcode, r.command, r.quiet]);
    expect(short).toEqual([
      [Op.GET, Op.GET, false],
      [Op.GETQ, Op.GET, true],
      [Op.GETK, Op.GETK, false],
      [Op.GETKQ, Op.GETK, true],
      [Op.SET, Op.SET, false],
      [Op.SETQ, Op.SET, true],
      [Op.ADD, Op.ADD, false],
      [Op.ADDQ, Op.ADD, true],
      [Op.REPLACE, Op.REPLACE, false],
      [Op.REPLACEQ, Op.REPLACE, true],
      [Op.APPEND, Op.APPEND, false],
      [Op.APPENDQ, Op.APPEND, true],
      [Op.PREPEND, Op.PREPEND, false],
      [Op.PREPENDQ, Op.PREPEND, true],
      [Op.DELETE, Op.DELETE, false],
      [Op.DELETEQ, Op.DELETE, true],
      [Op.INCREMENT, Op.INCREMENT, false],
      [Op.INCREMENTQ, Op.INCREMENT, true],
      [Op.DECREMENT, Op.DECREMENT, false],
      [Op.DECREMENTQ, Op.DECREMENT, true],
      [Op.TOUCH, Op.TOUCH, false],
      [Op.GAT, Op.GAT, false],
      [Op.GATQ, Op.GAT, true],
      [Op.GATK, Op.GATK, false],
      [Op.GATKQ, Op.GATK, true],
      [Op.FLUSH, Op.FLUSH, false],
      [Op.FLUSH, Op.FLUSH, false],
      [Op.FLUSHQ, Op.FLUSH, true],
      [Op.STAT, Op.STAT, false],
      [Op.STAT, Op.STAT, false],
      [Op.VERSION, Op.VERSION, false],
      [Op.NOOP, Op.NOOP, false],
      [Op.QUITQ, Op.QUIT, true],
      [Op.QUIT, Op.QUIT, false],
    ]);
    expect(requests[0]).toMatchObject({ opaque: 1, key: 'a' });
    expect(requests[4]).toMatchObject({ cas: 5, extras: '0000000700000064', key: 'k', value: 'hello' });
    expect(requests[15]).toMatchObject({ cas: 9, key: 'k' });
    expect(requests[18]).toMatchObject({ extras: '0000000000000002' + '0000000000000000' + 'ffffffff' });
    expect(requests[29]).toMatchObject({ key: 'settings' });
    expect(requests[31]).toMatchObject({ opaque: 0xdeadbeef });
  });

  test('a CAS beyond 2^53 cannot match any item: it reads as -1', () => {
    expect(parse([req(Op.DELETE, { key: 'k', cas: 1n << 60n })]).requests[0]).toMatchObject({ cas: -1 });
    expect(parse([req(Op.DELETE, { key: 'k', cas: (1n << 53n) - 1n })]).requests[0]).toMatchObject({ cas: 2 ** 53 - 1 });
  });

  test('unknown opcodes are emitted and their body skipped', () => {
    const { requests, faults } = threeWays(Buffer.concat([req(0x40, { value: 'abcd' }), req(0x1b, { extras: u32(1) }), req(Op.NOOP)]));
    expect(faults).toEqual([]);
    expect(requests.map((r) => r.opcode)).toEqual([0x40, 0x1b, Op.NOOP]);
  });

  test('a value too large for an item is skipped after its extras and key', () => {
    const value = Buffer.alloc(1 << 20, 0x76);
    const input = Buffer.concat([req(Op.SET, { key: 'big', extras: setExtras(0, 0), value }), req(Op.GET, { key: 'big' })]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7777) chunks.push(input.subarray(i, i + 7777));
    const { requests } = parse(chunks);
    expect(requests).toEqual([
      { opcode: Op.SET, command: Op.SET, quiet: false, opaque: 0, cas: 0, extras: '0000000000000000', key: 'big', tooLarge: true },
      { opcode: Op.GET, command: Op.GET, quiet: false, opaque: 0, cas: 0, extras: '', key: 'big', value: '' },
    ]);
  });

  const bad: [string, Buffer][] = [
    ['get with extras', req(Op.GET, { key: 'a', extras: u32(0) })],
    ['get without key', req(Op.GET)],
    ['get with a value', req(Op.GET, { key: 'a', value: 'x' })],
    ['set without extras', req(Op.SET, { key: 'a', value: 'x' })],
    ['set without key', req(Op.SET, { extras: setExtras(0, 0), value: 'x' })],
    ['delete with extras', req(Op.DELETE, { key: 'a', extras: u32(0) })],
    ['incr with short extras', req(Op.INCREMENT, { key: 'a', extras: u32(0) })],
    ['append with extras', req(Op.APPEND, { key: 'a', extras: setExtras(0, 0), value: 'x' })],
    ['flush with 2 bytes of extras', req(Op.FLUSH, { extras: Buffer.alloc(2) })],
    ['noop with a body', req(Op.NOOP, { value: 'x' })],
    ['version with a key', req(Op.VERSION, { key: 'a' })],
    ['touch without extras', req(Op.TOUCH, { key: 'a' })],
    ['stat with extras', req(Op.STAT, { extras: u32(0) })],
    ['a 251-byte key', req(Op.GET, { key: 'k'.repeat(251) })],
    ['body shorter than key + extras', req(Op.GET, { key: 'abc', bodyLength: 1 })],
  ];
  test.each(bad)('%s is a protocol fault (Invalid arguments, then close)', (_name, bytes) => {
    const { requests, faults } = parse([Buffer.concat([bytes, req(Op.NOOP)])]);
    expect(requests).toEqual([]);
    expect(faults).toEqual([{ code: 'MC_BAD_PACKET', opcode: bytes[1] }]);
  });

  test('a wrong magic is a fault', () => {
    const { requests, faults } = parse([Buffer.concat([req(Op.NOOP), req(Op.NOOP, { magic: 0x81 }), req(Op.NOOP)])]);
    expect(requests).toHaveLength(1);
    expect(faults).toEqual([{ code: 'MC_BAD_MAGIC', opcode: Op.NOOP }]);
  });

  test('a 250-byte key is fine', () => {
    expect(parse([req(Op.GET, { key: 'k'.repeat(250) })]).requests).toHaveLength(1);
  });

  test('pause() ends write() after the request; the rest parses on from where it stopped', () => {
    const parts = [req(Op.GET, { key: 'a' }), req(Op.NOOP), req(Op.SET, { key: 'k', extras: setExtras(0, 0), value: 'hello' }), req(Op.GETQ, { key: 'b' })];
    const input = Buffer.concat(parts);
    const { requests: paused, consumed } = parsePaused((onRequest) => new BinaryParser(onRequest, () => undefined), snapshot, input);
    expect(consumed).toEqual(parts.map((p) => p.length));
    expect(paused).toEqual(parse([input]).requests);
  });

  test('constructor arguments are validated', () => {
    expect(() => new BinaryParser(null as never, () => undefined)).toThrow(TypeError);
  });
});

describe('writeResponseHeader', () => {
  test('fields in order, big-endian, as hex', () => {
    const out = Buffer.alloc(24);
    expect(writeResponseHeader(out, 0, Op.GETK, 3, 4, BinaryStatus.KEY_ENOENT, 17, 0x01020304, 2 ** 40 + 5)).toBe(24);
    expect(out.toString('hex')).toBe('810c0003' + '04000001' + '00000011' + '01020304' + '0000010000000005');
  });
});
