/**
 * The memcached text protocol parser: every command, the error replies
 * memcached gives (checked against memcached 1.6.18), and every stream run
 * three ways — whole, byte by byte, split at every boundary — plus random
 * chunkings of a long pipeline.
 */
import { describe, expect, test } from 'vitest';
import { Text, TextErrors, TextParser, type TextRequest } from '@ebbrt/examples/memcached/text-protocol.js';
import { MemcachedProtocolError } from '@ebbrt/examples/memcached/errors.js';
import { parsePaused } from './paused-parse.js';

const NAMES = Object.fromEntries(Object.entries(Text).map(([name, code]) => [code, name]));

/** What a request carries, for comparing (only the fields its command uses). */
function snapshot(r: TextRequest): Record<string, unknown> {
  const keys = Array.from({ length: r.tokens - r.firstKey }, (_, i) => r.token(r.firstKey + i));
  const out: Record<string, unknown> = { command: NAMES[r.command] };
  switch (r.command) {
    case Text.REPLY:
      return { ...out, reply: r.reply, noreply: r.noreply };
    case Text.GET:
    case Text.GETS:
      return { ...out, keys };
    case Text.GAT:
    case Text.GATS:
      return { ...out, exptime: r.exptime, keys };
    case Text.SET:
    case Text.ADD:
    case Text.REPLACE:
    case Text.APPEND:
    case Text.PREPEND:
    case Text.CAS:
      return {
        ...out,
        key: r.token(1),
        flags: r.flags,
        exptime: r.exptime,
        cas: r.cas,
        noreply: r.noreply,
        ...(r.tooLarge ? { tooLarge: true } : { data: Buffer.from(r.data.subarray(r.dataStart, r.dataStart + r.dataLength)).toString('latin1') }),
      };
    case Text.INCR:
    case Text.DECR:
      return { ...out, key: r.token(1), delta: r.delta.toString(), noreply: r.noreply };
    case Text.TOUCH:
      return { ...out, key: r.token(1), exptime: r.exptime, noreply: r.noreply };
    case Text.DELETE:
      return { ...out, key: r.token(1), noreply: r.noreply };
    case Text.FLUSH_ALL:
    case Text.VERBOSITY:
      return { ...out, value: r.exptime, noreply: r.noreply };
    case Text.STATS:
      return { ...out, args: Array.from({ length: r.tokens - 1 }, (_, i) => r.token(i + 1)) };
    default:
      return out;
  }
}

function parse(chunks: Uint8Array[], options?: { maxGetLine?: number }): { requests: Record<string, unknown>[]; faults: MemcachedProtocolError[] } {
  const requests: Record<string, unknown>[] = [];
  const faults: MemcachedProtocolError[] = [];
  const parser = new TextParser(
    (r) => requests.push(snapshot(r)),
    (e) => faults.push(e),
    options,
  );
  for (const chunk of chunks) parser.write(chunk);
  return { requests, faults };
}

const bytes = (s: string) => Buffer.from(s, 'latin1');

/** Parses `input` whole, byte by byte and split in two at every boundary; all must agree. */
function threeWays(input: string): Record<string, unknown>[] {
  const buf = bytes(input);
  const whole = parse([buf]);
  expect(parse(Array.from(buf, (b) => Uint8Array.of(b)))).toEqual(whole);
  for (let i = 1; i < buf.length; i++) expect(parse([buf.subarray(0, i), buf.subarray(i)]), `split at ${i}`).toEqual(whole);
  expect(whole.faults).toEqual([]);
  return whole.requests;
}

const reply = (line: string, noreply = false) => ({ command: 'REPLY', reply: line, noreply });

