import { describe, expect, it } from 'vitest';
import {
  EbbError,
  IdConflictError,
  IdSpaceExhaustedError,
  JoinRejectedError,
  NodeUnavailableError,
  OverloadedError,
  ProtocolError,
  RemoteError,
  TimeoutError,
  UnknownEbbError,
  UnknownMethodError,
  UnencodableError,
  decodeArgs,
  decodeError,
  decodeReply,
  decodeValue,
  encodeArgs,
  encodeError,
  encodeResult,
  encodeValue,
  errorFromWire,
  errorToWire,
  registerErrorCode,
  type ProtocolErrorCode,
} from '@ebbrt/ebb-protocol/internal';
import { thrown } from '../helpers.js';

const expectCode = (fn: () => unknown, code: string) => {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).code).toBe(code);
};

describe('payload codec: values and args', () => {
  const values: Array<[string, unknown]> = [
    ['zero', 0],
    ['small ints', [1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536]],
    ['32-bit bounds', [2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 2 ** 32]],
    ['53-bit bounds', [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]],
    ['floats', [1.5, -0.25, Math.PI, 1e300, Infinity, -Infinity]],
    ['strings', ['', 'hi', 'ü日本😀', 'x'.repeat(40), 'y'.repeat(70_000)]],
    ['booleans and null', [true, false, null]],
    ['nested', { a: [1, { b: 'c', d: [[], {}] }], e: { f: { g: null } } }],
    ['array of objects', [{ id: 1 }, { id: 2, tags: ['x'] }]],
  ];

  it.each(values)('encodeValue/decodeValue round-trip: %s', (_what, value) => {
    expect(decodeValue(encodeValue(value))).toEqual(value);
  });

  it('NaN survives as NaN', () => {
    expect(decodeValue(encodeValue(Number.NaN))).toBeNaN();
  });

  it('args round-trip as an array, mixed types', () => {
    const args = [42, 'hi', { nested: [1, 2, { deep: true }] }, [3.5, null], 'end'];
    expect(decodeArgs(encodeArgs(args))).toEqual(args);
    expect(decodeArgs(encodeArgs([]))).toEqual([]);
  });

  it('Buffers come back as Buffers, byte-equal, at any depth', () => {
    const small = Buffer.from([0, 1, 2, 255]);
    const big = Buffer.alloc(100_000, 0xab);
    const decoded = decodeArgs(encodeArgs([small, Buffer.alloc(0), { blob: big, list: [small] }])) as [Buffer, Buffer, { blob: Buffer; list: Buffer[] }];
    expect(Buffer.isBuffer(decoded[0])).toBe(true);
    expect(decoded[0].equals(small)).toBe(true);
    expect(Buffer.isBuffer(decoded[1])).toBe(true);
    expect(decoded[1].length).toBe(0);
    expect(Buffer.isBuffer(decoded[2].blob)).toBe(true);
    expect(decoded[2].blob.equals(big)).toBe(true);
    expect(decoded[2].list[0].equals(small)).toBe(true);
  });

  it('a plain Uint8Array travels as bin and comes back as a Buffer', () => {
    const [value] = decodeArgs(encodeArgs([new Uint8Array([7, 8, 9])])) as [Buffer];
    expect(Buffer.isBuffer(value)).toBe(true);
    expect([...value]).toEqual([7, 8, 9]);
  });

  it('Buffers travel as standard MessagePack bin, not as an extension', () => {
    expect(encodeValue(Buffer.from([1, 2])).toString('hex')).toBe('c4020102');
    expect(encodeArgs([42, 'hi']).toString('hex')).toBe('922aa26869');
  });

  it('undefined stays undefined where MessagePack allows: a property is left out, trailing arguments are not sent, a result is empty; elsewhere it is nil', () => {
    expect(encodeValue(undefined).toString('hex')).toBe('c0');
    expect(decodeArgs(encodeArgs([undefined, 1]))).toEqual([null, 1]);
    expect(encodeArgs([1, undefined, undefined]).toString('hex')).toBe('9101');
    expect(decodeArgs(encodeArgs([undefined]))).toEqual([]);
    const decoded = decodeValue(encodeValue({ a: undefined, b: 1, deep: [{ c: undefined, d: 'x' }] })) as Record<string, unknown>;
    expect(decoded).toEqual({ b: 1, deep: [{ d: 'x' }] });
    expect('a' in decoded).toBe(false);
    expect(decodeArgs(encodeArgs([{ a: undefined, b: 2 }]))).toEqual([{ b: 2 }]);
    expect(encodeResult(undefined).length).toBe(0);
    expect(decodeReply(true, encodeResult(undefined))).toBeUndefined();
  });

  it('a value the wire would not carry faithfully is refused with UnencodableError naming where it is', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const cases: [unknown[], string, RegExp][] = [
      [[new Map([[1, 2]])], 'argument 0', /is a Map.*Object\.fromEntries/],
      [[1, new Set([1])], 'argument 1', /is a Set.*\[\.\.\.set\]/],
      [[() => 1], 'argument 0', /is a function/],
      [[Symbol('s')], 'argument 0', /is a symbol/],
      [[{ at: new Point(1) }], 'argument 0.at', /instance of Point/],
      [[[1, { list: [new Float64Array(2)] }]], 'argument 0[1].list[0]', /a Float64Array.*Buffer\.from/],
      [[new ArrayBuffer(2)], 'argument 0', /ArrayBuffer/],
      [[new Error('x')], 'argument 0', /an Error.*throw it/],
      [[2n ** 70n], 'argument 0', /outside the 64-bit range/],
    ];
    for (const [args, path, message] of cases) {
      let error: unknown;
      try {
        encodeArgs(args);
      } catch (caught) {
        error = caught;
      }
      expect(error, path).toBeInstanceOf(UnencodableError);
      expect((error as UnencodableError).code).toBe('UNENCODABLE');
      expect((error as UnencodableError).data).toMatchObject({ path });
      expect((error as Error).message).toMatch(message);
    }
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => encodeValue(cycle)).toThrow(UnencodableError);
    expect(() => encodeResult(new Map())).toThrow(/the result is a Map/);
    // What does travel: plain data, Dates, Buffers, null-prototype objects, objects with toJSON, 64-bit bigints (as int64).
    const plain = Object.assign(Object.create(null) as object, { k: 1 });
    class Jsonable {
      toJSON() {
        return 'json';
      }
    }
    const args = [null, true, 1.5, 'x', new Date(0), Buffer.from([1]), plain, new Jsonable(), 5n];
    expect(decodeArgs(encodeArgs(args))).toEqual([null, true, 1.5, 'x', new Date(0), Buffer.from([1]), { k: 1 }, 'json', 5]);
  });

  it('earlier encodings stay intact after later ones (no shared-buffer aliasing)', () => {
    const a = encodeArgs([1, 'first', Buffer.alloc(16, 1)]);
    const copy = Buffer.from(a);
    for (let i = 0; i < 1000; i++) encodeArgs([i, 'other', Buffer.alloc(64, i & 0xff)]);
    expect(a.equals(copy)).toBe(true);
  });

  it('an empty payload decodes as no value / no args', () => {
    expect(decodeValue(Buffer.alloc(0))).toBeUndefined();
    expect(decodeArgs(Buffer.alloc(0))).toEqual([]);
  });

  it.each([
    ['truncated array', '93 01'],
    ['truncated string', 'a5 6869'],
    ['truncated bin', 'c4 08 0102'],
    ['trailing bytes', '01 02'],
    ['huge array header', 'dd ffffffff'],
    ['huge map header', 'df 7fffffff 01'],
  ])('malformed MessagePack (%s) is BAD_PAYLOAD', (_what, hex) => {
    const bytes = Buffer.from(hex.replace(/ /g, ''), 'hex');
    expectCode(() => decodeValue(bytes), 'BAD_PAYLOAD');
    expectCode(() => decodeArgs(bytes), 'BAD_PAYLOAD');
    expectCode(() => decodeError(bytes), 'BAD_PAYLOAD');
  });

  it('call args that are not an array are BAD_PAYLOAD', () => {
    for (const value of [42, 'x', { a: 1 }, null, true]) expectCode(() => decodeArgs(encodeValue(value)), 'BAD_PAYLOAD');
  });
});

