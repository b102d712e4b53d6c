/**
 * The memcached example end to end: `ebbrt run memcached` as a child process,
 * natives as real processes whose cores share one listening socket and one
 * SharedArrayBuffer cache. Conformance of both protocols (exact replies, and
 * byte-for-byte against a real memcached 1.6 when Debian's is installed),
 * requests split at arbitrary boundaries, oversize values, stock clients from
 * libmemcached-tools, coherence across cores, eviction under a small bound,
 * multi-node forwarding and a clean stop on SIGINT/SIGTERM.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { Op } from '@ebbrt/examples/memcached/binary-protocol.js';
import { binaryRequest, deltaExtras, parseBinaryResponses, RawClient, storeExtras } from '@ebbrt/examples/memcached/client.js';
import { CLI, lines, spawnNode, until } from './kit/index.js';
import { launchMemcached } from './kit/memcached.js';
import { skipFor, toolMissing } from './kit/requirements.js';

const SKIP_MEMCACHED = skipFor('the comparison with Debian memcached', toolMissing('memcached', 'memcached'));
const SKIP_TOOLS = skipFor(
  'the libmemcached-tools clients',
  ['memccp', 'memccat', 'memccapable'].map((tool) => toolMissing(tool, 'libmemcached-tools')).find((reason) => reason !== undefined),
);

async function client(address: string): Promise<RawClient> {
  const c = await RawClient.connect(address);
  onTestFinished(() => c.close());
  return c;
}

const text = async (c: RawClient, requests: string, chunks?: number[]) => {
  const { reply, closed } = await c.exchange(requests, { protocol: 'text', chunks });
  return reply.toString('latin1') + (closed ? '[closed]' : '');
};

/** A real memcached on a free loopback port (the reference for byte-for-byte comparisons). */
async function startMemcached(): Promise<string> {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const args = ['-p', String(port), '-l', '127.0.0.1', '-U', '0', '-t', '2', '-m', '64', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : [])];
  const child = spawn('memcached', args, { stdio: 'ignore' });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  const address = `127.0.0.1:${port}`;
  await until(
    () =>
      spawnSync(process.execPath, ['-e', `require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`])
        .status === 0,
    5000,
    'memcached to listen',
  );
  return address;
}

describe('memcached: launch and stop', () => {
  test('prints one line with the address once every core accepts, and stops cleanly on SIGINT', async () => {
    const { addresses, spawned } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    expect(addresses).toHaveLength(1);
    expect(lines(spawned.stdout())).toEqual([expect.stringMatching(/^memcached listening on 127\.0\.0\.1:\d+ \(1 node × 2 cores, 16 MiB each\)$/)]);
    const c = await client(addresses[0]);
    expect(await text(c, 'set hello 0 0 5\r\nworld\r\nget hello\r\n')).toBe('STORED\r\nVALUE hello 0 5\r\nworld\r\nEND\r\n');
    spawned.child.kill('SIGINT');
    const result = await spawned.result;
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(130);
    expect(result.ms).toBeLessThan(30_000);
    await expect(RawClient.connect(addresses[0])).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE' });
  });

  test('SIGTERM stops it too; bad app arguments exit 2 naming the flag', async () => {
    const { spawned } = await launchMemcached(['--nodes', '1', '--cores', '1', '--', '--port', '0', '--memory', '8']);
    spawned.child.kill('SIGTERM');
    expect((await spawned.result).timedOut).toBe(false);
    const bad = spawnNode(CLI, ['run', 'memcached', '--nodes', '1', '--cores', '1', '--', '--memory', '0']);
    const r = await bad.result;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--memory must be an integer in 1\.\.1024/);
  });
});

