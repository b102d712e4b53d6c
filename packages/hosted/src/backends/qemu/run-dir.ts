/** Per-VM run directories (console log, QMP socket) and their pruning. */
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

/** Console logs are kept after a VM ends (for post-mortems) until a later launch finds them this old. */
const KEEP_LOGS_MS = 24 * 60 * 60 * 1000;

/**
 * Removes the run directories of VMs that ended (their QMP socket is removed
 * on exit) and whose console was last written over a day ago; best effort.
 */
export async function pruneRunDirs(logRoot: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(logRoot).catch(() => [] as string[])) {
    const dir = path.join(logRoot, name);
    if (existsSync(path.join(dir, 'qmp.sock'))) continue;
    const info = await stat(path.join(dir, 'console.log'))
      .catch(() => stat(dir))
      .catch(() => undefined);
    if (info && now - info.mtimeMs > KEEP_LOGS_MS) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
