import { describe, expect, it, vi } from 'vitest';
import {
  ANY_CORE,
  decodeValue,
  defineEbb,
  EbbRuntime,
  encodeValue,
  HOSTED_NODE_ID,
  IdAllocator,
  idSpaceOf,
  MemoryIdMapStore,
  MemoryLocalIdMap,
  Messenger,
  NodeUnavailableError,
  staticIdFor,
  UnknownEbbError,
  UnknownMethodError,
  type CasResult,
  type CoreChannel,
  type CoreLinks,
  type EbbId,
  type GlobalIdMap,
  type MessageSource,
  type RepContext,
} from '@ebbrt/ebb-protocol/internal';

/**
 * EbbRuntime without a network: several runtimes in one thread stand in for
 * the cores of a node (a fake CoreLinks routes `links.call(core, …)` to that
 * runtime's `invoke`), a tiny in-test GlobalIdMap, and Messengers that never
 * connect. Where a test needs a second node, a loopback Messenger routes calls
 * to that node's runtimes directly.
 */

/** The in-memory authority, counting requests. */
class FakeIdMap extends MemoryIdMapStore {
  readonly requests = { get: 0, set: 0, cas: 0 };

  override async get(id: EbbId) {
    this.requests.get++;
    return super.get(id);
  }
  override async set(id: EbbId, value: Buffer) {
    this.requests.set++;
    return super.set(id, value);
  }
  override async cas(id: EbbId, expectedVersion: number, value: Buffer): Promise<CasResult> {
    this.requests.cas++;
    return super.cas(id, expectedVersion, value);
  }
  record(id: EbbId): unknown {
    const entry = this.peek(id);
    return entry && decodeValue(entry.value);
  }
}

/** A messenger with no network: every connect fails. */
const isolatedMessenger = (nodeId: number, core: number, cores?: CoreChannel) =>
  new Messenger({ nodeId, core, keys: 'runtime-test-secret', connect: () => Promise.reject(new NodeUnavailableError('no network in this test')), cores });

/** Nodes of a fake cluster, for the loopback messenger. */
type Cluster = Map<number, EbbRuntime[]>;

/** A messenger that "sends" calls and messages straight to another node's runtimes. */
class LoopbackMessenger extends Messenger {
  readonly #cluster: Cluster;
  constructor(nodeId: number, core: number, cluster: Cluster, cores?: CoreChannel) {
    super({ nodeId, core, keys: 'runtime-test-secret', connect: () => Promise.reject(new NodeUnavailableError('loopback only')), cores });
    this.#cluster = cluster;
  }
  override async call(nodeId: number, core: number, ebbId: number, code: number, args: readonly unknown[]): Promise<unknown> {
    const node = this.#cluster.get(nodeId);
    if (!node) throw new NodeUnavailableError(`node ${nodeId} is not in the test cluster`);
    return node[core === ANY_CORE ? 0 : core].invoke(ebbId, code, args);
  }
  override async send(nodeId: number, core: number, ebbId: number, _code: number, message: unknown): Promise<void> {
    const node = this.#cluster.get(nodeId);
    if (!node) throw new NodeUnavailableError(`node ${nodeId} is not in the test cluster`);
    node[core === ANY_CORE ? 0 : core].messenger.deliverFromCore(ebbId, encodeValue(message), { nodeId: this.nodeId, core: this.core });
  }
}

interface NodeOptions {
  nodeId?: number;
  cores?: number;
  idMap?: GlobalIdMap;
  /** Route calls to other nodes through this cluster (else remote calls fail: no network). */
  cluster?: Cluster;
  onMessageError?: (error: unknown, ebbId: EbbId) => void;
}