describe('memcached: text protocol', () => {
  test('every command, with the exact replies', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    const c = await client(addresses[0]);
    const cases: [string, string][] = [
      ['set a 5 0 3\r\nabc\r\nget a\r\n', 'STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\n'],
      ['set b 0 0 1 noreply\r\nx\r\nget a b missing\r\n', 'VALUE a 5 3\r\nabc\r\nVALUE b 0 1\r\nx\r\nEND\r\n'],
      ['add a 0 0 1\r\nx\r\nadd c 0 0 1\r\ny\r\nadd c 0 0 1 noreply\r\nz\r\n', 'NOT_STORED\r\nSTORED\r\n'],
      ['replace missing 0 0 1\r\nx\r\nreplace c 7 0 2\r\nyy\r\nget c\r\n', 'NOT_STORED\r\nSTORED\r\nVALUE c 7 2\r\nyy\r\nEND\r\n'],
      [
        'append c 0 0 1\r\n>\r\nprepend c 0 0 1\r\n<\r\nappend missing 0 0 1\r\nx\r\nget c\r\n',
        'STORED\r\nSTORED\r\nNOT_STORED\r\nVALUE c 7 4\r\n<yy>\r\nEND\r\n',
      ],
      ['delete c\r\ndelete c\r\ndelete a 0\r\ndelete b noreply\r\nget a b c\r\n', 'DELETED\r\nNOT_FOUND\r\nDELETED\r\nEND\r\n'],
      [
        'set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\nincr n 18446744073709551615\r\nincr missing 1\r\n',
        'STORED\r\n15\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n18446744073709551615\r\nNOT_FOUND\r\n',
      ],
      ['incr n 1\r\nincr n 1 noreply\r\nget n\r\n', '0\r\nVALUE n 0 20\r\n1                   \r\nEND\r\n'],
      [
        'set t 0 0 2\r\nab\r\nincr t 1\r\nincr t x\r\n',
        'STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR invalid numeric delta argument\r\n',
      ],
      ['touch t 100\r\ntouch missing 100\r\ntouch t 100 noreply\r\n', 'TOUCHED\r\nNOT_FOUND\r\n'],
      ['gat 100 t\r\ngat 100 missing\r\n', 'VALUE t 0 2\r\nab\r\nEND\r\nEND\r\n'],
      ['set x 0 -1 1\r\nx\r\nget x\r\n', 'STORED\r\nEND\r\n'],
      ['version\r\nverbosity 1\r\nverbosity 1 noreply\r\nverbosity\r\n', 'VERSION 1.6.18\r\nOK\r\nERROR\r\n'],
      ['flush_all\r\nget t n\r\nflush_all 0 noreply\r\nflush_all x\r\n', 'OK\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\n'],
      ['stats reset\r\nstats nosuch\r\nstats detail\r\n', 'RESET\r\nERROR\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\n'],
      ['bogus\r\nGET a\r\nget\r\nset a 0 0\r\nset a 0 0 x\r\nab\r\n', 'ERROR\r\nERROR\r\nERROR\r\nERROR\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n'],
      ['set a 0 0 2\r\nxyz\r\nget a\r\n', 'CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n'],
      [`set ${'k'.repeat(251)} 0 0 1\r\nx\r\nget ${'k'.repeat(250)}\r\n`, 'CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n'],
      ['delete a 5\r\n', 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n'],
      ['shutdown\r\n', 'ERROR: shutdown not enabled\r\n'],
    ];
    for (const [request, expected] of cases) expect(await text(c, request), request).toBe(expected);
    // gets / gats / cas: the CAS unique is the server's.
    const gets = await text(c, 'set g 1 0 1\r\nv\r\ngets g\r\n');
    const cas = Number(/^STORED\r\nVALUE g 1 1 (\d+)\r\nv\r\nEND\r\n$/.exec(gets)?.[1]);
    expect(cas).toBeGreaterThan(0);
    expect(await text(c, `cas g 0 0 1 ${cas + 1}\r\nw\r\ncas g 0 0 1 ${cas}\r\nw\r\ncas g 0 0 1 ${cas}\r\nz\r\ncas nope 0 0 1 1\r\nz\r\n`)).toBe(
      'EXISTS\r\nSTORED\r\nEXISTS\r\nNOT_FOUND\r\n',
    );
    expect(await text(c, 'gats 0 g\r\n')).toMatch(/^VALUE g 0 1 \d+\r\nw\r\nEND\r\n$/);
    const stats = await text(c, 'stats\r\n');
    for (const field of [
      'pid',
      'uptime',
      'time',
      'version',
      'curr_connections',
      'total_connections',
      'cmd_get',
      'cmd_set',
      'get_hits',
      'get_misses',
      'bytes_read',
      'bytes_written',
      'limit_maxbytes',
      'threads',
      'bytes',
      'curr_items',
      'total_items',
      'evictions',
    ]) {
      expect(stats, field).toMatch(new RegExp(`^STAT ${field} \\S+\\r$`, 'm'));
    }
    expect(stats).toMatch(/^STAT limit_maxbytes 16777216\r$/m);
    expect(stats).toMatch(/^STAT threads 2\r$/m);
    expect(await text(c, 'stats settings\r\n')).toMatch(/^STAT item_size_max 1048576\r$/m);
    expect(await text(c, 'quit\r\nget g\r\n')).toBe('[closed]');
  });

  test('oversize values: SERVER_ERROR, the value skipped, the connection still usable', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '1', '--', '--port', '0', '--memory', '8']);
    const c = await client(addresses[0]);
    const big = 'v'.repeat(2_000_000);
    expect(await text(c, `set big 0 0 1\r\nx\r\nset big 0 0 ${big.length}\r\n${big}\r\nget big\r\n`)).toBe(
      'STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n',
    );
    const largest = 'v'.repeat(1_048_476);
    expect(await text(c, `set big 0 0 ${largest.length}\r\n${largest}\r\nget big\r\n`, [65536])).toBe(
      `STORED\r\nVALUE big 0 ${largest.length}\r\n${largest}\r\nEND\r\n`,
    );
    expect(await text(c, `set big 0 0 1048516 noreply\r\n${'v'.repeat(1_048_516)}\r\nget big\r\n`)).toBe('END\r\n');
    // A line running on without a newline ends the connection, as memcached does.
    c.socket.write(`set ${'x'.repeat(5000)}`);
    await until(() => c.closed, 5000, 'the connection to close');
  });

  test('pipelined requests split at arbitrary byte boundaries get the replies of the whole pipeline', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    const pipeline = (prefix: string) => {
      const parts: string[] = [];
      for (let i = 0; i < 150; i++) {
        const value = `value-${i}|`.repeat(i % 9);
        parts.push(
          `set ${prefix}${i} ${i} 0 ${value.length}\r\n${value}\r\n`,
          `get ${prefix}${i} ${prefix}${i - 1} ${prefix}nope\r\n`,
          `incr ${prefix}n 3\r\n`,
          `append ${prefix}${i} 0 0 1 noreply\r\n!\r\n`,
        );
        if (i % 10 === 0) parts.push(`set ${prefix}n 0 0 1\r\n0\r\n`, 'bogus\r\n', `delete ${prefix}${i - 1}\r\n`);
      }
      return parts.join('');
    };
    const c = await client(addresses[0]);
    const whole = (await text(c, pipeline('w'))).replaceAll('w', '#');
    expect(whole.split('\r\n').length).toBeGreaterThan(700);
    let seed = 11;
    const sizes = () => Array.from({ length: 64 }, () => ((seed = (seed * 48271) % 2147483647) % 300) + 1);
    for (const [i, split] of [[1], [2, 3, 5, 7], sizes(), sizes()].entries()) {
      const prefix = `s${i}x`;
      const reply = await text(c, pipeline(prefix), split);
      expect(reply.replaceAll(prefix, '#'), `chunks ${split.slice(0, 4).join(',')}…`).toBe(whole);
    }
  });
});

