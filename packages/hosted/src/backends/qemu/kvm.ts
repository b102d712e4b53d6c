/** Whether KVM runs guests here (see {@link probeKvm}). */
import { existsSync, accessSync, constants as fsConstants } from 'node:fs';
import { spawnQemu, qemuMissing } from './process.js';

/** Result of {@link probeKvm}. */
export interface KvmProbe {
  works: boolean;
  /** Why not (or what showed it works). */
  reason: string;
  /** How long the probe took, ms. */
  ms: number;
}

/**
 * Does KVM run guests here? Boots `kernel` under KVM with no initramfs and
 * waits for its banner on the serial console: firmware alone runs even where
 * nested virtualisation is broken and the kernel then hangs. Kills the probe
 * VM as soon as it knows, and after `timeoutMs` at the latest. `device` is
 * the KVM device to check first (default /dev/kvm).
 */
export async function probeKvm(kernel: string, options: { qemu?: string; timeoutMs?: number; device?: string } = {}): Promise<KvmProbe> {
  const started = performance.now();
  const done = (works: boolean, reason: string): KvmProbe => ({ works, reason, ms: Math.round(performance.now() - started) });
  const device = options.device ?? '/dev/kvm';
  if (!existsSync(device)) return done(false, `${device} does not exist`);
  try {
    accessSync(device, fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    return done(false, `no read/write access to ${device} (join the kvm group)`);
  }
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const timeoutMs = options.timeoutMs ?? 3000;
  const args = [
    '-M',
    'pc',
    '-accel',
    'kvm',
    '-cpu',
    'host',
    '-m',
    '128',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-no-user-config',
    '-kernel',
    kernel,
    '-append',
    'console=ttyS0 earlyprintk=ttyS0 panic=-1',
    '-serial',
    'stdio',
  ];
  const child = spawnQemu(qemu, args);
  let output = '';
  return new Promise<KvmProbe>((resolve, reject) => {
    const finish = (result: KvmProbe) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(result);
    };
    const timer = setTimeout(
      () => finish(done(false, `a KVM guest printed no kernel banner within ${timeoutMs} ms (KVM present but not running guests, e.g. nested virtualisation)`)),
      timeoutMs,
    );
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      if (output.includes('Linux version')) finish(done(true, 'a KVM guest booted its kernel'));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(qemuMissing(qemu, error));
    });
    child.once('exit', (code, signal) =>
      finish(done(false, `the KVM probe VM exited (${code ?? signal}): ${output.trim().split('\n').slice(-2).join(' / ')}`)),
    );
  });
}