/** One node: `cores` runtimes sharing CoreLinks, the id map and an id space. */
function node(options: NodeOptions = {}) {
  const nodeId = options.nodeId ?? HOSTED_NODE_ID;
  const cores = options.cores ?? 1;
  const idMap = options.idMap ?? new FakeIdMap();
  const runtimes: EbbRuntime[] = [];
  const ids = IdAllocator.global(nodeId);
  const linkCalls: { from?: number; core: number; ebbId: EbbId; code: number }[] = [];
  // Bytes between the cores, as the MessagePorts of a native carry them.
  const channel: CoreChannel = {
    cores,
    call: (core, ebbId, code, payload, _timeoutMs, decode) => {
      linkCalls.push({ core, ebbId, code });
      const bytes = Buffer.from(payload);
      // Asynchronous, as a MessagePort hand-over is.
      return new Promise((resolve, reject) =>
        queueMicrotask(() =>
          runtimes[core].messenger.serveFromCore(ebbId, code, bytes, (ok, reply) => {
            try {
              resolve(decode(ok, reply));
            } catch (error) {
              reject(error);
            }
          }),
        ),
      );
    },
    message: (core, ebbId, payload, from) => {
      const bytes = Buffer.from(payload);
      queueMicrotask(() => runtimes[core].messenger.deliverFromCore(ebbId, bytes, from));
    },
  };
  const links: CoreLinks = {
    allocateId: vi.fn(async () => ids.allocate()),
    localIdMap: new MemoryLocalIdMap(),
  };
  for (let core = 0; core < cores; core++) {
    const messenger = options.cluster ? new LoopbackMessenger(nodeId, core, options.cluster, channel) : isolatedMessenger(nodeId, core, channel);
    runtimes.push(
      new EbbRuntime({ nodeId, core, address: `test:${nodeId}`, messenger, idMap, links, callTimeoutMs: 1000, onMessageError: options.onMessageError }),
    );
  }
  options.cluster?.set(nodeId, runtimes);
  return { nodeId, runtimes, links, linkCalls, idMap };
}

/** Runs `fn` so sync throws and rejections both become a rejected promise. */
const settle = (fn: () => unknown) => Promise.resolve().then(fn);

// ---- Ebb types under test (names unique to this file) ----

interface Counter {
  add(n: number): number;
  get(): number;
  where(): string;
}

class CounterRep implements Counter {
  total = 0;
  constructor(readonly ctx: RepContext) {}
  add(n: number) {
    return (this.total += n);
  }
  get() {
    return this.total;
  }
  where() {
    return `${this.ctx.runtime.nodeId}/${this.ctx.runtime.core}`;
  }
}

/** Builds a counter definition of `policy` and records which (node, core) created reps. */
function counterType(name: string, policy: 'shared' | 'multicore' | 'home', extra: { home?: 'hosted' | 'first' } = {}) {
  const created: string[] = [];
  const definition = defineEbb<Counter>({
    name,
    policy,
    ...extra,
    methods: ['add', 'get', 'where'],
    create: (ctx) => {
      created.push(`${ctx.runtime.nodeId}/${ctx.runtime.core}`);
      return new CounterRep(ctx);
    },
  });
  return { definition, created };
}

