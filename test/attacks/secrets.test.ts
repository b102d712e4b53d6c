/**
 * Secrets out of sight: a native the frontend launches never gets the cluster
 * secret, only a one-time join token, and neither that nor the messenger TLS
 * key is on its command line or in its environment (what `ps` and
 * /proc/<pid>/environ show other users); it gets them over an inherited pipe,
 * and still joins and serves.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { parseArgs } from '@ebbrt/examples/invoker/args.js';
import { HelloKey } from '@ebbrt/ebb-protocol/internal';
import { FIXTURES, startFrontend, TEST_SECRET } from '../kit/index.js';

const APP = path.join(FIXTURES, 'cluster/native.js');

test('a launched native never holds the cluster secret: it joins with the one-time join token it read from its pipe; argv and environment hold neither', async () => {
  const fe = await startFrontend();
  const [native] = await fe.allocate(1, APP, { cores: 1 });
  expect(fe.hosted.members.get(native!.nodeId)?.conn.hello?.key).toBe(HelloKey.joinToken);
  const cmdline = readFileSync(`/proc/${native!.pid}/cmdline`, 'utf8');
  const environ = readFileSync(`/proc/${native!.pid}/environ`, 'utf8');
  expect(cmdline).not.toContain(TEST_SECRET);
  expect(environ).not.toContain(TEST_SECRET);
  expect(environ.split('\0')).toContain('EBBRT_SECRETS_FD=4');
});

test('the invoker takes namespace keys from a file (--namespace-file), so they need not sit on a command line', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-ns-'));
  const file = path.join(dir, 'namespaces');
  writeFileSync(file, '# tenants\nred=u1:k1\n\nblue=u2:k2\n', { mode: 0o600 });
  expect([...parseArgs(['--namespace-file', file]).namespaces]).toEqual([
    ['red', 'u1:k1'],
    ['blue', 'u2:k2'],
  ]);
  writeFileSync(file, 'red=u1:secret-key\nbad line with secret-key\n');
  const error = (() => {
    try {
      parseArgs(['--namespace-file', file]);
    } catch (e) {
      return e as Error;
    }
  })();
  expect(error?.message).toMatch(/--namespace-file .* must be NAME=UUID:KEY/);
  expect(error?.message).not.toContain('secret-key');
  expect(() => parseArgs(['--namespace-file', path.join(dir, 'missing')])).toThrow(/cannot read/);
  rmSync(dir, { recursive: true });
});
