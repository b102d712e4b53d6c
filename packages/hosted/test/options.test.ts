import { describe, expect, it, vi } from 'vitest';
import { fileURLToPath } from 'node:url';
import { AppLoadError, NodeAllocator, silentLogger, startHosted, type HostedNode, type HostedOptions, type LaunchSpec } from '@ebbrt/hosted';
import type { TransportServer } from '@ebbrt/ebb-protocol/internal';

/**
 * Option validation at construction: one test per
 * TypeError, each asserting that nothing was started (no listener bound, no
 * node launched) before the error.
 */

const SECRET = 'options-test-secret';

/** A transport hook that records whether startHosted got as far as listening. */
function probe() {
  const listen = vi.fn(async (): Promise<TransportServer> => ({ address: { host: 'probe', port: 1 }, close: async () => undefined }));
  const connect = vi.fn(async () => {
    throw new Error('unused');
  });
  return { listen, connect, transport: { listen, connect } };
}

async function rejection(options: unknown): Promise<{ error: unknown; listened: boolean }> {
  const p = probe();
  const withProbe = options !== null && typeof options === 'object' ? { logger: silentLogger, ...options, transport: p.transport } : options;
  const error = await startHosted(withProbe as HostedOptions).then(
    async (hosted) => {
      await hosted.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  return { error, listened: p.listen.mock.calls.length > 0 };
}

describe('startHosted validation', () => {
  it('rejects options that are not an object', async () => {
    for (const options of [null, undefined, 'secret']) {
      const { error } = await rejection(options);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/options must be an object/);
    }
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['shorter than 8 characters', 'short'],
    ['not a string', 12345678],
  ])('rejects a secret that is %s', async (_label, secret) => {
    const { error, listened } = await rejection({ secret });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.secret/);
    expect(listened).toBe(false);
  });

  it.each([[''], [42]])('rejects host %j', async (host) => {
    const { error, listened } = await rejection({ secret: SECRET, host });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.host/);
    expect(listened).toBe(false);
  });

  it.each([[-1], [65536], [80.5], ['8080'], [Number.NaN]])('rejects port %j', async (port) => {
    const { error, listened } = await rejection({ secret: SECRET, port });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.port/);
    expect(listened).toBe(false);
  });

  it.each([[0], [-250], [2.5], ['250'], [Number.POSITIVE_INFINITY]])('rejects heartbeatMs %j', async (heartbeatMs) => {
    const { error, listened } = await rejection({ secret: SECRET, heartbeatMs });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.heartbeatMs/);
    expect(listened).toBe(false);
  });

  it.each([[0], [-1], [1.5]])('rejects failureTimeoutMs %j', async (failureTimeoutMs) => {
    const { error } = await rejection({ secret: SECRET, failureTimeoutMs });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.failureTimeoutMs must be a positive integer/);
  });

  it.each([[0], [-1], [0.5]])('rejects callTimeoutMs %j', async (callTimeoutMs) => {
    const { error } = await rejection({ secret: SECRET, callTimeoutMs });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.callTimeoutMs/);
  });

  it.each([
    ['equal to heartbeatMs', { heartbeatMs: 500, failureTimeoutMs: 500 }],
    ['below heartbeatMs', { heartbeatMs: 500, failureTimeoutMs: 400 }],
    ['below the default heartbeatMs (100)', { failureTimeoutMs: 80 }],
    ['the default (2000) with a larger heartbeatMs', { heartbeatMs: 3000 }],
  ])('rejects failureTimeoutMs %s', async (_label, timing) => {
    const { error, listened } = await rejection({ secret: SECRET, ...timing });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/failureTimeoutMs must be larger than options\.heartbeatMs/);
    expect(listened).toBe(false);
  });

  it.each([
    ['not above heartbeatMs', { heartbeatMs: 100, suspectAfterMs: 100 }],
    ['not below failureTimeoutMs', { failureTimeoutMs: 1000, suspectAfterMs: 1000 }],
    ['a fraction', { suspectAfterMs: 300.5 }],
  ])('rejects suspectAfterMs %s', async (_label, timing) => {
    const { error, listened } = await rejection({ secret: SECRET, ...timing });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/suspectAfterMs must be/);
    expect(listened).toBe(false);
  });

  it('accepts valid options and listens once (the probe proves the cases above stopped early)', async () => {
    const p = probe();
    const hosted = await startHosted({ secret: SECRET, heartbeatMs: 100, failureTimeoutMs: 300, logger: silentLogger, transport: p.transport });
    try {
      expect(p.listen).toHaveBeenCalledTimes(1);
      expect(hosted.address).toBe('probe:1');
      expect(hosted.secret).toBe(SECRET);
      expect(hosted.cluster).toBe('ebbrt');
    } finally {
      await hosted.close();
    }
  });
});

