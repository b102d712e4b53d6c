import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONTROL_CODES,
  HelloKey,
  HelloPurpose,
  ProtocolError,
  RejectReason,
  decodeControl,
  encodeControl,
  type ControlBodies,
  type ControlType,
} from '@ebbrt/ebb-protocol/internal';
import { generated } from '../../scripts/embed-proto.mjs';

const protoUrl = new URL('../../control.proto', import.meta.url);
const generatedUrl = new URL('../../src/wire/control-proto.generated.ts', import.meta.url);

const bytes = (n: number, start = 0) => Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff));
const peer = (nodeId: number) => ({
  nodeId,
  host: `10.0.0.${nodeId}`,
  port: 7000 + nodeId,
  cores: 4,
  idSpace: nodeId + 1,
  backend: 'qemu',
  incarnation: 2,
  pairKey: bytes(32, nodeId),
});

/** One body per control type, every field set to a non-default value. */
const SAMPLES: { [K in ControlType]: ControlBodies[K] } = {
  challenge: { nonce: bytes(32), protocolVersion: 1, nodeId: 1, handshakeVersion: 2, incarnation: 1 },
  hello: {
    protocolVersion: 1,
    purpose: HelloPurpose.join,
    mac: bytes(32, 100),
    clientNonce: bytes(32, 200),
    allocationId: 'alloc-7f3e',
    nodeId: 5,
    core: 3,
    cores: 8,
    host: '127.0.0.1',
    port: 40123,
    backend: 'process',
    pid: 4242,
    handshakeVersion: 2,
    key: HelloKey.nodeCredential,
    incarnation: 3,
  },
  welcome: {
    nodeId: 5,
    idSpace: 5,
    peers: [peer(1), peer(2)],
    mac: bytes(32, 7),
    heartbeatMs: 500,
    cluster: 'test-cluster',
    incarnation: 4,
    credential: bytes(32, 9),
  },
  reject: { reason: RejectReason.unsupportedVersion, message: 'this frontend speaks version 1', supportedVersion: 1 },
  idMapGet: { id: 0x10001 },
  idMapSet: { id: 0x20002, value: Buffer.from('value') },
  idMapCas: { id: 0xffffffff, expectedVersion: 2 ** 40 + 3, value: bytes(3) },
  idMapWatch: { id: 0x8000, cancel: true },
  idMapChanged: { id: 0x10001, found: true, value: Buffer.from([1]), version: 9 },
  idMapValue: { id: 0x10001, found: true, value: bytes(100), version: 2 ** 52, ok: true, error: 'none', errorCode: 'STORE_UNAVAILABLE' },
  heartbeat: {
    nodeId: 3,
    sentAtMs: 1_767_225_600_000,
    inFlight: 12,
    rssBytes: 64 * 2 ** 30,
    cores: [
      {
        core: 1,
        faults: 2,
        remoteCalls: 3,
        crossCoreCalls: 4,
        servedCalls: 2 ** 40,
        servedErrors: 6,
        messages: 7,
        ebbs: [
          {
            id: 0x10001,
            name: 'Tally',
            policy: 'home',
            rep: 3,
            repNode: 1,
            crossCoreCalls: 1,
            crossCoreErrors: 0,
            remoteCalls: 9,
            remoteErrors: 1,
            servedCalls: 0,
            servedErrors: 0,
            latency: { bucket: [4, 40], count: [5, 2 ** 33] },
            servedLatency: { bucket: [], count: [] },
          },
        ],
      },
    ],
    services: [{ name: 'memcached:65537', address: '127.0.0.1:11211' }],
  },
  membershipUpdate: { joined: [peer(7)], left: [2, 3, 0xffffffff], suspected: [5], reinstated: [6] },
  goodbye: { reason: 'shutting down' },
};

