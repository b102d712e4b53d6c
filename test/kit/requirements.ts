/**
 * System requirements of the integration tier (a package, a capability, a
 * service that must start). Outside CI a case whose requirement is missing
 * skips, with the one-line reason in its title and on stderr; under `CI=true`
 * the file fails with that reason instead, so a CI machine that lacks a
 * package or cannot start a service never goes green.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

/** Running under CI (`CI=true`): missing requirements fail instead of skipping. */
export const CI = process.env.CI === 'true';

/** Is `tool` on PATH? */
export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v '${tool.replace(/'/g, '')}'`]).status === 0;
}

/** Why a tool is missing (naming the package infra/setup.sh installs), or undefined. */
export function toolMissing(tool: string, debianPackage: string): string | undefined {
  return hasTool(tool) ? undefined : `${tool} is not installed (infra/setup.sh installs ${debianPackage})`;
}

/**
 * Decides on a requirement: `reason` undefined means it is met. Returns true when the cases must
 * skip; under CI=true a reason throws instead (the file fails while it is collected).
 */
export function skipFor(what: string, reason: string | undefined): boolean {
  if (reason === undefined) return false;
  if (CI) throw new Error(`${what} cannot run under CI=true: ${reason}`);
  console.warn(`${what} skipped: ${reason}`);
  return true;
}

/** Title suffix for a case that may skip: ` (skipped: reason)`, or nothing when it runs. */
export function skipNote(reason: string | undefined): string {
  return reason === undefined ? '' : ` (skipped: ${reason})`;
}

/** Why VM natives cannot boot here (QEMU, a kernel, a static busybox for the image), or undefined. */
export function vmMissing(): string | undefined {
  if (spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).error)
    return 'qemu-system-x86_64 is not installed (infra/setup.sh installs qemu-system-x86)';
  if (!readdirSync('/boot').some((name) => name.startsWith('vmlinuz-'))) return 'no kernel in /boot (infra/setup.sh installs linux-image-cloud-amd64)';
  if (!existsSync('/bin/busybox')) return 'no /bin/busybox (infra/setup.sh installs busybox-static)';
  return undefined;
}
