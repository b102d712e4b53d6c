/**
 * The messenger over mutual TLS (HostedOptions.tls, EBBRT_TLS_* on natives):
 * a self-signed certificate made at test time with openssl, a frontend and
 * native processes that join, call each other and call the frontend through
 * it; plain TCP and certificate-less TLS clients are dropped before a frame
 * reaches the messenger.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { describe, expect, test } from 'vitest';
import { encodeArgs, encodeFrame, FrameKind } from '@ebbrt/ebb-protocol/internal';
import { ClusterWorker, HomeCounter } from './fixtures/cluster/ebbs.js';
import { closedWithin, FIXTURES, rawSocket, startFrontend } from './kit/index.js';
import { skipFor, skipNote, toolMissing } from './kit/requirements.js';

const APP = path.join(FIXTURES, 'cluster/native.js');
const opensslMissing = toolMissing('openssl', 'openssl');
const skipTls = skipFor('messenger over TLS', opensslMissing);

/** A self-signed certificate for 127.0.0.1, valid for a day, that is its own CA. */
function selfSigned(): { cert: string; key: string; ca: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-tls-'));
  try {
    const result = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=ebbrt-test-cluster',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { encoding: 'utf8' },
    );
    if (result.status !== 0) throw new Error(`openssl failed: ${result.stderr}`);
    const cert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    return { cert, key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), ca: cert };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(skipTls)(`messenger over TLS${skipNote(opensslMissing)}`, () => {
  test('natives join and call over mutual TLS; plain TCP and certificate-less clients never reach the messenger', async () => {
    const credentials = selfSigned();
    const fe = await startFrontend({ tls: credentials });
    const [a, b] = await fe.allocate(2, APP, { cores: 2 });
    const rt = fe.hosted.runtime;
    for (const native of [a, b])
      for (const core of [0, 1])
        expect(await rt.remote(ClusterWorker, native.nodeId, core).whoami()).toMatchObject({ nodeId: native.nodeId, core, pid: native.pid });
    // Native → native (peer connections) and native → frontend (GlobalIdMap) over TLS too.
    expect(await rt.remote(ClusterWorker, a.nodeId).claim()).toEqual({ home: a.nodeId, sticky: a.nodeId });
    expect(await rt.remote(ClusterWorker, b.nodeId).addHome(1)).toEqual({ value: 101, nodeId: a.nodeId });
    expect(await rt.ref(HomeCounter).add(1)).toEqual({ value: 102, nodeId: a.nodeId });

    // A plain-TCP client speaking our frames: the TLS layer drops it; the messenger never sees a frame.
    const plain = await rawSocket(fe.hosted.address);
    plain.write(
      encodeFrame({ kind: FrameKind.call, flags: 0, core: 0xffff, ebbId: ClusterWorker.staticId, code: ClusterWorker.codes.bump, callId: 1 }, encodeArgs([])),
    );
    await closedWithin(plain, 7000);
    // A TLS client without a client certificate is refused in the handshake.
    const anonymous = tls.connect({ host: '127.0.0.1', port: fe.hosted.port, ca: credentials.ca });
    const refusal = new Promise<Error>((resolve) => anonymous.once('error', resolve));
    anonymous.on('data', () => undefined);
    expect((await refusal).message).toMatch(/certificate required/);
    await closedWithin(anonymous, 2000);
    expect(fe.hosted.messenger.stats.rejectedHandshakes).toBe(0);
    expect(fe.hosted.stats.protocolErrors).toBe(0);
    expect(await rt.remote(ClusterWorker, a.nodeId).counts()).toMatchObject({ bumps: 0 });
    expect(fe.hosted.members.size).toBe(2);
  });
});
