/**
 * Node services (shared.ts), the parts without sockets: the broker hands out
 * one SharedArrayBuffer per name and one binding core per listening name, and
 * a core's services validate what apps ask for. Cores really accepting on one
 * socket is covered end to end by test/memcached.test.ts.
 */
import { describe, expect, test } from 'vitest';
import type { EbbRuntime } from '@ebbrt/ebb-protocol';
import { CoreServices, nodeServices, NodeServiceError, ServiceBroker, type ServiceReply } from '../src/shared.js';

describe('ServiceBroker', () => {
  test('one SharedArrayBuffer per name, the same memory for every asker', async () => {
    const broker = new ServiceBroker();
    const a = (await broker.handle({ op: 'memory', name: 'cache', bytes: 64 })) as { memory: SharedArrayBuffer };
    const b = (await broker.handle({ op: 'memory', name: 'cache', bytes: 64 })) as { memory: SharedArrayBuffer };
    expect(a.memory).toBe(b.memory);
    const other = (await broker.handle({ op: 'memory', name: 'other', bytes: 64 })) as { memory: SharedArrayBuffer };
    expect(other.memory).not.toBe(a.memory);
    expect(await broker.handle({ op: 'memory', name: 'cache', bytes: 128 })).toEqual({
      error: { code: 'SHARED_MEMORY_MISMATCH', message: expect.stringMatching(/64 bytes, not 128/) },
    });
  });

  test('the first core to ask binds; the others wait for its descriptor', async () => {
    const broker = new ServiceBroker();
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 0 })).toEqual({ bind: true, host: '127.0.0.1' });
    const waiting = Promise.resolve(broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 0 }));
    expect(await broker.handle({ op: 'bound', name: 'svc', host: '127.0.0.1', port: 4321, asked: 0, fd: 17 })).toEqual({ address: '127.0.0.1:4321' });
    expect(await waiting).toEqual({ fd: 17, host: '127.0.0.1', port: 4321, address: '127.0.0.1:4321' });
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 0 })).toEqual({
      fd: 17,
      host: '127.0.0.1',
      port: 4321,
      address: '127.0.0.1:4321',
    });
  });

  test('a VM native binds its interfaces for a loopback request and hands out the address its exposure publishes', async () => {
    const published: [string, number, number][] = [];
    const broker = new ServiceBroker({
      bindHost: (host) => (host === '127.0.0.1' ? '0.0.0.0' : host),
      publish: async (host, port, asked) => {
        published.push([host, port, asked]);
        return `127.0.0.1:${port + 1000}`;
      },
      withdraw: async () => undefined,
    });
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 })).toEqual({ bind: true, host: '0.0.0.0' });
    const waiting = Promise.resolve(broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 }));
    expect(await broker.handle({ op: 'bound', name: 'svc', host: '0.0.0.0', port: 80, asked: 80, fd: 9 })).toEqual({ address: '127.0.0.1:1080' });
    expect(await waiting).toMatchObject({ fd: 9, address: '127.0.0.1:1080' });
    expect(published).toEqual([['0.0.0.0', 80, 80]]);
  });

  test('a listener the exposure cannot publish fails its binder and waiters with NOT_EXPOSED, and the name is free again', async () => {
    const broker = new ServiceBroker({
      bindHost: (host) => host,
      publish: () => Promise.reject(new Error('no free host port')),
      withdraw: async () => undefined,
    });
    await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 });
    const waiting = Promise.resolve(broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 }));
    expect(await broker.handle({ op: 'bound', name: 'svc', host: '127.0.0.1', port: 80, asked: 80, fd: 9 })).toEqual({
      error: { code: 'NOT_EXPOSED', message: expect.stringMatching(/no free host port/) },
    });
    expect(await waiting).toMatchObject({ error: { code: 'NOT_EXPOSED' } });
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 })).toEqual({ bind: true, host: '127.0.0.1' });
  });

  test('services() lists the bound listeners; the last core to close one withdraws it, and its name is free again', async () => {
    const withdrawn: number[] = [];
    const broker = new ServiceBroker({
      bindHost: (host) => host,
      publish: async (_host, port) => `127.0.0.1:${port + 1000}`,
      withdraw: async (port) => void withdrawn.push(port),
    });
    await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 });
    const second = Promise.resolve(broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 }));
    await broker.handle({ op: 'bound', name: 'svc', host: '127.0.0.1', port: 80, asked: 80, fd: 9 });
    await second;
    await broker.handle({ op: 'listen', name: 'other', host: '127.0.0.1', port: 81 });
    expect(broker.services()).toEqual([{ name: 'svc', address: '127.0.0.1:1080' }]);
    expect(await broker.handle({ op: 'closed', name: 'svc' })).toEqual({ ok: true });
    expect(withdrawn).toEqual([]);
    expect(broker.services()).toHaveLength(1);
    await broker.handle({ op: 'closed', name: 'svc' });
    expect(withdrawn).toEqual([80]);
    expect(broker.services()).toEqual([]);
    // A close for a name that is not bound (or no more) changes nothing.
    await broker.handle({ op: 'closed', name: 'svc' });
    expect(withdrawn).toEqual([80]);
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 })).toEqual({ bind: true, host: '127.0.0.1' });
  });

  test("a failed bind fails the waiting cores with the binder's error, and the next asker binds again", async () => {
    const broker = new ServiceBroker();
    await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 });
    const waiting = Promise.resolve(broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 }));
    await broker.handle({ op: 'bindFailed', name: 'svc', code: 'ADDRESS_IN_USE', message: 'in use' });
    expect(await waiting).toEqual({ error: { code: 'ADDRESS_IN_USE', message: 'in use' } });
    expect(await broker.handle({ op: 'listen', name: 'svc', host: '127.0.0.1', port: 80 })).toEqual({ bind: true, host: '127.0.0.1' });
  });
});