describe('payload codec: errors', () => {
  const protocolCodes: ProtocolErrorCode[] = [
    'BAD_MAGIC',
    'BAD_VERSION',
    'BAD_KIND',
    'FRAME_TOO_LARGE',
    'TRUNCATED',
    'BAD_PAYLOAD',
    'BAD_CONTROL',
    'UNAUTHENTICATED',
  ];
  const builtins: Array<[string, EbbError, new (...args: never[]) => EbbError]> = [
    ...protocolCodes.map((code) => [code, new ProtocolError(code, `protocol ${code}`), ProtocolError] as [string, EbbError, typeof ProtocolError]),
    ['NODE_UNAVAILABLE', new NodeUnavailableError('node 3 is gone'), NodeUnavailableError],
    ['TIMEOUT', new TimeoutError('no reply in 5000 ms'), TimeoutError],
    ['OVERLOADED', new OverloadedError('queue full'), OverloadedError],
    ['UNKNOWN_EBB', new UnknownEbbError('no ebb 0x10001'), UnknownEbbError],
    ['UNKNOWN_METHOD', new UnknownMethodError('no method 0x1234'), UnknownMethodError],
    ['ID_SPACE_EXHAUSTED', new IdSpaceExhaustedError('full'), IdSpaceExhaustedError],
    ['ID_CONFLICT', new IdConflictError('taken'), IdConflictError],
    ['BAD_SECRET', new JoinRejectedError('BAD_SECRET', 'wrong secret'), JoinRejectedError],
    ['UNSUPPORTED_VERSION', new JoinRejectedError('UNSUPPORTED_VERSION', 'v2'), JoinRejectedError],
    ['JOIN_REJECTED', new JoinRejectedError('JOIN_REJECTED', 'no'), JoinRejectedError],
    ['REMOTE_ERROR', new RemoteError('TypeError: x is not a function'), RemoteError],
  ];

  it.each(builtins)('%s round-trips to the same class and code', (code, err, cls) => {
    expect(err.code).toBe(code);
    const back = decodeError(encodeError(err));
    expect(back).toBeInstanceOf(cls);
    expect(back).toBeInstanceOf(EbbError);
    expect(back).toBeInstanceOf(Error);
    expect(back.code).toBe(code);
    expect(back.message).toBe(err.message);
    expect(back.name).toBe(cls.name);
    expect(back.data).toBeUndefined();
  });

  it('data travels with the error', () => {
    const data = { id: 0x10001, tried: [1, 2], raw: Buffer.from([5]) };
    const back = decodeError(encodeError(new TimeoutError('slow', { data })));
    expect(back).toBeInstanceOf(TimeoutError);
    expect(back.data).toEqual(data);
    expect(Buffer.isBuffer((back.data as typeof data).raw)).toBe(true);
  });

  it('the wire form is a plain {code, message, data?} map', () => {
    expect(decodeValue(encodeError(new UnknownEbbError('gone')))).toEqual({ code: 'UNKNOWN_EBB', message: 'gone' });
    expect(decodeValue(encodeError(new UnknownEbbError('gone', { data: 7 })))).toEqual({ code: 'UNKNOWN_EBB', message: 'gone', data: 7 });
    expect(errorToWire(new OverloadedError('full', { data: [1] }))).toEqual({ code: 'OVERLOADED', message: 'full', data: [1] });
  });

  it('an error whose data cannot be encoded still travels with its code and message', () => {
    const back = decodeError(encodeError(new OverloadedError('full', { data: { s: Symbol('nope') } })));
    expect(back).toBeInstanceOf(OverloadedError);
    expect(back.code).toBe('OVERLOADED');
    expect(back.message).toBe('full');
  });

  it('registerErrorCode rebuilds an app error class', () => {
    class InsufficientFundsError extends EbbError {
      constructor(message: string, options?: { data?: unknown }) {
        super('TEST_INSUFFICIENT_FUNDS', message, options);
      }
    }
    const factory = (m: string, d: unknown) => new InsufficientFundsError(m, d === undefined ? undefined : { data: d });
    registerErrorCode('TEST_INSUFFICIENT_FUNDS', factory);
    registerErrorCode('TEST_INSUFFICIENT_FUNDS', factory); // same factory again is fine
    const back = decodeError(encodeError(new InsufficientFundsError('balance too low', { data: { balance: 3 } })));
    expect(back).toBeInstanceOf(InsufficientFundsError);
    expect(back.code).toBe('TEST_INSUFFICIENT_FUNDS');
    expect(back.name).toBe('InsufficientFundsError');
    expect(back.data).toEqual({ balance: 3 });
  });

  it('registering a different class for a taken code is an IdConflictError', () => {
    const err = thrown(() => registerErrorCode('TIMEOUT', (m) => new EbbError('TIMEOUT', m)));
    expect(err).toBeInstanceOf(IdConflictError);
    expect((err as EbbError).code).toBe('ID_CONFLICT');
    // the built-in class still wins
    expect(errorFromWire({ code: 'TIMEOUT', message: 'x' })).toBeInstanceOf(TimeoutError);
  });

  it('an unregistered code becomes a plain EbbError with that code', () => {
    const back = decodeError(encodeValue({ code: 'TEST_NEVER_REGISTERED', message: 'm', data: [1] }));
    expect(back.constructor).toBe(EbbError);
    expect(back.code).toBe('TEST_NEVER_REGISTERED');
    expect(back.data).toEqual([1]);
  });

  it.each([
    ['TypeError', new TypeError('x is not a function')],
    ['RangeError', new RangeError('bad')],
    ['plain Error', new Error('boom')],
    ['string', 'just a string'],
    ['number', 42],
    ['undefined', undefined],
    ['null', null],
    ['object', { weird: true }],
  ])('a non-EbbError throw (%s) becomes REMOTE_ERROR', (_what, value) => {
    const back = decodeError(encodeError(value));
    expect(back).toBeInstanceOf(RemoteError);
    expect(back.code).toBe('REMOTE_ERROR');
    expect(typeof back.message).toBe('string');
  });

  it.each([
    ['a number', 42],
    ['a string', 'oops'],
    ['nil', null],
    ['an array', ['CODE', 'message']],
    ['a map without code', { message: 'm' }],
    ['a map without message', { code: 'TIMEOUT' }],
    ['a non-string code', { code: 5, message: 'm' }],
  ])('an error payload that is %s is BAD_PAYLOAD', (_what, value) => {
    expectCode(() => decodeError(encodeValue(value)), 'BAD_PAYLOAD');
  });

  it('an empty error payload is BAD_PAYLOAD', () => {
    expectCode(() => decodeError(Buffer.alloc(0)), 'BAD_PAYLOAD');
  });

  it('EbbError keeps its cause locally', () => {
    const cause = new Error('ECONNRESET');
    const err = new NodeUnavailableError('node 2 closed the connection', { cause });
    expect(err.cause).toBe(cause);
    expect(err.name).toBe('NodeUnavailableError');
  });
});