describe('translation table', () => {
  it("a ref's first call faults once; later calls hit the cached rep", () => {
    const { definition, created } = counterType('rt.Table', 'multicore');
    const [rt] = node().runtimes;
    const ref = rt.ref(definition);
    expect(ref.$id).toBe(definition.staticId);
    expect(rt.lookup(ref.$id)).toBeUndefined();
    expect(rt.stats.faults).toBe(0);
    expect(ref.add(2)).toBe(2);
    expect(rt.stats.faults).toBe(1);
    const rep = rt.lookup(ref.$id);
    expect(rep).toBeInstanceOf(CounterRep);
    for (let i = 0; i < 100; i++) ref.add(1);
    expect(ref.get()).toBe(102);
    expect(rt.stats.faults).toBe(1);
    expect(created).toEqual(['1/0']);
    expect(rt.lookup(ref.$id)).toBe(rep);
    expect(rt.localRep(ref)).toBe(rep);
  });

  it('refs are cached per core, $id is read-only; a second ref to the same id shares the rep', () => {
    const { definition } = counterType('rt.Cached', 'multicore');
    const [rt] = node().runtimes;
    const a = rt.ref(definition);
    expect(rt.ref(definition)).toBe(a);
    expect(Object.getOwnPropertyDescriptor(a, '$id')).toMatchObject({ value: definition.staticId, writable: false });
    a.add(5);
    expect(rt.ref(definition).get()).toBe(5);
  });

  it('a ref calls methods whatever their names (not identifiers, quotes, backslashes), each on its own type', () => {
    const names = ['get-count', 'say "hi"', 'back\\slash', 'constructor'] as const;
    const rep = Object.fromEntries(names.map((name) => [name, (n: number) => `${name}:${n}`]));
    const definition = defineEbb<Record<string, (n: number) => string>>({
      name: 'rt.OddNames',
      policy: 'multicore',
      methods: [...names],
      create: () => ({ ...rep }),
    });
    const other = defineEbb<Record<string, (n: number) => string>>({
      name: 'rt.OddNames2',
      policy: 'multicore',
      methods: ['get-count'],
      create: () => ({ 'get-count': (n: number) => `other:${n}` }),
    });
    const [rt] = node().runtimes;
    const ref = rt.ref(definition);
    for (const name of names) expect(ref[name](1)).toBe(`${name}:1`);
    const refs = [ref, rt.ref(other)];
    expect(refs.map((r, i) => r['get-count'](i))).toEqual(['get-count:0', 'other:1']);
  });

  it('localRep faults the rep in; evict makes the next touch fault again', () => {
    const { definition, created } = counterType('rt.Evict', 'multicore');
    const [rt] = node().runtimes;
    const ref = rt.ref(definition);
    const rep = rt.localRep(ref);
    expect(rep).toBeInstanceOf(CounterRep);
    expect(rt.stats.faults).toBe(1);
    rt.evict(ref.$id);
    expect(rt.lookup(ref.$id)).toBeUndefined();
    expect(ref.get()).toBe(0);
    expect(rt.stats.faults).toBe(2);
    expect(created).toHaveLength(2);
  });

  it('global ids (>= 0x10000) use the same table semantics', async () => {
    const { definition } = counterType('rt.GlobalTable', 'multicore');
    const [rt] = node().runtimes;
    const ref = await rt.createEbb(definition);
    expect(ref.$id).toBeGreaterThanOrEqual(0x10000);
    expect(ref.add(1)).toBe(1);
    expect(ref.add(1)).toBe(2);
    expect(rt.stats.faults).toBe(1);
    expect(rt.lookup(ref.$id)).toBeInstanceOf(CounterRep);
  });

  it('an id bound to one type cannot be used as another (UnknownEbbError)', async () => {
    const { definition: a } = counterType('rt.BoundA', 'multicore');
    const b = defineEbb<{ ping(): string }>({ name: 'rt.BoundB', policy: 'multicore', methods: ['ping'], create: () => ({ ping: () => 'pong' }) });
    const [rt] = node().runtimes;
    const ref = await rt.createEbb(a);
    expect(() => rt.ref(b, ref.$id)).toThrow(UnknownEbbError);
    expect(ref.add(1)).toBe(1);
  });

  it('rejects ids that are not u32', () => {
    const { definition } = counterType('rt.BadId', 'multicore');
    const [rt] = node().runtimes;
    expect(() => rt.ref(definition, -1)).toThrow(TypeError);
    expect(() => rt.ref(definition, 2 ** 32)).toThrow(TypeError);
    expect(() => rt.ref(definition, 1.5)).toThrow(TypeError);
  });

  it('each core has its own table', () => {
    const { definition } = counterType('rt.PerCore', 'multicore');
    const [c0, c1] = node({ cores: 2 }).runtimes;
    c0.ref(definition).add(1);
    expect(c0.lookup(definition.staticId)).toBeDefined();
    expect(c1.lookup(definition.staticId)).toBeUndefined();
    expect(c1.stats.faults).toBe(0);
  });
});

describe('multicore policy', () => {
  it('one rep per core, created lazily on first touch', () => {
    const { definition, created } = counterType('rt.Multi', 'multicore');
    const [c0, c1, c2] = node({ cores: 3 }).runtimes;
    expect(created).toEqual([]);
    c0.ref(definition).add(2);
    c2.ref(definition).add(5);
    c2.ref(definition).add(5);
    expect(created).toEqual(['1/0', '1/2']);
    expect(c1.lookup(definition.staticId)).toBeUndefined();
    expect(c0.localRep(c0.ref(definition))).not.toBe(c2.localRep(c2.ref(definition)));
    expect(c0.ref(definition).get()).toBe(2);
    expect(c2.ref(definition).get()).toBe(10);
  });

  it('eachCore enumerates every core (faulting the untouched ones) and the results sum', async () => {
    const { definition, created } = counterType('rt.MultiSum', 'multicore');
    const { runtimes, linkCalls } = node({ cores: 4 });
    runtimes[0].ref(definition).add(1);
    runtimes[1].ref(definition).add(10);
    runtimes[3].ref(definition).add(100);
    const totals = await runtimes[0].eachCore<Counter, number>(definition, 'get');
    expect(totals).toEqual([1, 10, 0, 100]);
    expect(totals.reduce((a, b) => a + b, 0)).toBe(111);
    expect(created.sort()).toEqual(['1/0', '1/1', '1/2', '1/3']);
    expect(await runtimes[2].eachCore(runtimes[2].ref(definition), 'where')).toEqual(['1/0', '1/1', '1/2', '1/3']);
    // Core 0's own entry ran in place; the others went over the links.
    expect(linkCalls.filter((c) => c.core === 0 && c.code === definition.codes.get)).toHaveLength(0);
    expect(runtimes[0].stats.crossCoreCalls).toBe(3);
  });

  it('eachCore with a method the type does not have rejects with UnknownMethodError', async () => {
    const { definition } = counterType('rt.MultiBad', 'multicore');
    const [rt] = node({ cores: 2 }).runtimes;
    await expect(rt.eachCore(definition, 'reset')).rejects.toBeInstanceOf(UnknownMethodError);
  });

  it('onCore runs a method on another core of the node', async () => {
    const { definition } = counterType('rt.OnCore', 'multicore');
    const [c0, c1] = node({ cores: 2 }).runtimes;
    await expect(c0.onCore(definition, 1).add(3)).resolves.toBe(3);
    expect(c1.ref(definition).get()).toBe(3);
    expect(c0.lookup(definition.staticId)).toBeUndefined();
    expect(() => c0.onCore(definition, 2)).toThrow(RangeError);
  });
});

