/**
 * The qemu backend's validation, which happens before any image is built or
 * VM started: options at construction (TypeError), and launches the kernel
 * command line cannot carry (QemuError VM_CONFIG).
 */
import { describe, expect, test } from 'vitest';
import {
  QemuBackend,
  QemuError,
  VM_CONNECTION_LIMITS,
  VM_FAILURE_TIMEOUT_MS,
  VM_SUSPECT_AFTER_MS,
  vmFrontendOptions,
  type LaunchSpec,
  type QemuBackendOptions,
} from '@ebbrt/hosted';

describe('QemuBackend options', () => {
  test.each<[QemuBackendOptions, RegExp]>([
    [{ accel: 'hvf' as never }, /options.accel must be 'auto', 'kvm' or 'tcg'/],
    [{ imageDir: '' }, /options.imageDir must be a non-empty string/],
    [{ qemu: 3 as never }, /options.qemu must be a non-empty string/],
    [{ logDir: `/tmp/${'x'.repeat(80)}` }, /options.logDir must be at most 70 characters/],
    [{ memoryMiB: 256 }, /options.memoryMiB must be an integer of at least 320/],
    [{ probeTimeoutMs: 0 }, /options.probeTimeoutMs must be a positive integer/],
    [{ joinTimeoutMs: 1.5 }, /options.joinTimeoutMs must be a positive integer/],
    [{ warn: 'stderr' as never }, /options.warn must be a function/],
  ])('%o → TypeError', (options, message) => {
    expect(() => new QemuBackend(options)).toThrow(TypeError);
    expect(() => new QemuBackend(options)).toThrow(message);
  });

  test('defaults: a 60 s join deadline (TCG boots take seconds)', () => {
    expect(new QemuBackend().joinTimeoutMs).toBe(60_000);
    expect(new QemuBackend({ joinTimeoutMs: 5000 }).joinTimeoutMs).toBe(5000);
  });
});

describe('launches a kernel command line cannot carry fail with VM_CONFIG before anything starts', () => {
  const spec: LaunchSpec = {
    app: '/nonexistent/native.js',
    cores: 1,
    frontend: '127.0.0.1:4000',
    joinToken: 'ab'.repeat(32),
    allocationId: 'a',
    env: {},
    args: [],
    stdio: 'pipe',
  };

  test.each<[Partial<LaunchSpec>, RegExp]>([
    [{ memoryMiB: 300 }, /at least 320 MiB/],
    [{ env: { 'BAD.NAME': 'x' } }, /environment variable name "BAD.NAME"/],
    [{ env: { QUOTED: 'a"b' } }, /QUOTED holds a double quote or a line break/],
    [{ env: Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`V${i}`, 'x'])) }, /at most 24 extra environment variables/],
    [{ env: { EBBRT_TLS_CERT: '-----BEGIN CERTIFICATE-----' } }, /TLS cluster/],
    [{ args: ['x'.repeat(2000)] }, /over the 2048-byte limit/],
  ])('%#', async (override, message) => {
    const error = await new QemuBackend().launch({ ...spec, ...override }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QemuError);
    expect((error as QemuError).code).toBe('VM_CONFIG');
    expect((error as Error).message).toMatch(message);
  });
});

describe('vmFrontendOptions: the one rule for frontends launching VM natives', () => {
  test('the VM thresholds and connection limits unless failure detection is given', () => {
    expect(vmFrontendOptions()).toEqual({ failureTimeoutMs: VM_FAILURE_TIMEOUT_MS, suspectAfterMs: VM_SUSPECT_AFTER_MS, limits: VM_CONNECTION_LIMITS });
    // A failure timeout of one's own: the VM suspicion threshold could exceed it, so the frontend's default applies.
    expect(vmFrontendOptions({ failureTimeoutMs: 9000 })).toEqual({ failureTimeoutMs: 9000, suspectAfterMs: undefined, limits: VM_CONNECTION_LIMITS });
    expect(vmFrontendOptions({ suspectAfterMs: 1000 })).toEqual({
      failureTimeoutMs: VM_FAILURE_TIMEOUT_MS,
      suspectAfterMs: 1000,
      limits: VM_CONNECTION_LIMITS,
    });
  });
});
