import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, startHosted, type HostedNode, type HostedOptions } from '@ebbrt/hosted';
import { startInlineNative, type InlineNative, type InlineNativeOptions } from '@ebbrt/native';
import {
  defineEbb,
  EbbError,
  HOSTED_NODE_ID,
  idSpaceOf,
  JoinRejectedError,
  MemoryNetwork,
  NodeUnavailableError,
  registerErrorCode,
  RemoteError,
  UnencodableError,
  type EbbRuntime,
  type MessageSource,
} from '@ebbrt/ebb-protocol/internal';

/**
 * A whole cluster — the hosted frontend and three inline natives — in one
 * Vitest process. The same checks run over the in-memory network and over
 * real loopback TCP (a small conformance suite): both
 * transports must behave the same.
 */

const SECRET = 'cluster-in-process-secret';

// ---- Ebb types shared by every node (as an app's shared definition module is) ----

/** A `home` Ebb homed on the frontend: one guest book, everyone signs it. */
interface GuestBook {
  sign(nodeId: number): Promise<number[]>;
  signatures(): number[];
}
const guestBookRuntimes: EbbRuntime[] = [];
const GuestBookEbb = defineEbb<GuestBook>({
  name: 'cluster.GuestBook',
  policy: 'home',
  home: 'hosted',
  methods: ['sign', 'signatures'],
  create: (ctx) => {
    guestBookRuntimes.push(ctx.runtime);
    const signed: number[] = [];
    return {
      sign: async (nodeId) => (signed.push(nodeId), [...signed]),
      signatures: () => [...signed],
    };
  },
});

/** A `home` Ebb created dynamically on a native: its state lives where it was created. */
interface Account {
  deposit(amount: number): number;
  balance(): number;
  owner(): number;
}
const AccountEbb = defineEbb<Account>({
  name: 'cluster.Account',
  policy: 'home',
  methods: ['deposit', 'balance', 'owner'],
  create: (ctx) => {
    let balance = 0;
    return { deposit: (amount) => (balance += amount), balance: () => balance, owner: () => ctx.runtime.nodeId };
  },
});

/** A `shared` Ebb that only receives one-way messages. */
interface Note {
  text: string;
}
interface Inbox {
  notes(): { text: string; from: MessageSource }[];
}
const InboxEbb = defineEbb<Inbox, Note>({
  name: 'cluster.Inbox',
  policy: 'shared',
  methods: ['notes'],
  create: () => {
    const notes: { text: string; from: MessageSource }[] = [];
    return Object.assign({ notes: () => notes }, { onMessage: (note: Note, from: MessageSource) => notes.push({ text: note.text, from }) });
  },
});

/** An app error class that crosses the wire as itself. */
class InsufficientFundsError extends EbbError {
  constructor(message: string, data?: unknown) {
    super('CLUSTER_INSUFFICIENT_FUNDS', message, data === undefined ? undefined : { data });
  }
}
registerErrorCode('CLUSTER_INSUFFICIENT_FUNDS', (message, data) => new InsufficientFundsError(message, data));

/** A `shared` Ebb whose methods fail, or never answer. */
interface Vault {
  withdraw(amount: number): number;
  explode(): never;
  hang(): Promise<never>;
  hanging(): number;
  /** Returns nothing: the caller gets `undefined`. */
  nothing(): void;
}
const VaultEbb = defineEbb<Vault>({
  name: 'cluster.Vault',
  policy: 'shared',
  methods: ['withdraw', 'explode', 'hang', 'hanging', 'nothing'],
  create: () => {
    let hanging = 0;
    return {
      withdraw: (amount) => {
        throw new InsufficientFundsError(`cannot withdraw ${amount}`, { balance: 10, requested: amount });
      },
      explode: () => {
        throw new RangeError('kaboom');
      },
      hang: () => {
        hanging++;
        return new Promise<never>(() => undefined);
      },
      hanging: () => hanging,
      nothing: () => undefined,
    };
  },
});

// ---- transports under test ----

type Listen = NonNullable<HostedOptions['transport']>['listen'];

interface ClusterTransport {
  hosted(): HostedOptions['transport'];
  native(name: string): InlineNativeOptions['transport'];
}

const transports: [string, () => ClusterTransport][] = [
  [
    'memory',
    () => {
      const net = new MemoryNetwork();
      const listen =
        (host: string): Listen =>
        async (onTransport) =>
          net.listen(host, onTransport);
      return { hosted: () => ({ listen: listen('frontend'), connect: net.connect }), native: (name) => ({ listen: listen(name), connect: net.connect }) };
    },
  ],
  // No transport option: real loopback TCP sockets.
  ['tcp', () => ({ hosted: () => undefined, native: () => undefined })],
];