describe('shared policy', () => {
  it('core 0 holds the one rep; other cores get a proxy that forwards to core 0', async () => {
    const { definition, created } = counterType('rt.Shared', 'shared');
    const { runtimes, linkCalls } = node({ cores: 3 });
    const [c0, c1, c2] = runtimes;
    // Core 1 touches first: it still does not build a rep of its own.
    await expect(c1.ref(definition).add(1)).resolves.toBe(1);
    await expect(c2.ref(definition).add(2)).resolves.toBe(3);
    expect(c0.ref(definition).add(4)).toBe(7);
    expect(created).toEqual(['1/0']);
    const rep = c0.lookup(definition.staticId);
    expect(rep).toBeInstanceOf(CounterRep);
    expect(c1.lookup(definition.staticId)).toBeDefined();
    expect(c1.lookup(definition.staticId)).not.toBeInstanceOf(CounterRep);
    expect(c1.stats.crossCoreCalls).toBe(1);
    expect(linkCalls.every((c) => c.core === 0)).toBe(true);
    await expect(c2.ref(definition).where()).resolves.toBe('1/0');
  });
});

describe('home policy', () => {
  it('on the owner node, core 0 creates and other cores proxy to it', async () => {
    const { definition, created } = counterType('rt.HomeHosted', 'home');
    const [c0, c1] = node({ nodeId: HOSTED_NODE_ID, cores: 2 }).runtimes;
    await expect(c1.ref(definition).add(2)).resolves.toBe(2);
    expect(c0.ref(definition).get()).toBe(2);
    expect(created).toEqual([`${HOSTED_NODE_ID}/0`]);
  });

  it('a non-owner node gets a forwarding proxy (and never calls create)', async () => {
    const { definition, created } = counterType('rt.HomeProxy', 'home');
    const [rt] = node({ nodeId: 2 }).runtimes;
    const ref = rt.ref(definition);
    // No network in this test: the proxy tries node 1 and fails with a runtime error, not a local rep.
    const error = await settle(() => ref.add(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NodeUnavailableError);
    expect(rt.stats.remoteCalls).toBe(1);
    expect(created).toEqual([]);
    expect(rt.lookup(definition.staticId)).not.toBeInstanceOf(CounterRep);
  });

  it("the non-owner's proxy reaches the owner's rep", async () => {
    const { definition, created } = counterType('rt.HomeForward', 'home');
    const cluster: Cluster = new Map();
    const idMap = new FakeIdMap();
    const hosted = node({ nodeId: HOSTED_NODE_ID, cluster, idMap }).runtimes[0];
    const [n2c0, n2c1] = node({ nodeId: 2, cores: 2, cluster, idMap }).runtimes;
    await expect(n2c0.ref(definition).add(5)).resolves.toBe(5);
    await expect(n2c1.ref(definition).add(5)).resolves.toBe(10);
    await expect(n2c1.ref(definition).where()).resolves.toBe(`${HOSTED_NODE_ID}/0`);
    expect(hosted.ref(definition).get()).toBe(10);
    expect(created).toEqual([`${HOSTED_NODE_ID}/0`]);
    // Node 2's cores each went to node 1 directly, not through core 0.
    expect(n2c1.stats.remoteCalls).toBe(2);
  });

  it('a dynamic home Ebb is owned by the node recorded in the GlobalIdMap', async () => {
    const { definition, created } = counterType('rt.HomeDynamic', 'home');
    const cluster: Cluster = new Map();
    const idMap = new FakeIdMap();
    const hosted = node({ nodeId: HOSTED_NODE_ID, cluster, idMap }).runtimes[0];
    const native = node({ nodeId: 2, cluster, idMap }).runtimes[0];
    const ref = await native.createEbb(definition);
    expect(idMap.record(ref.$id)).toEqual({ type: 'rt.HomeDynamic', home: 2 });
    // The frontend has never seen this id: it learns the owner from the map (peek) and proxies.
    await expect(hosted.ref(definition, ref.$id).add(3)).resolves.toBe(3);
    expect(native.ref(definition, ref.$id).get()).toBe(3);
    expect(created).toEqual(['2/0']);
  });

  it("home: 'first' — the first node to touch the Ebb claims it with a CAS", async () => {
    const { definition, created } = counterType('rt.HomeFirst', 'home', { home: 'first' });
    const cluster: Cluster = new Map();
    const idMap = new FakeIdMap();
    const hosted = node({ nodeId: HOSTED_NODE_ID, cluster, idMap }).runtimes[0];
    const native = node({ nodeId: 3, cluster, idMap }).runtimes[0];
    await expect(settle(() => native.ref(definition).add(1))).resolves.toBe(1);
    expect(idMap.requests.cas).toBe(1);
    expect(idMap.record(definition.staticId)).toEqual({ type: 'rt.HomeFirst', home: 3 });
    await expect(settle(() => hosted.ref(definition).add(1))).resolves.toBe(2);
    expect(created).toEqual(['3/0']);
    // Once resolved, the pending stand-in on node 3 was replaced by the real rep.
    expect(native.lookup(definition.staticId)).toBeInstanceOf(CounterRep);
  });
});

describe('custom policy', () => {
  it('a synchronous fault handler decides the rep (here: a partition per core)', () => {
    const fault = vi.fn((ctx: RepContext) => ({ part: () => `part-${ctx.runtime.core}-of-${ctx.runtime.cores}` }));
    const definition = defineEbb<{ part(): string }>({ name: 'rt.CustomSync', policy: 'custom', methods: ['part'], fault });
    const [c0, c1] = node({ cores: 2 }).runtimes;
    expect(c0.ref(definition).part()).toBe('part-0-of-2');
    expect(c1.ref(definition).part()).toBe('part-1-of-2');
    expect(c0.ref(definition).part()).toBe('part-0-of-2');
    expect(fault).toHaveBeenCalledTimes(2);
    expect(fault.mock.calls[0][0].id).toBe(definition.staticId);
  });

  it('an asynchronous fault handler: calls wait for it, then the rep replaces the stand-in', async () => {
    let resolveRep!: (rep: { echo(x: string): string }) => void;
    const fault = vi.fn(() => new Promise<{ echo(x: string): string }>((resolve) => (resolveRep = resolve)));
    const definition = defineEbb<{ echo(x: string): string }>({ name: 'rt.CustomAsync', policy: 'custom', methods: ['echo'], fault });
    const [rt] = node().runtimes;
    const ref = rt.ref(definition);
    const early = [settle(() => ref.echo('a')), settle(() => ref.echo('b'))];
    await new Promise((r) => setTimeout(r, 5));
    const standIn = rt.lookup(definition.staticId);
    expect(standIn).toBeDefined();
    const real = { echo: (x: string) => `echo:${x}` };
    resolveRep(real);
    await expect(Promise.all(early)).resolves.toEqual(['echo:a', 'echo:b']);
    expect(rt.lookup(definition.staticId)).toBe(real);
    expect(ref.echo('c')).toBe('echo:c');
    expect(fault).toHaveBeenCalledTimes(1);
    expect(rt.stats.faults).toBe(1);
  });

  it('a failing asynchronous fault rejects the waiting calls and the next touch faults again', async () => {
    let attempt = 0;
    const definition = defineEbb<{ n(): number }>({
      name: 'rt.CustomRetry',
      policy: 'custom',
      methods: ['n'],
      fault: async () => {
        attempt++;
        if (attempt === 1) throw new NodeUnavailableError('owner unreachable');
        return { n: () => attempt };
      },
    });
    const [rt] = node().runtimes;
    const ref = rt.ref(definition);
    await expect(settle(() => ref.n())).rejects.toBeInstanceOf(NodeUnavailableError);
    await new Promise((r) => setTimeout(r, 0));
    expect(rt.lookup(definition.staticId)).toBeUndefined();
    await expect(settle(() => ref.n())).resolves.toBe(2);
    expect(rt.stats.faults).toBe(2);
  });

  it('a throwing synchronous fault handler throws at the caller and installs nothing', () => {
    const definition = defineEbb<{ n(): number }>({
      name: 'rt.CustomThrows',
      policy: 'custom',
      methods: ['n'],
      fault: () => {
        throw new RangeError('no partition for this core');
      },
    });
    const [rt] = node().runtimes;
    expect(() => rt.ref(definition).n()).toThrow(RangeError);
    expect(rt.lookup(definition.staticId)).toBeUndefined();
  });
});

describe('invoke (what arrives from the network or another core)', () => {
  it('runs the method by code, remote-faulting a rep this core never touched', async () => {
    const { definition, created } = counterType('rt.Invoke', 'multicore');
    const [rt] = node().runtimes;
    await expect(settle(() => rt.invoke(definition.staticId, definition.codes.add, [4]))).resolves.toBe(4);
    expect(created).toEqual(['1/0']);
    expect(rt.invoke(definition.staticId, definition.codes.get, [])).toBe(4);
  });

  it('an unknown method code is an UnknownMethodError (rep present or not)', async () => {
    const { definition } = counterType('rt.InvokeBadCode', 'multicore');
    const [c0, c1] = node({ cores: 2 }).runtimes;
    // Not yet faulted: the error arrives as a rejection.
    const cold = await settle(() => c1.invoke(definition.staticId, 0xdeadbeef, [])).catch((e: unknown) => e);
    expect(cold).toBeInstanceOf(UnknownMethodError);
    expect((cold as UnknownMethodError).code).toBe('UNKNOWN_METHOD');
    // Faulted: thrown synchronously.
    c0.ref(definition).add(1);
    expect(() => c0.invoke(definition.staticId, 0xdeadbeef, [])).toThrow(UnknownMethodError);
    // onMessage is not callable as a method.
    expect(() => c0.invoke(definition.staticId, definition.messageCode, [])).toThrow(UnknownMethodError);
  });

  it('an unknown Ebb id is an UnknownEbbError', async () => {
    const idMap = new FakeIdMap();
    const [rt] = node({ idMap }).runtimes;
    const unknownStatic = staticIdFor('rt.nobody-defines-this');
    await expect(settle(() => rt.invoke(unknownStatic, 1, []))).rejects.toBeInstanceOf(UnknownEbbError);
    // A global id the map does not know.
    await expect(settle(() => rt.invoke(0x00050001, 1, []))).rejects.toBeInstanceOf(UnknownEbbError);
    expect(idMap.requests.get).toBe(1);
    // A global id whose recorded type this node does not define.
    await idMap.set(0x00050002, encodeValue({ type: 'rt.NotLoadedHere' }));
    const error = await settle(() => rt.invoke(0x00050002, 1, [])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownEbbError);
    expect((error as UnknownEbbError).code).toBe('UNKNOWN_EBB');
  });

  it('a dynamic Ebb is resolved through its GlobalIdMap record on a core that never saw it', async () => {
    const { definition } = counterType('rt.InvokeDynamic', 'multicore');
    const idMap = new FakeIdMap();
    const a = node({ nodeId: 2, idMap }).runtimes[0];
    const b = node({ nodeId: 3, idMap }).runtimes[0];
    const ref = await a.createEbb(definition);
    await expect(settle(() => b.invoke(ref.$id, definition.codes.add, [9]))).resolves.toBe(9);
    expect(idMap.requests.get).toBe(1);
    // Now bound on b: later invokes do not read the map again.
    expect(b.invoke(ref.$id, definition.codes.get, [])).toBe(9);
    expect(idMap.requests.get).toBe(1);
  });
});

describe('createEbb', () => {
  it('allocates through links.allocateId and records {type, home} in the GlobalIdMap', async () => {
    const { definition } = counterType('rt.CreateHome', 'home');
    const { runtimes, links, idMap } = node({ nodeId: 4 });
    const ref = await runtimes[0].createEbb(definition);
    expect(links.allocateId).toHaveBeenCalledTimes(1);
    expect(idSpaceOf(ref.$id)).toBe(4);
    expect((idMap as FakeIdMap).record(ref.$id)).toEqual({ type: 'rt.CreateHome', home: 4 });
    const other = await runtimes[0].createEbb(definition, { home: 7 });
    expect(other.$id).not.toBe(ref.$id);
    expect((idMap as FakeIdMap).record(other.$id)).toEqual({ type: 'rt.CreateHome', home: 7 });
    expect(links.allocateId).toHaveBeenCalledTimes(2);
  });

  it('non-home Ebbs record only their type', async () => {
    const { definition } = counterType('rt.CreateShared', 'shared');
    const { runtimes, idMap } = node({ nodeId: 2 });
    const ref = await runtimes[0].createEbb(definition);
    expect((idMap as FakeIdMap).record(ref.$id)).toEqual({ type: 'rt.CreateShared' });
    expect(ref.add(1)).toBe(1);
  });

  it('two cores of a node never get the same id (the allocator is node-wide)', async () => {
    const { definition } = counterType('rt.CreateCores', 'multicore');
    const { runtimes } = node({ nodeId: 2, cores: 3 });
    const refs = await Promise.all(runtimes.flatMap((rt) => [rt.createEbb(definition), rt.createEbb(definition)]));
    expect(new Set(refs.map((r) => r.$id)).size).toBe(6);
  });
});

describe('messages', () => {
  interface Mailbox {
    count(): number;
  }
  const inbox: { core: number; message: unknown; from: MessageSource }[] = [];
  const MailboxEbb = defineEbb<Mailbox, { text: string }>({
    name: 'rt.Mailbox',
    policy: 'multicore',
    methods: ['count'],
    create: (ctx) => {
      let n = 0;
      return Object.assign(
        { count: () => n },
        {
          onMessage: (message: unknown, from: MessageSource) => {
            n++;
            inbox.push({ core: ctx.runtime.core, message, from });
          },
        },
      );
    },
  });

  it('send to this node delivers to onMessage on the chosen core, faulting the rep in', async () => {
    inbox.length = 0;
    const [c0, c1] = node({ nodeId: 2, cores: 2 }).runtimes;
    await c0.send(MailboxEbb, 2, { text: 'here' });
    await c0.send(MailboxEbb, 2, { text: 'there' }, 1);
    await vi.waitFor(() => expect(inbox).toHaveLength(2));
    expect([...inbox].sort((x, y) => x.core - y.core)).toEqual([
      { core: 0, message: { text: 'here' }, from: { nodeId: 2, core: 0 } },
      { core: 1, message: { text: 'there' }, from: { nodeId: 2, core: 0 } },
    ]);
    expect(c1.stats.faults).toBe(1);
    expect(c1.stats.messages).toBe(1);
  });

  it('send to another node goes through the messenger', async () => {
    inbox.length = 0;
    const cluster: Cluster = new Map();
    const a = node({ nodeId: 2, cluster }).runtimes[0];
    const b = node({ nodeId: 3, cluster }).runtimes[0];
    await a.send(MailboxEbb, 3, { text: 'hi b' });
    await vi.waitFor(() => expect(inbox).toHaveLength(1));
    expect(inbox[0]).toEqual({ core: 0, message: { text: 'hi b' }, from: { nodeId: 2, core: 0 } });
    expect(b.ref(MailboxEbb).count()).toBe(1);
    expect(a.lookup(MailboxEbb.staticId)).toBeUndefined();
  });

  it('a rep without onMessage is reported through onMessageError, never thrown at the sender', async () => {
    const { definition } = counterType('rt.NoOnMessage', 'multicore');
    const errors: unknown[] = [];
    const [rt] = node({ onMessageError: (error) => errors.push(error) }).runtimes;
    await rt.send(definition as never, HOSTED_NODE_ID, 'ignored');
    await vi.waitFor(() => expect(errors).toHaveLength(1));
    expect(errors[0]).toBeInstanceOf(UnknownMethodError);
    expect(rt.stats.servedErrors).toBe(1);
  });

  it('a message for another node fails at the sender when there is no route', async () => {
    const [rt] = node().runtimes;
    await expect(rt.send(MailboxEbb, 9, { text: 'lost' })).rejects.toBeInstanceOf(NodeUnavailableError);
  });
});