describe('CoreServices', () => {
  const runtime = () => ({ nodeId: 2, core: 0, cores: 2 }) as unknown as EbbRuntime;

  test("nodeServices(rt) finds a core's services, and refuses a runtime that has none", async () => {
    const rt = runtime();
    expect(() => nodeServices(rt)).toThrow(NodeServiceError);
    const broker = new ServiceBroker();
    const services = new CoreServices(rt, (request) => broker.handle(request) as ServiceReply);
    expect(nodeServices(rt)).toBe(services);
    expect(services.cores).toBe(2);
    const memory = await services.sharedMemory('m', 16);
    expect(memory).toBeInstanceOf(SharedArrayBuffer);
    expect(await services.sharedMemory('m', 16)).toBe(memory);
    await expect(services.sharedMemory('m', 32)).rejects.toMatchObject({ code: 'SHARED_MEMORY_MISMATCH' });
  });

  test.each<[string, (s: CoreServices) => Promise<unknown>]>([
    ['an empty name', (s) => s.sharedMemory('', 16)],
    ['a size of 0', (s) => s.sharedMemory('m', 0)],
    ['a port out of range', (s) => s.listenShared({ port: 70000 }, () => undefined)],
    ['an empty host', (s) => s.listenShared({ port: 0, host: '' }, () => undefined)],
    ['no connection handler', (s) => s.listenShared({ port: 0 }, undefined as never)],
  ])('%s is a BAD_SERVICE_REQUEST', async (_name, call) => {
    const services = new CoreServices(runtime(), () => ({ ok: true }));
    await expect(call(services)).rejects.toMatchObject({ code: 'BAD_SERVICE_REQUEST' });
  });

  test('stop hooks run once, in order, and a failing hook does not stop the others', async () => {
    const services = new CoreServices(runtime(), () => ({ ok: true }));
    const ran: string[] = [];
    services.onStop(() => void ran.push('a'));
    services.onStop(() => {
      throw new Error('hook failed on purpose');
    });
    services.onStop(async () => void ran.push('c'));
    const error = console.error;
    console.error = () => undefined;
    try {
      await services.stop();
      await services.stop();
    } finally {
      console.error = error;
    }
    expect(ran).toEqual(['a', 'c']);
    await expect(services.listenShared({ port: 0 }, () => undefined)).rejects.toMatchObject({ code: 'BAD_SERVICE_REQUEST' });
  });
});