describe.each(transports)('a cluster in one process over %s', (_name, makeTransport) => {
  let transport: ClusterTransport;
  let hosted: HostedNode;
  let natives: InlineNative[];
  let started: InlineNative[];

  async function startNative(name: string, secret = SECRET): Promise<InlineNative> {
    const native = await startInlineNative({ frontend: hosted.address, secret, transport: transport.native(name) });
    started.push(native);
    return native;
  }

  beforeEach(async () => {
    transport = makeTransport();
    started = [];
    hosted = await startHosted({ secret: SECRET, transport: transport.hosted(), logger: silentLogger });
    // Joined one after the other: each later native learns the earlier ones from its Welcome.
    natives = [];
    for (const name of ['native-a', 'native-b', 'native-c']) natives.push(await startNative(name));
    await vi.waitFor(() => {
      for (const native of natives) expect(native.runtime.peers.size).toBe(3);
    });
  });

  afterEach(async () => {
    await Promise.allSettled(started.map((native) => native.close()));
    await hosted.close();
  });

  it('every native joined with its own node id and id space', () => {
    expect(hosted.members.size).toBe(3);
    expect(hosted.stats.joins).toBe(3);
    const ids = natives.map((n) => n.nodeId);
    expect(new Set(ids).size).toBe(3);
    expect(ids).not.toContain(HOSTED_NODE_ID);
    const spaces = [...hosted.members.values()].map((m) => m.idSpace);
    expect(new Set(spaces).size).toBe(3);
    expect(spaces).not.toContain(1);
  });

  it('a home Ebb homed on the frontend is called from every native', async () => {
    guestBookRuntimes.length = 0;
    for (const native of natives) {
      const after = await native.runtime.ref(GuestBookEbb).sign(native.nodeId);
      expect(after).toContain(native.nodeId);
    }
    const book = hosted.runtime.ref(GuestBookEbb);
    expect(book.signatures()).toEqual(natives.map((n) => n.nodeId));
    // One rep, on the frontend; the natives only hold forwarding proxies.
    expect(guestBookRuntimes).toEqual([hosted.runtime]);
    for (const native of natives) expect(native.runtime.stats.remoteCalls).toBe(1);
    expect(hosted.runtime.stats.servedCalls).toBe(3);
  });

  it('a dynamic Ebb created on native A is called from native B (through the GlobalIdMap) and from the frontend', async () => {
    const [a, b] = natives;
    const account = await a.runtime.createEbb(AccountEbb, { home: a.nodeId });
    expect(idSpaceOf(account.$id)).toBe(hosted.members.get(a.nodeId)!.idSpace);
    // The frontend's authority has the record.
    expect(hosted.idMap.peek(account.$id)).toBeDefined();

    expect(b.runtime.idMap.peek(account.$id)).toBeUndefined();
    const fromB = b.runtime.ref(AccountEbb, account.$id);
    await expect(Promise.resolve(fromB.deposit(5))).resolves.toBe(5);
    // B had to read the map to find the owner, and now has the record cached.
    expect(b.runtime.idMap.peek(account.$id)).toBeDefined();
    expect(b.runtime.stats.faults).toBe(1);
    await expect(Promise.resolve(fromB.owner())).resolves.toBe(a.nodeId);

    const fromHosted = hosted.runtime.ref(AccountEbb, account.$id);
    await expect(Promise.resolve(fromHosted.deposit(7))).resolves.toBe(12);
    await expect(Promise.resolve(fromHosted.owner())).resolves.toBe(a.nodeId);

    // On A the rep is local: a plain synchronous call.
    expect(account.deposit(1)).toBe(13);
    expect(account.balance()).toBe(13);
    expect(a.runtime.stats.remoteCalls).toBe(0);
  });

  it('one-way messages reach onMessage on the remote node, faulting in a rep that node never touched', async () => {
    const [a, b] = natives;
    expect(a.runtime.lookup(InboxEbb.staticId)).toBeUndefined();
    await hosted.runtime.send(InboxEbb, a.nodeId, { text: 'from the frontend' });
    await b.runtime.send(InboxEbb, a.nodeId, { text: 'from b' });
    await a.runtime.send(InboxEbb, HOSTED_NODE_ID, { text: 'from a' });
    await vi.waitFor(() => expect(a.runtime.lookup(InboxEbb.staticId)).toBeDefined());
    const inboxA = a.runtime.ref(InboxEbb);
    await vi.waitFor(() => expect(inboxA.notes()).toHaveLength(2));
    expect([...inboxA.notes()].sort((x, y) => x.from.nodeId - y.from.nodeId)).toEqual([
      { text: 'from the frontend', from: { nodeId: HOSTED_NODE_ID, core: 0 } },
      { text: 'from b', from: { nodeId: b.nodeId, core: 0 } },
    ]);
    expect(a.runtime.stats.faults).toBe(1);
    expect(a.runtime.stats.messages).toBe(2);
    await vi.waitFor(() => expect(hosted.runtime.ref(InboxEbb).notes()).toEqual([{ text: 'from a', from: { nodeId: a.nodeId, core: 0 } }]));
    // B never received anything, so never built a rep.
    expect(b.runtime.lookup(InboxEbb.staticId)).toBeUndefined();
  });

  it('an error thrown by a remote method arrives as the same class, with its code and data', async () => {
    const [a, b] = natives;
    const fromHosted = await hosted.runtime
      .remote(VaultEbb, a.nodeId)
      .withdraw(100)
      .catch((e: unknown) => e);
    expect(fromHosted).toBeInstanceOf(InsufficientFundsError);
    expect((fromHosted as InsufficientFundsError).code).toBe('CLUSTER_INSUFFICIENT_FUNDS');
    expect((fromHosted as InsufficientFundsError).data).toEqual({ balance: 10, requested: 100 });

    const fromNative = await b.runtime
      .remote(VaultEbb, a.nodeId)
      .withdraw(3)
      .catch((e: unknown) => e);
    expect(fromNative).toBeInstanceOf(InsufficientFundsError);
    expect((fromNative as EbbError).code).toBe('CLUSTER_INSUFFICIENT_FUNDS');

    // A plain Error is not an app class: it arrives as RemoteError.
    const plain = await b.runtime
      .remote(VaultEbb, HOSTED_NODE_ID)
      .explode()
      .catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(RemoteError);
    expect((plain as EbbError).code).toBe('REMOTE_ERROR');

    // Errors do not poison the connection.
    await expect(b.runtime.remote(VaultEbb, a.nodeId).hanging()).resolves.toBe(0);
  });

  it('what crosses the wire arrives as it was sent, or the call is refused naming the Ebb, method and argument', async () => {
    const [a] = natives;
    const account = await a.runtime.createEbb(AccountEbb, { home: a.nodeId });
    const fromHosted = hosted.runtime.ref(AccountEbb, account.$id) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const error = await fromHosted.deposit(new Map([[1, 2]])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnencodableError);
    expect((error as UnencodableError).message).toMatch(/^cluster\.Account\.deposit: argument 0 is a Map/);
    expect((error as UnencodableError).data).toEqual({ path: 'argument 0', type: 'a Map' });
    await expect(fromHosted.deposit({ nested: [new Set([1])] })).rejects.toThrow(/argument 0\.nested\[0\] is a Set/);
    await expect(fromHosted.deposit(() => 1)).rejects.toThrow(/argument 0 is a function/);
    // Nothing was sent: the balance is untouched, and the connection still serves.
    await expect(fromHosted.deposit(2)).resolves.toBe(2);
    // A method that returns nothing resolves undefined (not null) across the wire.
    await expect(hosted.runtime.remote(VaultEbb, a.nodeId).nothing()).resolves.toBeUndefined();
  });

  it('a native that crashes: in-flight calls to it reject with NodeUnavailableError and the frontend emits leave', async () => {
    const [a, , c] = natives;
    const left = new Promise<[number, string]>((resolve) => hosted.once('leave', (nodeId: number, reason: string) => resolve([nodeId, reason])));
    const fromHosted = hosted.runtime.remote(VaultEbb, c.nodeId).hang();
    const fromA = a.runtime.remote(VaultEbb, c.nodeId).hang();
    fromHosted.catch(() => undefined);
    fromA.catch(() => undefined);
    // Both calls reached C's rep: they are truly in flight.
    await vi.waitFor(() => expect(c.runtime.ref(VaultEbb).hanging()).toBe(2));

    const crashedAt = Date.now();
    await c.crash();
    const outcomes = await Promise.allSettled([fromHosted, fromA]);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(NodeUnavailableError);
    }
    // Promptly: socket close, not a call timeout or missed heartbeats.
    expect(Date.now() - crashedAt).toBeLessThan(1000);

    const [nodeId] = await left;
    expect(nodeId).toBe(c.nodeId);
    expect(hosted.members.has(c.nodeId)).toBe(false);
    // The survivors hear about it and stop routing to C.
    await vi.waitFor(() => expect(a.runtime.peers.has(c.nodeId)).toBe(false));
    await expect(a.runtime.remote(VaultEbb, c.nodeId).hanging()).rejects.toBeInstanceOf(NodeUnavailableError);
    await expect(hosted.runtime.remote(VaultEbb, c.nodeId).hanging()).rejects.toBeInstanceOf(NodeUnavailableError);
    // The rest of the cluster still works.
    await expect(a.runtime.remote(VaultEbb, natives[1].nodeId).hanging()).resolves.toBe(0);
  });

  it('a native with the wrong secret is rejected (BAD_SECRET) and counted', async () => {
    const rejected = new Promise<unknown>((resolve) => hosted.once('reject', resolve));
    const error = await startNative('native-intruder', 'not-the-cluster-secret').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JoinRejectedError);
    expect((error as JoinRejectedError).code).toBe('BAD_SECRET');
    expect(await rejected).toBeInstanceOf(JoinRejectedError);
    await vi.waitFor(() => expect(hosted.stats.rejectedJoins).toBe(1));
    expect(hosted.members.size).toBe(3);
    expect(hosted.stats.joins).toBe(3);
    // A later correct join still works.
    const late = await startNative('native-late');
    expect(hosted.members.has(late.nodeId)).toBe(true);
  });
});
