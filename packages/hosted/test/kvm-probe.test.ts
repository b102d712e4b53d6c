/**
 * The KVM probe driven by stand-in `qemu` binaries (shell scripts) that behave
 * like QEMU does where KVM works, where it hangs (nested virtualisation: the
 * firmware runs, the kernel never prints), and where QEMU refuses to start —
 * so every branch runs on any machine, whatever its /dev/kvm does.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { probeKvm } from '../src/backends/qemu/kvm.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-kvm-probe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in device the probe may open (the real /dev/kvm is not needed). */
const DEVICE = path.join(dir, 'kvm');
writeFileSync(DEVICE, '');
const KERNEL = path.join(dir, 'vmlinuz');
writeFileSync(KERNEL, 'not a kernel');

/** Writes an executable stand-in that records its pid and argv, then runs `body`. */
function standIn(name: string, body: string): { qemu: string; pidFile: string; argvFile: string } {
  const qemu = path.join(dir, name);
  const pidFile = `${qemu}.pid`;
  const argvFile = `${qemu}.argv`;
  writeFileSync(qemu, `#!/bin/sh\necho $$ > '${pidFile}'\nprintf '%s\\n' "$@" > '${argvFile}'\n${body}\n`);
  chmodSync(qemu, 0o755);
  return { qemu, pidFile, argvFile };
}

/** Resolves once `pid` is gone (the probe SIGKILLs its VM); fails after `ms`. */
async function gone(pid: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`stand-in qemu ${pid} still runs ${ms} ms after the probe settled`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('probeKvm with stand-in qemu binaries', () => {
  test('a guest that prints its kernel banner: KVM works, and the probe VM is killed at once', async () => {
    const q = standIn('banner', `echo 'SeaBIOS (version 1.16)'\nprintf 'Linux ver'\nsleep 0.2\necho 'sion 6.1.0 (stand-in)'\nexec sleep 30`);
    const probe = await probeKvm(KERNEL, { qemu: q.qemu, device: DEVICE, timeoutMs: 10_000 });
    expect(probe).toMatchObject({ works: true, reason: 'a KVM guest booted its kernel' });
    expect(probe.ms).toBeLessThan(10_000);
    await gone(Number(readFileSync(q.pidFile, 'utf8')));
    const argv = readFileSync(q.argvFile, 'utf8').split('\n');
    expect(argv.slice(argv.indexOf('-accel'), argv.indexOf('-accel') + 2)).toEqual(['-accel', 'kvm']);
    expect(argv[argv.indexOf('-kernel') + 1]).toBe(KERNEL);
  });

  test('a guest that hangs after the firmware: not working after the timeout, the VM killed', async () => {
    const q = standIn('hang', `echo 'SeaBIOS (version 1.16)'\necho 'Booting from ROM...'\nexec sleep 30`);
    const probe = await probeKvm(KERNEL, { qemu: q.qemu, device: DEVICE, timeoutMs: 400 });
    expect(probe.works).toBe(false);
    expect(probe.reason).toBe('a KVM guest printed no kernel banner within 400 ms (KVM present but not running guests, e.g. nested virtualisation)');
    expect(probe.ms).toBeGreaterThanOrEqual(390);
    await gone(Number(readFileSync(q.pidFile, 'utf8')));
  });

  test('qemu that exits (KVM refused): not working, the reason carries its exit code and last lines', async () => {
    const q = standIn(
      'exits',
      `echo 'Could not access KVM kernel module: Permission denied' >&2\necho 'qemu-system-x86_64: failed to initialize kvm: Permission denied' >&2\nexit 1`,
    );
    const probe = await probeKvm(KERNEL, { qemu: q.qemu, device: DEVICE, timeoutMs: 10_000 });
    expect(probe.works).toBe(false);
    expect(probe.reason).toBe(
      'the KVM probe VM exited (1): Could not access KVM kernel module: Permission denied / qemu-system-x86_64: failed to initialize kvm: Permission denied',
    );
  });

  test('no qemu binary: QemuError QEMU_NOT_FOUND naming it', async () => {
    const missing = path.join(dir, 'no-such-qemu');
    await expect(probeKvm(KERNEL, { qemu: missing, device: DEVICE })).rejects.toMatchObject({
      name: 'QemuError',
      code: 'QEMU_NOT_FOUND',
      message: expect.stringContaining(missing),
    });
  });

  test('no KVM device: not working, and qemu is never run', async () => {
    const q = standIn('never', 'exit 0');
    const device = path.join(dir, 'absent');
    const probe = await probeKvm(KERNEL, { qemu: q.qemu, device });
    expect(probe).toMatchObject({ works: false, reason: `${device} does not exist` });
    expect(() => readFileSync(q.pidFile)).toThrow(/ENOENT/);
  });
});