describe('NodeAllocator.allocateNode validation', () => {
  /** An allocator whose `process` backend is a spy: a launch would be recorded, never spawned. */
  function allocator() {
    const hosted = {
      address: 'frontend:1',
      secret: SECRET,
      mintJoinToken: (allocationId: string) => `token-of-${allocationId}`,
      revokeJoinToken: () => undefined,
    } as unknown as HostedNode;
    const alloc = new NodeAllocator(hosted, '/nonexistent/boot.js');
    const launch = vi.fn(async (_spec: LaunchSpec) => {
      throw new Error('launch reached');
    });
    alloc.registerBackend({ name: 'process', launch });
    return { alloc, launch };
  }

  it.each([[0], [-1], [1.5], [257], ['2'], [Number.NaN]])('rejects cores %j before launching anything', async (cores) => {
    const { alloc, launch } = allocator();
    const error = await alloc.allocateNode('app.js', { cores: cores as number }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.cores/);
    expect(launch).not.toHaveBeenCalled();
  });

  it.each([['qemu-typo'], [''], ['PROCESS']])('rejects backend %j (naming the known backends)', async (backend) => {
    const { alloc, launch } = allocator();
    const error = await alloc.allocateNode('app.js', { backend }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.backend must be one of 'process'/);
    expect(launch).not.toHaveBeenCalled();
  });

  it.each([[''], [undefined], [42]])('rejects app %j', async (app) => {
    const { alloc, launch } = allocator();
    const error = await alloc.allocateNode(app as string).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/allocateNode\(app\)/);
    expect(launch).not.toHaveBeenCalled();
  });

  it.each([[0], [-5], [1.5]])('rejects joinTimeoutMs %j', async (joinTimeoutMs) => {
    const { alloc, launch } = allocator();
    const error = await alloc.allocateNode('app.js', { joinTimeoutMs }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.joinTimeoutMs/);
    expect(launch).not.toHaveBeenCalled();
  });

  it.each([[32], [100.5]])('rejects memoryMiB %j', async (memoryMiB) => {
    const { alloc, launch } = allocator();
    const error = await alloc.allocateNode('app.js', { memoryMiB }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/options\.memoryMiB/);
    expect(launch).not.toHaveBeenCalled();
  });

  it('a missing native module is an AppLoadError naming it, before launching anything', async () => {
    const { alloc, launch } = allocator();
    for (const app of ['no-such-native.js', 'file:///no/such/native.js', new URL('file:///no/such/native.js')]) {
      const error = await alloc.allocateNode(app).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AppLoadError);
      expect(error).toMatchObject({ code: 'APP_LOAD_FAILED' });
      expect((error as Error).message).toMatch(/native module \/\S*no-such-native\.js does not exist|native module \/no\/such\/native\.js does not exist/);
    }
    expect(launch).not.toHaveBeenCalled();
  });

  it('valid options reach the backend with the frontend, a join token of its allocation (never the secret) and an allocation id; a file URL becomes its path', async () => {
    const { alloc, launch } = allocator();
    await expect(alloc.allocateNode(new URL(import.meta.url), { cores: 4, env: { A: '1' } })).rejects.toThrow('launch reached');
    expect(launch).toHaveBeenCalledTimes(1);
    const spec = launch.mock.calls[0][0];
    expect(spec).toMatchObject({ cores: 4, frontend: 'frontend:1', env: { A: '1' }, args: [], stdio: 'inherit' });
    expect(spec.app).toBe(fileURLToPath(import.meta.url));
    expect(spec.allocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(spec.joinToken).toBe(`token-of-${spec.allocationId}`);
    expect(JSON.stringify(spec)).not.toContain(SECRET);
  });

  it.each([[0], [-1], [2.5]])('allocatePool rejects n = %j', async (n) => {
    const { alloc, launch } = allocator();
    await expect(alloc.allocatePool(n, 'app.js')).rejects.toBeInstanceOf(TypeError);
    expect(launch).not.toHaveBeenCalled();
  });
});
