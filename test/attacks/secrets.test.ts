/**
 * Secrets out of sight: a native the frontend launches carries neither the
 * cluster secret nor the messenger TLS key on its command line or in its
 * environment (what `ps` and /proc/<pid>/environ show other users); it gets
 * them over an inherited pipe, and still joins and serves.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { FIXTURES, startFrontend, TEST_SECRET } from '../kit/index.js';

const APP = path.join(FIXTURES, 'cluster/native.js');

test('a launched native joins with the secret it read from its pipe; argv and environment hold no secret', async () => {
  const fe = await startFrontend();
  const [native] = await fe.allocate(1, APP, { cores: 1 });
  expect(fe.hosted.members.has(native!.nodeId)).toBe(true);
  const cmdline = readFileSync(`/proc/${native!.pid}/cmdline`, 'utf8');
  const environ = readFileSync(`/proc/${native!.pid}/environ`, 'utf8');
  expect(cmdline).not.toContain(TEST_SECRET);
  expect(environ).not.toContain(TEST_SECRET);
  expect(environ.split('\0')).toContain('EBBRT_SECRETS_FD=4');
});