describe('TextParser: commands', () => {
  test.each<[string, Record<string, unknown>[]]>([
    ['get a\r\n', [{ command: 'GET', keys: ['a'] }]],
    ['get a b  c\r\n', [{ command: 'GET', keys: ['a', 'b', 'c'] }]],
    ['gets k1 k2\r\n', [{ command: 'GETS', keys: ['k1', 'k2'] }]],
    ['bget a\r\n', [{ command: 'GET', keys: ['a'] }]],
    ['gat 100 a b\r\n', [{ command: 'GAT', exptime: 100, keys: ['a', 'b'] }]],
    ['gats -1 a\r\n', [{ command: 'GATS', exptime: -1, keys: ['a'] }]],
    ['gat 1\r\n', [{ command: 'GAT', exptime: 1, keys: [] }]],
    ['set k 5 10 3\r\nabc\r\n', [{ command: 'SET', key: 'k', flags: 5, exptime: 10, cas: 0, noreply: false, data: 'abc' }]],
    ['set k 0 0 0\r\n\r\n', [{ command: 'SET', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: false, data: '' }]],
    ['add k 1 2 1 noreply\r\nx\r\n', [{ command: 'ADD', key: 'k', flags: 1, exptime: 2, cas: 0, noreply: true, data: 'x' }]],
    ['replace k 0 0 2\r\n\r\n\r\n', [{ command: 'REPLACE', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: false, data: '\r\n' }]],
    ['append k 0 0 1\r\n!\r\n', [{ command: 'APPEND', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: false, data: '!' }]],
    ['prepend k 0 0 1\r\n<\r\n', [{ command: 'PREPEND', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: false, data: '<' }]],
    ['cas k 0 0 1 42\r\ny\r\n', [{ command: 'CAS', key: 'k', flags: 0, exptime: 0, cas: 42, noreply: false, data: 'y' }]],
    ['cas k 0 0 1 0 noreply\r\ny\r\n', [{ command: 'CAS', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: true, data: 'y' }]],
    ['cas k 0 0 1 18446744073709551615\r\ny\r\n', [{ command: 'CAS', key: 'k', flags: 0, exptime: 0, cas: -1, noreply: false, data: 'y' }]],
    [
      'delete k\r\ndelete k 0\r\ndelete k noreply\r\ndelete k 0 noreply\r\n',
      [
        { command: 'DELETE', key: 'k', noreply: false },
        { command: 'DELETE', key: 'k', noreply: false },
        { command: 'DELETE', key: 'k', noreply: true },
        { command: 'DELETE', key: 'k', noreply: true },
      ],
    ],
    [
      'incr n 5\r\ndecr n 18446744073709551615 noreply\r\n',
      [
        { command: 'INCR', key: 'n', delta: '5', noreply: false },
        { command: 'DECR', key: 'n', delta: '18446744073709551615', noreply: true },
      ],
    ],
    [
      'touch k 30\r\ntouch k -1 noreply\r\n',
      [
        { command: 'TOUCH', key: 'k', exptime: 30, noreply: false },
        { command: 'TOUCH', key: 'k', exptime: -1, noreply: true },
      ],
    ],
    [
      'flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all 5 noreply\r\nflush_all 1 2\r\n',
      [
        { command: 'FLUSH_ALL', value: 0, noreply: false },
        { command: 'FLUSH_ALL', value: 10, noreply: false },
        { command: 'FLUSH_ALL', value: 0, noreply: true },
        { command: 'FLUSH_ALL', value: 5, noreply: true },
        { command: 'FLUSH_ALL', value: 1, noreply: false },
      ],
    ],
    ['version\r\nversion extra\r\n', [{ command: 'VERSION' }, { command: 'VERSION' }]],
    [
      'verbosity 1\r\nverbosity 2 noreply\r\n',
      [
        { command: 'VERBOSITY', value: 1, noreply: false },
        { command: 'VERBOSITY', value: 2, noreply: true },
      ],
    ],
    [
      'stats\r\nstats settings\r\nstats detail on\r\n',
      [
        { command: 'STATS', args: [] },
        { command: 'STATS', args: ['settings'] },
        { command: 'STATS', args: ['detail', 'on'] },
      ],
    ],
    ['quit\r\n', [{ command: 'QUIT' }]],
    ['mn\r\n', [reply('MN')]],
    // Bare "\n" line ends, and extra spaces between tokens, are accepted as memcached accepts them.
    [
      'get a\nset  k  0  0  1 \nx\r\n',
      [
        { command: 'GET', keys: ['a'] },
        { command: 'SET', key: 'k', flags: 0, exptime: 0, cas: 0, noreply: false, data: 'x' },
      ],
    ],
  ])('%j', (input, expected) => {
    expect(threeWays(input)).toEqual(expected);
  });

  test('numbers read as memcached reads them (safe_strtoul / safe_strtol)', () => {
    const set = (flags: string, exptime: string, length: string, data = 'x') => threeWays(`set k ${flags} ${exptime} ${length}\r\n${data}\r\n`)[0];
    expect(set('4294967296', '0', '1')).toMatchObject({ flags: 0 });
    expect(set('18446744073709551615', '0', '1')).toMatchObject({ flags: 4294967295 });
    expect(set('-0', '0', '1')).toMatchObject({ flags: 0 });
    expect(set('00', '0', '01')).toMatchObject({ flags: 0, data: 'x' });
    expect(set('0', '0', '+1')).toMatchObject({ data: 'x' });
    expect(set('0', '4294967296', '1')).toMatchObject({ exptime: 0 });
    expect(set('0', '4294967295', '1')).toMatchObject({ exptime: -1 });
    expect(set('0', '2147483648', '1')).toMatchObject({ exptime: -2147483648 });
    expect(set('0', '0', '4294967297')).toMatchObject({ data: 'x' });
  });
});