describe('memcached: binary protocol', () => {
  test('every opcode, with status codes, quiet variants and CAS values', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    const c = await client(addresses[0]);
    const run = async (...requests: Buffer[]) => {
      const { reply, closed } = await c.exchange(Buffer.concat(requests), { protocol: 'binary' });
      return { responses: parseBinaryResponses(reply).responses, closed };
    };
    const show = (r: ReturnType<typeof parseBinaryResponses>['responses'][number]) => ({
      op: r.opcode,
      status: r.status,
      opaque: r.opaque,
      extras: r.extras.toString('hex'),
      key: r.key.toString(),
      value: r.value.toString('latin1'),
    });

    let { responses } = await run(
      binaryRequest(Op.SET, { key: 'a', extras: storeExtras(7, 0), value: 'hello', opaque: 9 }),
      binaryRequest(Op.GET, { key: 'a' }),
      binaryRequest(Op.GETK, { key: 'a' }),
      binaryRequest(Op.GET, { key: 'nope' }),
      binaryRequest(Op.GETK, { key: 'nope' }),
    );
    expect(responses.map(show)).toEqual([
      { op: Op.SET, status: 0, opaque: 9, extras: '', key: '', value: '' },
      { op: Op.GET, status: 0, opaque: 0, extras: '00000007', key: '', value: 'hello' },
      { op: Op.GETK, status: 0, opaque: 0, extras: '00000007', key: 'a', value: 'hello' },
      { op: Op.GET, status: 1, opaque: 0, extras: '', key: '', value: 'Not found' },
      { op: Op.GETK, status: 1, opaque: 0, extras: '', key: 'nope', value: '' },
    ]);
    const cas = responses[0].cas;
    expect(cas).toBeGreaterThan(0n);
    expect(responses[1].cas).toBe(cas);

    ({ responses } = await run(
      binaryRequest(Op.GETQ, { key: 'nope' }),
      binaryRequest(Op.GETKQ, { key: 'nope' }),
      binaryRequest(Op.GETQ, { key: 'a' }),
      binaryRequest(Op.GETKQ, { key: 'a' }),
      binaryRequest(Op.SETQ, { key: 'q', extras: storeExtras(0, 0), value: 'x' }),
      binaryRequest(Op.ADDQ, { key: 'q', extras: storeExtras(0, 0), value: 'x' }),
      binaryRequest(Op.REPLACEQ, { key: 'noq', extras: storeExtras(0, 0), value: 'x' }),
      binaryRequest(Op.ADD, { key: 'q', extras: storeExtras(0, 0), value: 'y' }),
      binaryRequest(Op.REPLACE, { key: 'noq', extras: storeExtras(0, 0), value: 'y' }),
    ));
    expect(responses.map((r) => [r.opcode, r.status, r.value.toString()])).toEqual([
      [Op.GETQ, 0, 'hello'],
      [Op.GETKQ, 0, 'hello'],
      [Op.ADDQ, 2, 'Data exists for key.'],
      [Op.REPLACEQ, 1, 'Not found'],
      [Op.ADD, 2, 'Data exists for key.'],
      [Op.REPLACE, 1, 'Not found'],
    ]);

    ({ responses } = await run(
      binaryRequest(Op.SET, { key: 'a', extras: storeExtras(0, 0), value: 'x', cas: cas + 1000n }),
      binaryRequest(Op.SET, { key: 'nocas', extras: storeExtras(0, 0), value: 'x', cas: 5n }),
      binaryRequest(Op.DELETE, { key: 'a', cas: cas + 1000n }),
      binaryRequest(Op.SET, { key: 'a', extras: storeExtras(0, 0), value: 'mid', cas }),
      binaryRequest(Op.APPEND, { key: 'a', value: '>' }),
      binaryRequest(Op.PREPEND, { key: 'a', value: '<' }),
      binaryRequest(Op.APPENDQ, { key: 'noa', value: 'x' }),
      binaryRequest(Op.PREPENDQ, { key: 'a', value: '[' }),
      binaryRequest(Op.GET, { key: 'a' }),
      binaryRequest(Op.DELETEQ, { key: 'a' }),
      binaryRequest(Op.DELETEQ, { key: 'a' }),
      binaryRequest(Op.DELETE, { key: 'a' }),
    ));
    expect(responses.map((r) => [r.opcode, r.status, r.value.toString()])).toEqual([
      [Op.SET, 2, 'Data exists for key.'],
      [Op.SET, 1, 'Not found'],
      [Op.DELETE, 2, 'Data exists for key.'],
      [Op.SET, 0, ''],
      [Op.APPEND, 0, ''],
      [Op.PREPEND, 0, ''],
      [Op.APPENDQ, 5, 'Not stored.'],
      [Op.GET, 0, '[<mid>'],
      [Op.DELETEQ, 1, 'Not found'],
      [Op.DELETE, 1, 'Not found'],
    ]);

    ({ responses } = await run(
      binaryRequest(Op.INCREMENT, { key: 'n', extras: deltaExtras(1n, 10n, 0) }),
      binaryRequest(Op.INCREMENT, { key: 'n', extras: deltaExtras(5n, 10n, 0) }),
      binaryRequest(Op.DECREMENT, { key: 'n', extras: deltaExtras(100n, 0n, 0) }),
      binaryRequest(Op.INCREMENTQ, { key: 'n', extras: deltaExtras(18446744073709551615n, 0n, 0) }),
      binaryRequest(Op.DECREMENTQ, { key: 'm', extras: deltaExtras(1n, 0n, 0xffffffff) }),
      binaryRequest(Op.INCREMENT, { key: 'm', extras: deltaExtras(1n, 0n, 0xffffffff) }),
      binaryRequest(Op.SET, { key: 's', extras: storeExtras(0, 0), value: 'abc' }),
      binaryRequest(Op.INCREMENT, { key: 's', extras: deltaExtras(1n, 0n, 0) }),
      binaryRequest(Op.GET, { key: 'n' }),
    ));
    expect(responses.map((r) => [r.opcode, r.status, r.value.length === 8 && r.opcode !== Op.GET ? r.value.readBigUInt64BE(0) : r.value.toString()])).toEqual([
      [Op.INCREMENT, 0, 10n],
      [Op.INCREMENT, 0, 15n],
      [Op.DECREMENT, 0, 0n],
      [Op.DECREMENTQ, 1, 'Not found'],
      [Op.INCREMENT, 1, 'Not found'],
      [Op.SET, 0, ''],
      [Op.INCREMENT, 6, 'Non-numeric server-side value for incr or decr'],
      [Op.GET, 0, '18446744073709551615'],
    ]);

    ({ responses } = await run(
      binaryRequest(Op.SET, { key: 't', extras: storeExtras(9, 0), value: 'tv' }),
      binaryRequest(Op.TOUCH, { key: 't', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GAT, { key: 't', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GATQ, { key: 't', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GATK, { key: 't', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GATKQ, { key: 't', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.TOUCH, { key: 'nt', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GAT, { key: 'nt', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GATQ, { key: 'nt', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.GATKQ, { key: 'nt', extras: Buffer.from('00000064', 'hex') }),
      binaryRequest(Op.VERSION),
      binaryRequest(0x1b, { extras: Buffer.alloc(4) }),
      binaryRequest(Op.FLUSHQ),
      binaryRequest(Op.FLUSH, { extras: Buffer.from('00000000', 'hex') }),
      binaryRequest(Op.GET, { key: 't' }),
    ));
    expect(responses.map(show)).toEqual([
      { op: Op.SET, status: 0, opaque: 0, extras: '', key: '', value: '' },
      { op: Op.TOUCH, status: 0, opaque: 0, extras: '00000009', key: '', value: '' },
      { op: Op.GAT, status: 0, opaque: 0, extras: '00000009', key: '', value: 'tv' },
      { op: Op.GATQ, status: 0, opaque: 0, extras: '00000009', key: '', value: 'tv' },
      { op: Op.GATK, status: 0, opaque: 0, extras: '00000009', key: 't', value: 'tv' },
      { op: Op.GATKQ, status: 0, opaque: 0, extras: '00000009', key: 't', value: 'tv' },
      { op: Op.TOUCH, status: 1, opaque: 0, extras: '', key: '', value: 'Not found' },
      { op: Op.GAT, status: 1, opaque: 0, extras: '', key: '', value: 'Not found' },
      { op: Op.VERSION, status: 0, opaque: 0, extras: '', key: '', value: '1.6.18' },
      { op: 0x1b, status: 0x81, opaque: 0, extras: '', key: '', value: 'Unknown command' },
      { op: Op.FLUSH, status: 0, opaque: 0, extras: '', key: '', value: '' },
      { op: Op.GET, status: 1, opaque: 0, extras: '', key: '', value: 'Not found' },
    ]);

    ({ responses } = await run(binaryRequest(Op.STAT)));
    const stats = new Map(responses.map((r) => [r.key.toString(), r.value.toString()]));
    expect(responses.at(-1)).toMatchObject({ opcode: Op.STAT, status: 0, key: Buffer.alloc(0) });
    expect(stats.get('threads')).toBe('2');
    expect(Number(stats.get('cmd_set'))).toBeGreaterThan(5);
    ({ responses } = await run(binaryRequest(Op.STAT, { key: 'nosuch' })));
    expect(responses.map((r) => [r.status, r.value.toString()])).toEqual([[1, 'Not found']]);

    const big = await run(
      binaryRequest(Op.SET, { key: 'big', extras: storeExtras(0, 0), value: Buffer.alloc(1 << 20) }),
      binaryRequest(Op.GET, { key: 'big' }),
    );
    expect(big.responses.map((r) => [r.opcode, r.status, r.value.toString()])).toEqual([
      [Op.SET, 3, 'Too large.'],
      [Op.GET, 1, 'Not found'],
    ]);

    const quit = await run(binaryRequest(Op.QUIT, { opaque: 3 }), binaryRequest(Op.GET, { key: 'x' }));
    expect(quit.closed).toBe(true);
    expect(quit.responses.map((r) => [r.opcode, r.status, r.opaque])).toEqual([[Op.QUIT, 0, 3]]);
    const bad = await client(addresses[0]);
    const invalid = await bad.exchange(binaryRequest(Op.GET, { key: 'k'.repeat(251) }), { protocol: 'binary' });
    expect(invalid.closed).toBe(true);
    expect(parseBinaryResponses(invalid.reply).responses.map((r) => [r.status, r.value.toString()])).toEqual([[4, 'Invalid arguments']]);
  });

  test('a binary pipeline split at arbitrary boundaries', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    const c = await client(addresses[0]);
    const pipeline = (prefix: string) => {
      const requests: Buffer[] = [];
      for (let i = 0; i < 100; i++) {
        requests.push(binaryRequest(Op.SETQ, { key: `${prefix}${i}`, extras: storeExtras(i, 0), value: `value-${i}`.repeat(i % 5) }));
        requests.push(binaryRequest(Op.GETKQ, { key: `${prefix}${i}`, opaque: i }), binaryRequest(Op.GETQ, { key: `${prefix}missing` }));
        requests.push(binaryRequest(Op.INCREMENT, { key: `${prefix}n`, extras: deltaExtras(2n, 0n, 0), opaque: i }));
      }
      return Buffer.concat(requests);
    };
    const normalize = (reply: Buffer, prefix: string) =>
      parseBinaryResponses(reply).responses.map((r) => ({
        op: r.opcode,
        status: r.status,
        opaque: r.opaque,
        key: r.key.toString().replace(prefix, '#'),
        value: r.value.toString('hex'),
        flags: r.extras.toString('hex'),
      }));
    const whole = normalize((await c.exchange(pipeline('w'), { protocol: 'binary' })).reply, 'w');
    expect(whole).toHaveLength(200);
    for (const [i, chunks] of [[1], [3, 7, 24, 25], [100, 1, 50]].entries()) {
      const prefix = `p${i}x`;
      expect(normalize((await c.exchange(pipeline(prefix), { protocol: 'binary', chunks })).reply, prefix)).toEqual(whole);
    }
  });
});

describe.skipIf(SKIP_MEMCACHED)('memcached: byte for byte against Debian memcached', () => {
  test('the same requests get the same replies', async () => {
    const reference = await startMemcached();
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '64']);
    const K = (c: string, n: number) => c.repeat(n);
    // No case may contain `mn`: it is the exchange's end-of-replies sentinel, so a request carrying
    // one would end the read wherever the reply happened to be split (`mn` has its parser unit test).
    const cases = [
      'set a 0 0 1\r\nx\r\nget a\r\n',
      'set a 0 0 2\r\nxyz\r\nget a\r\n',
      'set a 0 0 -1\r\nget a\r\n',
      'set a 0 0 x\r\nab\r\n',
      'bogus\r\n\r\nGET a\r\nget\r\n',
      'set a 4294967296 0 1\r\nx\r\nget a\r\n',
      'set a 18446744073709551615 0 1\r\nx\r\nget a\r\n',
      'set a -1 0 1\r\nx\r\n',
      'set a 0 4294967295 1\r\nx\r\nget a\r\n',
      'set a 0 99999999999999999999 1\r\nx\r\n',
      'set e 0 0 2147483647\r\n',
      'set v 00 0 +1\r\nx\r\nget v\r\n',
      'delete a 0\r\ndelete a 5\r\ndelete a noreply\r\ndelete a\r\n',
      'set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\nincr n 18446744073709551615\r\nincr n x\r\nincr n -1\r\n',
      'set w 0 0 3\r\n 12\r\nincr w 1\r\nset w 0 0 2\r\n-1\r\nincr w 1\r\n',
      'touch a 10\r\nset a 0 0 1\r\nx\r\ntouch a 10\r\ntouch a\r\ntouch a x\r\n',
      'flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all x\r\nflush_all 0 noreply\r\nget a\r\n',
      'verbosity\r\nverbosity 1\r\nverbosity 1 noreply\r\nverbosity x\r\n',
      'stats foo\r\nstats reset\r\nstats detail\r\n',
      'cas a 0 0 1\r\nx\r\ncas a 0 0 1 x\r\nx\r\n',
      'set c 0 0 1\r\nx\r\ngets c\r\ncas c 0 0 1 999\r\ny\r\ngat 10 c\r\ngats 10 c\r\ngat c\r\ngat x c\r\n',
      'append nx 0 0 1\r\nx\r\nprepend nx 0 0 1\r\nx\r\nadd c 0 0 1\r\nx\r\nreplace nx 0 0 1\r\nx\r\n',
      'set f 0 0 1  \r\nx\r\nget  f  \r\nset f 0 0 1\nx\r\nget f\n',
      'set f 0 0 1 bogus\r\nx\r\nset f 0 0 1 noreply extra\r\nx\r\n',
      'set a 0 0 1 noreply\r\nxy\r\nget a\r\n',
      'set a 0 0 5\r\nhello\r\nappend a 0 0 3\r\n!!!\r\nprepend a 0 0 2\r\n<<\r\nget a\r\n',
      'shutdown\r\nget a\u0000b\r\n',
      `set ${K('b', 251)} 0 0 1 noreply\r\nx\r\n`,
      `get ${Array.from({ length: 600 }, (_, i) => `key${i}`).join(' ')}\r\n`,
      `set big 0 0 1048576\r\n${K('v', 1_048_576)}\r\nget big\r\nset big 0 0 1048476\r\n${K('v', 1_048_476)}\r\nget big\r\n`,
      `set a 0 0 1\r\nx\r\nappend a 0 0 1048540\r\n${K('v', 1_048_540)}\r\nget a\r\n`,
      'set q 0 0 1\r\n1\r\ndecr q 18446744073709551615\r\nincr q 18446744073709551615\r\nget q\r\n',
      'quit\r\nget a\r\n',
    ];
    const binaryCases = [
      Buffer.concat([
        binaryRequest(Op.SET, { key: 'a', extras: storeExtras(7, 0), value: 'hello', opaque: 5 }),
        binaryRequest(Op.GET, { key: 'a' }),
        binaryRequest(Op.GETK, { key: 'a' }),
        binaryRequest(Op.GETK, { key: 'zz' }),
      ]),
      Buffer.concat([
        binaryRequest(Op.ADD, { key: 'a', extras: storeExtras(0, 0), value: 'y' }),
        binaryRequest(Op.REPLACE, { key: 'nob', extras: storeExtras(0, 0), value: 'y' }),
        binaryRequest(Op.SET, { key: 'a', extras: storeExtras(0, 0), value: 'y', cas: 12345n }),
      ]),
      Buffer.concat([
        binaryRequest(Op.INCREMENT, { key: 'n', extras: deltaExtras(1n, 10n, 0) }),
        binaryRequest(Op.DECREMENT, { key: 'n', extras: deltaExtras(100n, 10n, 0) }),
        binaryRequest(Op.GET, { key: 'n' }),
        binaryRequest(Op.INCREMENT, { key: 'm', extras: deltaExtras(1n, 0n, 0xffffffff) }),
      ]),
      Buffer.concat([
        binaryRequest(Op.APPEND, { key: 'a', value: '>' }),
        binaryRequest(Op.PREPENDQ, { key: 'a', value: '<' }),
        binaryRequest(Op.APPENDQ, { key: 'none', value: '<' }),
        binaryRequest(Op.GETQ, { key: 'a' }),
        binaryRequest(Op.GETKQ, { key: 'none' }),
      ]),
      Buffer.concat([
        binaryRequest(Op.TOUCH, { key: 'a', extras: Buffer.alloc(4) }),
        binaryRequest(Op.GATK, { key: 'a', extras: Buffer.alloc(4) }),
        binaryRequest(Op.GATQ, { key: 'none', extras: Buffer.alloc(4) }),
        binaryRequest(Op.STAT, { key: 'nosuch' }),
      ]),
      Buffer.concat([
        binaryRequest(Op.DELETEQ, { key: 'a' }),
        binaryRequest(Op.DELETE, { key: 'a' }),
        binaryRequest(Op.FLUSHQ),
        binaryRequest(0x40, { value: 'abcd' }),
        binaryRequest(Op.VERSION),
      ]),
      Buffer.concat([binaryRequest(Op.SET, { key: 'big', extras: storeExtras(0, 0), value: Buffer.alloc(1 << 20) }), binaryRequest(Op.GET, { key: 'big' })]),
      binaryRequest(Op.GET, { key: 'k'.repeat(251) }),
      binaryRequest(Op.SET, { key: 'a', value: 'x' }),
      Buffer.concat([binaryRequest(Op.QUITQ), binaryRequest(Op.GET, { key: 'a' })]),
    ];
    const ask = async (address: string, bytes: string | Buffer, protocol: 'text' | 'binary') => {
      const c = await client(address);
      const { reply, closed } = await c.exchange(bytes, { protocol });
      c.close();
      return { reply: reply.toString('latin1'), closed };
    };
    for (const request of cases)
      expect(await ask(addresses[0], request, 'text'), JSON.stringify(request.slice(0, 80))).toEqual(await ask(reference, request, 'text'));
    for (const request of binaryCases)
      expect(await ask(addresses[0], request, 'binary'), request.subarray(0, 32).toString('hex')).toEqual(await ask(reference, request, 'binary'));
  });
});

describe.skipIf(SKIP_TOOLS)('memcached: stock clients from libmemcached-tools', () => {
  test('memccapable passes every test; memccp and memccat copy files in and out unchanged', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    const [host, port] = addresses[0].split(':');
    const capable = spawnSync('memccapable', ['-h', host, '-p', port, '-t', '5'], { encoding: 'utf8', timeout: 30_000 });
    expect(capable.stdout, capable.stderr).toMatch(/All tests passed/);
    expect(capable.stdout).not.toMatch(/\[fail\]/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'memcached-test-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const files = { 'small.txt': Buffer.from('hello from memccp\n'), 'binary.bin': Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff)) };
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
    for (const binary of [false, true]) {
      const copy = spawnSync('memccp', [`--servers=${addresses[0]}`, ...(binary ? ['--binary'] : []), ...Object.keys(files)], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 15_000,
      });
      expect(copy.status, copy.stderr).toBe(0);
      for (const [name, content] of Object.entries(files)) {
        const cat = spawnSync('memccat', [`--servers=${addresses[0]}`, ...(binary ? ['--binary'] : []), name], { timeout: 15_000 });
        expect(cat.status, String(cat.stderr)).toBe(0);
        // memccat ends each value with a newline (against memcached too).
        expect(Buffer.compare(cat.stdout, Buffer.concat([content, Buffer.from('\n')])), name).toBe(0);
      }
    }
    expect(readFileSync(path.join(dir, 'small.txt'), 'utf8')).toBe('hello from memccp\n');
  });
});

describe('memcached: one node, many cores', () => {
  test('every core accepts; a value stored through one core is seen by all as soon as the reply is sent', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    // The kernel hands each connection to whichever core's accept wakes first: on a loaded machine one
    // core may take a whole burst, so connect in bursts until both have taken some (at most 10).
    const clients: RawClient[] = [];
    const cores = new Set<string>();
    for (let burst = 0; burst < 10 && (burst === 0 || cores.size < 2); burst++) {
      const opened = await Promise.all(Array.from({ length: 40 }, () => client(addresses[0])));
      for (const c of opened) cores.add(/^STAT ebbrt_core (\d+)\r$/m.exec(await text(c, 'stats\r\n'))![1]);
      clients.push(...opened);
    }
    expect(cores).toEqual(new Set(['0', '1']));
    for (const [i, writer] of clients.entries()) {
      expect(await text(writer, `set key${i} ${i} 0 ${String(i).length}\r\n${i}\r\n`)).toBe('STORED\r\n');
      const readers = [clients[(i + 1) % clients.length], clients[(i + 7) % clients.length], clients[(i + 13) % clients.length]];
      for (const reader of readers) expect(await text(reader, `get key${i}\r\n`)).toBe(`VALUE key${i} ${i} ${String(i).length}\r\n${i}\r\nEND\r\n`);
    }
    // Concurrent increments from every connection (both cores at once) lose nothing.
    await text(clients[0], 'set counter 0 0 1\r\n0\r\n');
    await Promise.all(clients.map((c) => text(c, 'incr counter 1\r\n'.repeat(200))));
    const total = String(clients.length * 200);
    expect(await text(clients[5], 'get counter\r\n')).toBe(`VALUE counter 0 ${total.length}\r\n${total}\r\nEND\r\n`);
  });

  test('a small memory bound evicts old items and never grows past it', async () => {
    const { addresses } = await launchMemcached(['--nodes', '1', '--cores', '2', '--', '--port', '0', '--memory', '2']);
    const c = await client(addresses[0]);
    const value = 'x'.repeat(1000);
    for (let batch = 0; batch < 60; batch++) {
      const requests = Array.from({ length: 100 }, (_, i) => `set item${batch * 100 + i} 0 0 1000 noreply\r\n${value}\r\n`).join('');
      expect(await text(c, requests)).toBe('');
    }
    const stats = await text(c, 'stats\r\n');
    const stat = (name: string) => Number(new RegExp(`^STAT ${name} (\\d+)\\r$`, 'm').exec(stats)![1]);
    expect(stat('limit_maxbytes')).toBe(2 << 20);
    expect(stat('evictions')).toBeGreaterThan(3000);
    expect(stat('bytes')).toBeLessThanOrEqual(2 << 20);
    expect(stat('total_items')).toBe(6000);
    const recent = await text(c, `get ${Array.from({ length: 50 }, (_, i) => `item${5950 + i}`).join(' ')}\r\n`);
    expect(recent.match(/^VALUE /gm)).toHaveLength(50);
    expect(await text(c, 'get item0 item1\r\n')).toBe('END\r\n');
  });
});

describe('memcached: several nodes', () => {
  test('any node answers any key: foreign keys are forwarded over the messenger', async () => {
    const { addresses } = await launchMemcached(['--nodes', '2', '--cores', '2', '--', '--port', '0', '--memory', '16']);
    expect(addresses).toHaveLength(2);
    const [a, b] = await Promise.all(addresses.map((address) => client(address)));
    const keys = Array.from({ length: 300 }, (_, i) => `user:${i}`);
    expect(await text(a, keys.map((k, i) => `set ${k} ${i} 0 ${k.length}\r\n${k}\r\n`).join(''))).toBe('STORED\r\n'.repeat(300));
    // Every key through the other node, one by one and in multi-gets mixing owners.
    for (const [i, k] of keys.entries()) if (i % 10 === 0) expect(await text(b, `get ${k}\r\n`)).toBe(`VALUE ${k} ${i} ${k.length}\r\n${k}\r\nEND\r\n`);
    const multi = await text(b, `get ${keys.slice(0, 40).join(' ')} nope\r\n`);
    expect(multi).toBe(
      `${keys
        .slice(0, 40)
        .map((k, i) => `VALUE ${k} ${i} ${k.length}\r\n${k}\r\n`)
        .join('')}END\r\n`,
    );
    // The keys really are split between the nodes.
    const items = async (c: RawClient) => Number(/^STAT curr_items (\d+)\r$/m.exec(await text(c, 'stats\r\n'))![1]);
    const [itemsA, itemsB] = [await items(a), await items(b)];
    expect(itemsA + itemsB).toBe(300);
    expect(Math.min(itemsA, itemsB)).toBeGreaterThan(60);
    expect(await text(a, 'stats\r\n')).toMatch(/^STAT ebbrt_ring_nodes \d+,\d+\r$/m);
    // Every other command through the non-owner, in both protocols.
    expect(await text(b, 'set n 0 0 1\r\n5\r\nincr n 10\r\ndecr n 3\r\nappend n 0 0 1\r\n0\r\nget n\r\ntouch n 100\r\ndelete n\r\nget n\r\n')).toBe(
      'STORED\r\n15\r\n12\r\nSTORED\r\nVALUE n 0 3\r\n120\r\nEND\r\nTOUCHED\r\nDELETED\r\nEND\r\n',
    );
    const cas = Number(/^VALUE user:7 7 6 (\d+)\r$/m.exec(await text(b, 'gets user:7\r\n'))![1]);
    expect(await text(a, `cas user:7 0 0 1 ${cas}\r\nx\r\ncas user:7 0 0 1 ${cas}\r\ny\r\n`)).toBe('STORED\r\nEXISTS\r\n');
    const binary = await (await client(addresses[1])).exchange(Buffer.concat(keys.slice(0, 20).map((k) => binaryRequest(Op.GETKQ, { key: k }))), {
      protocol: 'binary',
    });
    expect(parseBinaryResponses(binary.reply).responses.map((r) => r.key.toString())).toEqual(keys.slice(0, 20));
    // Pipelined replies stay in request order when some are forwarded.
    const pipeline = keys
      .slice(100, 160)
      .map((k) => `get ${k}\r\nset local${k} 0 0 1\r\nx\r\n`)
      .join('');
    expect(await text(b, pipeline, [17, 300, 5])).toBe(
      keys
        .slice(100, 160)
        .map((k, i) => `VALUE ${k} ${100 + i} ${k.length}\r\n${k}\r\nEND\r\nSTORED\r\n`)
        .join(''),
    );
    // flush_all through one node empties both.
    expect(await text(a, 'flush_all\r\n')).toBe('OK\r\n');
    expect(await text(b, `get ${keys.slice(0, 50).join(' ')}\r\n`)).toBe('END\r\n');
  });

  test('a node that dies: the others keep serving (its keys miss, none errs), its replacement takes its place on the ring', async () => {
    const { addresses, spawned } = await launchMemcached(['--nodes', '2', '--cores', '1', '--', '--port', '0', '--memory', '8']);
    const [a, b] = await Promise.all(addresses.map((address) => client(address)));
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    expect(await text(a, keys.map((k) => `set ${k} 0 0 1 noreply\r\nv\r\n`).join(''))).toBe('');
    const stat = async (c: RawClient, name: string) => new RegExp(`^STAT ${name} (\\S+)\\r$`, 'm').exec(await text(c, 'stats\r\n'))![1];
    const kept = Number(await stat(a, 'curr_items'));
    const ring = (await stat(a, 'ebbrt_ring_nodes')).split(',');
    process.kill(Number(await stat(b, 'pid')), 'SIGKILL');
    // Until the replacement joins, and after: a answers every get itself or through the ring, never with an error.
    const deadline = Date.now() + 20_000;
    let replaced: RegExpExecArray | null = null;
    while (!(replaced = /memcached: node (\d+) replaced node (\d+), listening on (\S+)/.exec(spawned.stdout()))) {
      if (Date.now() > deadline) throw new Error(`no replacement within 20 s: ${spawned.stderr()}`);
      const reply = await text(a, `get ${keys.join(' ')}\r\n`);
      expect(reply).not.toMatch(/SERVER_ERROR/);
      expect(reply.match(/^VALUE /gm)?.length ?? 0).toBeLessThanOrEqual(kept);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const [, newId, oldId, address] = replaced;
    expect(ring).toContain(oldId);
    expect(ring).not.toContain(newId);
    for (let tries = 0; !(await stat(a, 'ebbrt_ring_nodes')).split(',').includes(newId); tries++) {
      if (tries > 50) throw new Error('the ring does not list the replacement');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const c = await client(address);
    // b's shard is gone (misses), and the ring serves through both nodes again.
    const after = await text(a, `get ${keys.join(' ')}\r\n`);
    expect(after).not.toMatch(/SERVER_ERROR/);
    expect(after.match(/^VALUE /gm)?.length ?? 0).toBeLessThanOrEqual(kept);
    expect(await text(a, `${keys.map((k) => `set ${k} 0 0 1 noreply\r\nw\r\n`).join('')}get ${keys.join(' ')}\r\n`)).toBe(
      `${keys.map((k) => `VALUE ${k} 0 1\r\nw\r\n`).join('')}END\r\n`,
    );
    expect(await text(c, `get ${keys.join(' ')}\r\n`)).toBe(`${keys.map((k) => `VALUE ${k} 0 1\r\nw\r\n`).join('')}END\r\n`);
    const items = Number(await stat(c, 'curr_items'));
    expect(items).toBeGreaterThan(0);
    expect(items).toBeLessThan(100);
  });
});