describe('control messages', () => {
  it('every control type has a sample here (a new type needs a test)', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(CONTROL_CODES).sort());
  });

  it.each(Object.keys(SAMPLES) as ControlType[])('%s round-trips through encodeControl/decodeControl', (type) => {
    const encoded = encodeControl(type, SAMPLES[type]);
    expect(Buffer.isBuffer(encoded)).toBe(true);
    // the envelope starts with the body's tag: field number CONTROL_CODES[type], wire type 2
    expect(encoded[0]).toBe((CONTROL_CODES[type] << 3) | 2);
    const decoded = decodeControl(encoded);
    expect(decoded.type).toBe(type);
    expect(decoded.body).toEqual(SAMPLES[type]);
  });

  it('fills absent fields with proto3 defaults', () => {
    expect(decodeControl(encodeControl('goodbye', {}))).toEqual({ type: 'goodbye', body: { reason: '' } });
    const cas = decodeControl(encodeControl('idMapCas', { id: 9 }));
    expect(cas).toEqual({ type: 'idMapCas', body: { id: 9, expectedVersion: 0, value: Buffer.alloc(0) } });
    const welcome = decodeControl(encodeControl('welcome', { nodeId: 2 }));
    expect(welcome.body).toEqual({
      nodeId: 2,
      idSpace: 0,
      peers: [],
      mac: Buffer.alloc(0),
      heartbeatMs: 0,
      cluster: '',
      incarnation: 0,
      credential: Buffer.alloc(0),
    });
    const hello = decodeControl(encodeControl('hello', { purpose: HelloPurpose.peer }));
    expect(hello.body).toMatchObject({ purpose: HelloPurpose.peer, protocolVersion: 0, allocationId: '', core: 0 });
  });

  it('CONTROL_CODES are the Control.body field numbers of control.proto', () => {
    const text = readFileSync(protoUrl, 'utf8');
    const oneof = /oneof body \{([^}]*)\}/.exec(text)?.[1] ?? '';
    const fields = [...oneof.matchAll(/^\s*(\w+)\s+(\w+)\s*=\s*(\d+);/gm)].map(([, , name, num]) => [
      name.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()),
      Number(num),
    ]);
    expect(Object.fromEntries(fields)).toEqual(CONTROL_CODES);
  });

  it('enum values match control.proto', () => {
    const text = readFileSync(protoUrl, 'utf8');
    expect(text).toMatch(/JOIN = 1;/);
    expect(text).toMatch(/PEER = 2;/);
    expect(HelloPurpose).toEqual({ unspecified: 0, join: 1, peer: 2 });
    expect(RejectReason).toEqual({
      unspecified: 0,
      badSecret: 1,
      unsupportedVersion: 2,
      badRequest: 3,
      unknownAllocation: 4,
      shuttingDown: 5,
      busy: 6,
      declaredDead: 7,
    });
    expect(HelloKey).toEqual({ unspecified: 0, clusterSecret: 1, joinToken: 2, nodeCredential: 3, pairKey: 4 });
    for (const [name, value] of [
      ['BAD_SECRET', 1],
      ['UNSUPPORTED_VERSION', 2],
      ['BAD_REQUEST', 3],
      ['UNKNOWN_ALLOCATION', 4],
      ['SHUTTING_DOWN', 5],
      ['BUSY', 6],
      ['CLUSTER_SECRET', 1],
      ['JOIN_TOKEN', 2],
      ['NODE_CREDENTIAL', 3],
      ['PAIR_KEY', 4],
    ] as const) {
      expect(text).toContain(`${name} = ${value};`);
    }
  });

  it('decodes a hand-written Goodbye envelope', () => {
    // field 13 (goodbye), wire type 2, length 4: { field 1 (reason), wire type 2, length 2, "ok" }
    expect(decodeControl(Buffer.from('6a040a026f6b', 'hex'))).toEqual({ type: 'goodbye', body: { reason: 'ok' } });
  });

  it.each([
    ['empty envelope', ''],
    ['truncated length-delimited body', '0aff'],
    ['invalid wire type', '0f'],
    ['unterminated varint', '08ffffffffffffffffffff'],
    ['only an unknown field', 'a00601'],
    ['random bytes', 'ffffffffffffffff'],
    ['body longer than the buffer', '6a0a0a026f6b'],
  ])('malformed bytes (%s) are a BAD_CONTROL ProtocolError', (_what, hex) => {
    let err: unknown;
    try {
      decodeControl(Buffer.from(hex, 'hex'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('BAD_CONTROL');
  });
});

describe('control.proto embedding', () => {
  it('src/wire/control-proto.generated.ts is the descriptor of control.proto as it is (run scripts/embed-proto.mjs after editing the .proto)', () => {
    expect(readFileSync(generatedUrl, 'utf8')).toBe(generated(readFileSync(protoUrl, 'utf8')));
  });
});