describe('TextParser: error replies (memcached 1.6 wording and token rules)', () => {
  const K251 = 'k'.repeat(251);
  test.each<[string, Record<string, unknown>[]]>([
    ['bogus\r\n', [reply(TextErrors.ERROR)]],
    ['\r\n', [reply(TextErrors.ERROR)]],
    ['x\r\n', [reply(TextErrors.ERROR)]],
    ['GET a\r\n', [reply(TextErrors.ERROR)]],
    ['get\r\n', [reply(TextErrors.ERROR)]],
    ['gets\r\n', [reply(TextErrors.ERROR)]],
    ['gat\r\n', [reply(TextErrors.ERROR)]],
    ['set a 0 0\r\n', [reply(TextErrors.ERROR)]],
    ['set\r\n', [reply(TextErrors.ERROR)]],
    ['set a 0 0 1 noreply extra\r\nx\r\n', [reply(TextErrors.ERROR), reply(TextErrors.ERROR)]],
    ['cas a 0 0 1\r\nx\r\n', [reply(TextErrors.ERROR), reply(TextErrors.ERROR)]],
    ['set a 0 0 x\r\nab\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['set a 0 0 -1\r\n', [reply(TextErrors.BAD_FORMAT)]],
    ['set a 0 0 2147483647\r\n', [reply(TextErrors.BAD_FORMAT)]],
    ['set a -1 0 1\r\nx\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['set a 0x10 0 1\r\nx\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['set a 18446744073709551616 0 1\r\nx\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['set a 0 99999999999999999999 1\r\nx\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['cas a 0 0 1 -1\r\nx\r\n', [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    ['set a 0 0 2\r\nxyz\r\n', [reply(TextErrors.BAD_DATA_CHUNK), reply(TextErrors.ERROR)]],
    ['set a 0 0 1 noreply\r\nxy\r\n', [reply(TextErrors.BAD_DATA_CHUNK, true), reply(TextErrors.ERROR)]],
    [`set ${K251} 0 0 1\r\nx\r\n`, [reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]],
    [`set ${K251} 0 0 1 noreply\r\nx\r\n`, [reply(TextErrors.BAD_FORMAT, true), reply(TextErrors.ERROR)]],
    [`get a ${K251}\r\n`, [reply(TextErrors.BAD_FORMAT)]],
    [`delete ${K251}\r\n`, [reply(TextErrors.BAD_FORMAT)]],
    [`incr ${K251} 1\r\n`, [reply(TextErrors.BAD_FORMAT)]],
    [`touch ${K251} 1\r\n`, [reply(TextErrors.BAD_FORMAT)]],
    ['delete a 5\r\n', [reply(TextErrors.DELETE_USAGE)]],
    ['delete a noreply x\r\n', [reply(TextErrors.DELETE_USAGE)]],
    ['delete\r\n', [reply(TextErrors.ERROR)]],
    ['incr a x\r\nincr a -1\r\nincr a 18446744073709551616\r\n', [reply(TextErrors.BAD_DELTA), reply(TextErrors.BAD_DELTA), reply(TextErrors.BAD_DELTA)]],
    ['incr\r\nincr a\r\n', [reply(TextErrors.ERROR), reply(TextErrors.ERROR)]],
    ['touch a x\r\ngat x a\r\nflush_all x\r\n', [reply(TextErrors.BAD_EXPTIME), reply(TextErrors.BAD_EXPTIME), reply(TextErrors.BAD_EXPTIME)]],
    ['touch a\r\n', [reply(TextErrors.ERROR)]],
    ['verbosity\r\nverbosity x\r\n', [reply(TextErrors.ERROR), reply(TextErrors.BAD_FORMAT)]],
    ['shutdown\r\n', [reply(TextErrors.SHUTDOWN)]],
    // Tokens end at a NUL, as in memcached's C string handling.
    ['get a\u0000b\r\n', [{ command: 'GET', keys: ['a'] }]],
  ])('%j', (input, expected) => {
    expect(threeWays(input)).toEqual(expected);
  });
});

describe('TextParser: values, limits, faults', () => {
  test('a value too large for an item is answered at once and skipped, unbuffered, before the next command', () => {
    const value = 'v'.repeat(1_048_576);
    const input = bytes(`set big 0 0 ${value.length}\r\n${value}\r\nget big\r\n`);
    const expected = [
      { command: 'SET', key: 'big', flags: 0, exptime: 0, cas: 0, noreply: false, tooLarge: true },
      { command: 'GET', keys: ['big'] },
    ];
    expect(parse([input]).requests).toEqual(expected);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 4093) chunks.push(input.subarray(i, i + 4093));
    expect(parse(chunks).requests).toEqual(expected);
  });

  test('the largest value memcached accepts is buffered across chunks', () => {
    const value = 'v'.repeat(1_048_476);
    const input = bytes(`set big 0 0 ${value.length}\r\n${value}\r\nquit\r\n`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 65536) chunks.push(input.subarray(i, i + 65536));
    const { requests } = parse(chunks);
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({ command: 'SET', key: 'big' });
    expect((requests[0].data as string).length).toBe(value.length);
    expect(requests[1]).toEqual({ command: 'QUIT' });
  });

  test('a long pipeline gives the same requests however it is chunked', () => {
    const parts: string[] = [];
    for (let i = 0; i < 200; i++) {
      const value = `value-${i}-`.repeat(i % 7);
      parts.push(
        `set key${i} ${i} 0 ${value.length}\r\n${value}\r\n`,
        `get key${i} key${i + 1}\r\n`,
        `incr n${i} ${i}\r\n`,
        i % 13 === 0 ? 'bogus line\r\n' : `delete key${i - 1} noreply\r\n`,
      );
    }
    const input = bytes(parts.join(''));
    const whole = parse([input]);
    expect(whole.requests).toHaveLength(800);
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 97) + 1;
    for (let round = 0; round < 20; round++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < input.length; ) {
        const n = random();
        chunks.push(input.subarray(i, i + n));
        i += n;
      }
      expect(parse(chunks)).toEqual(whole);
    }
  });

  test('a line without a newline past 2048 bytes is a fault; a long get line is not', () => {
    // A long line that arrives whole is read (memcached answers it too); one still open past 2048 bytes is not.
    expect(parse([bytes(`set ${'x'.repeat(3000)} 0 0 1\r\nx\r\n`)]).requests).toEqual([reply(TextErrors.BAD_FORMAT), reply(TextErrors.ERROR)]);
    const { requests, faults } = parse([bytes(`set ${'x'.repeat(3000)} 0 0 1`)]);
    expect(requests).toEqual([]);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toBeInstanceOf(MemcachedProtocolError);
    expect(faults[0].code).toBe('MC_LINE_TOO_LONG');
    const keys = Array.from({ length: 600 }, (_, i) => `key${i}`);
    const long = bytes(`get ${keys.join(' ')}\r\n`);
    expect(long.length).toBeGreaterThan(2048);
    const chunks = [long.subarray(0, 1000), long.subarray(1000, 2500), long.subarray(2500)];
    expect(parse(chunks)).toEqual({ requests: [{ command: 'GET', keys }], faults: [] });
    const tooLong = parse([bytes(`get ${'k '.repeat(3000)}`)], { maxGetLine: 4096 });
    expect(tooLong.faults.map((f) => f.code)).toEqual(['MC_LINE_TOO_LONG']);
  });

  test('stop() ignores what follows (quit)', () => {
    const requests: string[] = [];
    const parser = new TextParser(
      (r) => {
        requests.push(NAMES[r.command]);
        if (r.command === Text.QUIT) parser.stop();
      },
      () => undefined,
    );
    parser.write(bytes('version\r\nquit\r\nget a\r\n'));
    expect(requests).toEqual(['VERSION', 'QUIT']);
  });

  test('pause() ends write() after the command; the rest parses on from where it stopped', () => {
    const input = bytes(`get a b\r\nset k 1 0 3\r\nabc\r\nbogus\r\nset big 0 0 2000000\r\n${'x'.repeat(100)}\r\nversion\r\n`);
    const { requests: paused, consumed } = parsePaused((onRequest) => new TextParser(onRequest, () => undefined), snapshot, input);
    // One command per write, until the too-large value is being skipped (it ends the input).
    expect(consumed.slice(0, 4)).toEqual([9, 18, 7, 21]);
    expect(paused).toEqual(parse([input]).requests);
    expect(paused.map((r) => r.command)).toEqual(['GET', 'SET', 'REPLY', 'SET']);
  });

  test('options are validated', () => {
    expect(() => new TextParser(undefined as never, () => undefined)).toThrow(TypeError);
    expect(
      () =>
        new TextParser(
          () => undefined,
          () => undefined,
          { maxGetLine: 100 },
        ),
    ).toThrow(/maxGetLine/);
  });
});
