/**
 * The boot configuration contract: what launchers write (bootEnv,
 * bootKernelParams) is what a native reads (parseBootConfig), from the
 * kernel command line (native VMs) and the environment; the address settings
 * VMs need: advertised address, listen port, host aliases.
 */
import { openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  bootEnv,
  bootKernelParams,
  bootVariable,
  BootConfigError,
  parseBootConfig,
  parseBootSecrets,
  parseKernelCmdline,
  type BootSettings,
} from '@ebbrt/ebb-protocol/node';

describe('parseKernelCmdline', () => {
  test('ebbrt.* parameters become boot variables, percent-decoded; kernel parameters are ignored', () => {
    const line = 'console=ttyS0 panic=-1 ebbrt.frontend=10.0.2.2%3A4000 ebbrt.secret=a%20b%22c ebbrt.allocation-id=x-1 "ebbrt.backend=qemu" FOO=bar\n';
    expect(parseKernelCmdline(line)).toEqual({
      values: { EBBRT_FRONTEND: '10.0.2.2:4000', EBBRT_SECRET: 'a b"c', EBBRT_ALLOCATION_ID: 'x-1', EBBRT_BACKEND: 'qemu' },
      args: undefined,
    });
  });

  test('ebbrt.args is a percent-encoded JSON array of strings', () => {
    const args = ['--increments', '5', 'two words'];
    expect(parseKernelCmdline(`ebbrt.args=${encodeURIComponent(JSON.stringify(args))}`).args).toEqual(args);
    expect(() => parseKernelCmdline(`ebbrt.args=${encodeURIComponent('[1]')}`)).toThrow(/ebbrt.args/);
  });

  test('unknown ebbrt.* keys and bad percent-encoding are BootConfigErrors naming the parameter', () => {
    expect(() => parseKernelCmdline('ebbrt.frontnd=x')).toThrow(/unknown kernel command line parameter ebbrt.frontnd/);
    expect(() => parseKernelCmdline('ebbrt.secret=%E0%A4%A')).toThrow(BootConfigError);
  });
});

describe('parseBootConfig with a kernel command line', () => {
  let dir: string;
  let cmdline: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cmdline-test-'));
    cmdline = path.join(dir, 'cmdline');
    await writeFile(
      cmdline,
      'console=ttyS0 ebbrt.frontend=10.0.2.2:4000 ebbrt.secret=s3cret-s3cret ebbrt.cores=2 ebbrt.listen-host=0.0.0.0 ebbrt.listen-port=7000 ' +
        `ebbrt.advertise=127.0.0.1:45000 ebbrt.host-alias=${encodeURIComponent('127.0.0.1=10.0.2.2,localhost=10.0.2.2')} ebbrt.backend=qemu ebbrt.args=${encodeURIComponent('["a"]')}\n`,
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a VM native reads everything from it', () => {
    const config = parseBootConfig(['--app', '/app/app.js'], { EBBRT_KERNEL_CMDLINE: cmdline });
    expect(config).toMatchObject({
      frontendHost: '10.0.2.2',
      frontendPort: 4000,
      proof: { secret: 's3cret-s3cret' },
      cores: 2,
      listenHost: '0.0.0.0',
      listenPort: 7000,
      advertise: { host: '127.0.0.1', port: 45000 },
      hostAlias: { '127.0.0.1': '10.0.2.2', localhost: '10.0.2.2' },
      backend: 'qemu',
      app: '/app/app.js',
      args: ['a'],
    });
  });

  test('argv wins over the environment, which wins over the kernel command line', () => {
    const config = parseBootConfig(['--app', '/a.js', '--cores', '4', '--', 'b'], {
      EBBRT_KERNEL_CMDLINE: cmdline,
      EBBRT_CORES: '3',
      EBBRT_LISTEN_PORT: '7001',
    });
    expect(config).toMatchObject({ cores: 4, listenPort: 7001, args: ['b'] });
  });

  test('an unreadable command line file is a BootConfigError naming it', () => {
    expect(() => parseBootConfig(['--app', '/a.js'], { EBBRT_KERNEL_CMDLINE: path.join(dir, 'missing') })).toThrow(/cannot read the kernel command line/);
  });
});

