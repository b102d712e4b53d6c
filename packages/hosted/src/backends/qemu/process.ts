/** Running QEMU as a child process: spawn, exit, and the error when it cannot be run. */
import { spawn, type ChildProcess } from 'node:child_process';
import { QemuError } from './errors.js';

export function spawnQemu(qemu: string, args: string[]): ChildProcess {
  return spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

export function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve(`spawn failed: ${error.message}`));
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
}

export function qemuMissing(qemu: string, error: unknown): QemuError {
  return new QemuError(
    'QEMU_NOT_FOUND',
    `${qemu} cannot be run (${(error as Error).message}): apt-get install qemu-system-x86 (infra/setup.sh does) or set options.qemu`,
    { cause: error },
  );
}