describe('address settings', () => {
  const base = { EBBRT_FRONTEND: '127.0.0.1:4000', EBBRT_SECRET: 'secret-secret', EBBRT_APP: '/a.js' };

  test('defaults: any port, no advertised address, no aliases', () => {
    expect(parseBootConfig([], base)).toMatchObject({ listenPort: 0, advertise: undefined, hostAlias: {}, bootTrace: false });
  });

  test.each([
    [{ EBBRT_LISTEN_PORT: '70000' }, /listen port must be an integer in 0..65535/],
    [{ EBBRT_ADVERTISE: 'nohost' }, /advertised address must be host:port/],
    [{ EBBRT_ADVERTISE: 'h:0' }, /advertised address must be host:port with a port in 1..65535/],
    [{ EBBRT_HOST_ALIAS: '127.0.0.1' }, /host alias must be a comma-separated list of from=to/],
    [{ EBBRT_HOST_ALIAS: 'a=b=c' }, /host alias/],
    [{ EBBRT_BOOT_TRACE: 'yes' }, /boot-trace must be 1 \(print the boot timeline\) or 0, got "yes"/],
  ])('%o is a BootConfigError', (env, message) => {
    let error: unknown;
    try {
      parseBootConfig([], { ...base, ...env });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BootConfigError);
    expect((error as BootConfigError).code).toBe('BAD_CONFIG');
    expect((error as Error).message).toMatch(message);
  });
});

describe('what launchers write is what a native reads', () => {
  const settings: BootSettings = {
    frontend: '10.0.2.2:4000',
    secret: 'a secret with spaces, "quotes" and % signs',
    allocationId: 'alloc-1',
    cores: 3,
    app: '/app/app.js',
    listenHost: '0.0.0.0',
    listenPort: 7000,
    advertise: '127.0.0.1:45000',
    hostAlias: '127.0.0.1=10.0.2.2,localhost=10.0.2.2',
    services: 'forward:/dev/ttyS1',
    backend: 'qemu',
    reconnectMs: 5000,
    coreHeapMb: 64,
    bootTrace: 1,
  };
  const expected = {
    frontendHost: '10.0.2.2',
    frontendPort: 4000,
    proof: { secret: settings.secret },
    allocationId: 'alloc-1',
    cores: 3,
    app: '/app/app.js',
    listenHost: '0.0.0.0',
    listenPort: 7000,
    advertise: { host: '127.0.0.1', port: 45000 },
    hostAlias: { '127.0.0.1': '10.0.2.2', localhost: '10.0.2.2' },
    services: 'forward:/dev/ttyS1',
    backend: 'qemu',
    reconnectMs: 5000,
    coreHeapMb: 64,
    bootTrace: true,
  };

  test('bootEnv: one EBBRT_* variable per setting, unset ones left out', () => {
    const env = bootEnv({ ...settings, net: undefined });
    expect(env.EBBRT_ALLOCATION_ID).toBe('alloc-1');
    expect(env.EBBRT_CORE_HEAP_MB).toBe('64');
    expect(Object.keys(env)).toHaveLength(Object.keys(settings).length);
    expect(bootVariable('secretFile')).toBe('EBBRT_SECRET_FILE');
    expect(parseBootConfig([], env)).toMatchObject({ ...expected, args: [] });
  });

  test('bootKernelParams: one percent-encoded ebbrt.* parameter per setting, the args as JSON', async () => {
    const args = ['--flag', 'two words', 'a "quoted" one'];
    const params = bootKernelParams(settings, args);
    for (const param of params) expect(param).toMatch(/^ebbrt\.[a-z-]+=[^\s"]*$/);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cmdline-test-'));
    try {
      const cmdline = path.join(dir, 'cmdline');
      await writeFile(cmdline, `console=ttyS0 panic=-1 ${params.join(' ')}\n`);
      expect(parseBootConfig([], { EBBRT_KERNEL_CMDLINE: cmdline })).toMatchObject({ ...expected, args });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('secrets a launcher hands over out of sight', () => {
  const token = 'ab'.repeat(32);

  test('a join token on the secrets descriptor is the proof of the first JOIN; the node holds no secret', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'secrets-fd-'));
    try {
      const file = path.join(dir, 'secrets.json');
      await writeFile(file, JSON.stringify({ joinToken: token }), { mode: 0o600 });
      const fd = openSync(file, 'r');
      const config = parseBootConfig([], { EBBRT_FRONTEND: '127.0.0.1:4000', EBBRT_APP: '/a.js', EBBRT_SECRETS_FD: String(fd) });
      expect(config.proof).toEqual({ joinToken: token });
      expect(JSON.stringify(config)).not.toMatch(/secret/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a join token that is not 64 hex digits, or a non-string, is BAD_CONFIG naming the field, not echoing the value', () => {
    expect(parseBootSecrets(JSON.stringify({ joinToken: token, tlsKey: 'PEM' }), 'fd 4')).toEqual({ joinToken: token, tlsKey: 'PEM' });
    for (const bad of [{ joinToken: 'not-a-token' }, { joinToken: 42 }, { joinToken: '' }]) {
      const error = (() => {
        try {
          parseBootSecrets(JSON.stringify(bad), 'fd 4');
        } catch (e) {
          return e as Error;
        }
      })();
      expect(error).toBeInstanceOf(BootConfigError);
      expect(error?.message).toMatch(/joinToken/);
      expect(error?.message).not.toContain('not-a-token');
    }
  });
});
