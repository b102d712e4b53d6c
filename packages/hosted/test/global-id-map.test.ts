import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  EbbError,
  encodeValue,
  ForbiddenError,
  IdMapServer,
  MemoryIdMapStore,
  type CasResult,
  type EbbId,
  type GlobalIdMap,
  type IdMapAccess,
  type IdMapEntry,
  type IdMapWatcher,
} from '@ebbrt/hosted';
import { Connection, encodeError, HelloPurpose, memoryTransportPair, RemoteGlobalIdMap, type ControlType } from '@ebbrt/ebb-protocol/internal';

/**
 * The GlobalIdMap authority (MemoryIdMapStore), its wire server (IdMapServer)
 * and the natives' client (RemoteGlobalIdMap, from ebb-protocol) over
 * handshaken in-memory connections.
 */

const SECRET = 'id-map-test-secret';
const ID = 0x00020001;
const OTHER = 0x00020002;
const text = (entry: IdMapEntry | undefined) => entry?.value.toString('utf8');

describe('MemoryIdMapStore', () => {
  it('get of an absent id is undefined; set creates it with version 1; peek is synchronous', async () => {
    const store = new MemoryIdMapStore();
    expect(await store.get(ID)).toBeUndefined();
    expect(store.peek(ID)).toBeUndefined();
    const entry = await store.set(ID, Buffer.from('a'));
    expect(entry.version).toBe(1);
    expect(text(await store.get(ID))).toBe('a');
    expect(store.peek(ID)).toEqual(entry);
  });

  it('every write bumps the version, across ids too', async () => {
    const store = new MemoryIdMapStore();
    const a1 = await store.set(ID, Buffer.from('a1'));
    const b1 = await store.set(OTHER, Buffer.from('b1'));
    const a2 = await store.set(ID, Buffer.from('a2'));
    expect([a1.version, b1.version, a2.version]).toEqual([1, 2, 3]);
    expect(text(await store.get(ID))).toBe('a2');
  });

  it('keeps its own copy of the value', async () => {
    const store = new MemoryIdMapStore();
    const value = Buffer.from('abc');
    await store.set(ID, value);
    value.write('xyz');
    expect(text(await store.get(ID))).toBe('abc');
  });

  it('cas with expected version 0 succeeds only while the id is absent', async () => {
    const store = new MemoryIdMapStore();
    const first = await store.cas(ID, 0, Buffer.from('first'));
    expect(first.ok).toBe(true);
    expect(text(first.entry)).toBe('first');
    const second = await store.cas(ID, 0, Buffer.from('second'));
    expect(second.ok).toBe(false);
    // The loser learns the winner's entry.
    expect(text(second.entry)).toBe('first');
    expect(second.entry?.version).toBe(first.entry?.version);
  });

  it('cas with a stale version fails; with the current version it succeeds', async () => {
    const store = new MemoryIdMapStore();
    const v1 = await store.set(ID, Buffer.from('v1'));
    const v2 = await store.set(ID, Buffer.from('v2'));
    const stale = await store.cas(ID, v1.version, Buffer.from('from v1'));
    expect(stale).toMatchObject({ ok: false });
    expect(text(stale.entry)).toBe('v2');
    const fresh = await store.cas(ID, v2.version, Buffer.from('from v2'));
    expect(fresh.ok).toBe(true);
    expect(fresh.entry!.version).toBeGreaterThan(v2.version);
    expect(text(await store.get(ID))).toBe('from v2');
    // Expected version on an absent id other than 0 fails.
    expect((await store.cas(OTHER, 5, Buffer.from('x'))).ok).toBe(false);
    expect(await store.get(OTHER)).toBeUndefined();
  });

  it('watch hears every successful write of its id only, until unsubscribed', async () => {
    const store = new MemoryIdMapStore();
    const seen: [EbbId, string | undefined, number | undefined][] = [];
    const stop = store.watch(ID, (id, entry) => seen.push([id, text(entry), entry?.version]));
    await store.set(ID, Buffer.from('a'));
    await store.set(OTHER, Buffer.from('other'));
    await store.cas(ID, 0, Buffer.from('lost race'));
    await store.cas(ID, 1, Buffer.from('b'));
    stop();
    await store.set(ID, Buffer.from('after stop'));
    expect(seen).toEqual([
      [ID, 'a', 1],
      [ID, 'b', 3],
    ]);
  });
});

/** One client node's connection to the authority, with the server's request log. */
interface Client {
  map: RemoteGlobalIdMap;
  conn: Connection;
  serverConn: Connection;
}

const opened: Connection[] = [];
afterEach(() => {
  for (const conn of opened.splice(0)) conn.close();
});

/** The frontend side: one store, one IdMapServer, and every request it receives. */
function authority(store: GlobalIdMap = new MemoryIdMapStore(), access: IdMapAccess = { idSpaceOf: () => 2, isLive: () => true }) {
  const server = new IdMapServer(store, access);
  const requests: { client: number; type: ControlType }[] = [];
  const count = (type: ControlType, client?: number) => requests.filter((r) => r.type === type && (client === undefined || r.client === client)).length;

  /** Handshakes a new client (node `nodeId`) and wires both ends like the runtimes do. */
  async function connect(nodeId: number): Promise<Client> {
    const [clientEnd, serverEnd] = memoryTransportPair(`memory:node${nodeId}`, 'memory:frontend');
    const [serverConn, { conn }] = await Promise.all([
      Connection.accept(serverEnd, SECRET, 1, () => ({ welcome: { nodeId: 1 } })),
      Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.peer, nodeId, core: 0 }),
    ]);
    opened.push(conn, serverConn);
    serverConn.attach({
      onCall: (c, frame) => c.reply(frame, false, encodeError(new Error('no calls here'))),
      onMessage: () => undefined,
      onControl: (c, message, callId) => {
        requests.push({ client: nodeId, type: message.type });
        server.handle(c, message, callId);
      },
      onClose: (c) => server.forget(c),
    });
    const map = new RemoteGlobalIdMap(async () => conn);
    conn.attach({
      onCall: () => undefined,
      onMessage: () => undefined,
      // What a native core's messenger handler for idMapChanged does with notifications.
      onControl: (_c, message) => {
        if (message.type === 'idMapChanged') map.changed(message.body);
      },
      onClose: () => undefined,
    });
    return { map, conn, serverConn };
  }

  return { store, server, requests, count, connect };
}

/** Resolves with the next change `map` reports for `id`. */
function nextChange(map: GlobalIdMap, id: EbbId): Promise<IdMapEntry | undefined> {
  return new Promise((resolve) => {
    const stop = map.watch(id, (_id, entry) => {
      stop();
      resolve(entry);
    });
  });
}

describe('RemoteGlobalIdMap against IdMapServer', () => {
  it('get asks the authority once, then answers from its cache', async () => {
    const auth = authority();
    await auth.store.set(ID, Buffer.from('hello'));
    const a = await auth.connect(2);
    const first = await a.map.get(ID);
    expect(text(first)).toBe('hello');
    expect(first?.version).toBe(1);
    expect(auth.count('idMapGet')).toBe(1);
    expect(text(await a.map.get(ID))).toBe('hello');
    expect(text(a.map.peek(ID))).toBe('hello');
    expect(auth.count('idMapGet')).toBe(1);
    // It subscribed while asking, so the authority will tell it about changes.
    expect(auth.count('idMapWatch')).toBe(1);
  });

  it('absence is cached too, and a later write by anyone fills the cache', async () => {
    const auth = authority();
    const a = await auth.connect(2);
    expect(await a.map.get(ID)).toBeUndefined();
    expect(await a.map.get(ID)).toBeUndefined();
    expect(auth.count('idMapGet')).toBe(1);
    const changed = nextChange(a.map, ID);
    await auth.store.set(ID, Buffer.from('now here'));
    expect(text(await changed)).toBe('now here');
    expect(text(await a.map.get(ID))).toBe('now here');
    expect(auth.count('idMapGet')).toBe(1);
  });

  it("a set by another client updates this client's cache through IdMapChanged", async () => {
    const auth = authority();
    const a = await auth.connect(2);
    const b = await auth.connect(3);
    await a.map.set(ID, Buffer.from('from a'));
    expect(text(await a.map.get(ID))).toBe('from a');
    const changed = nextChange(a.map, ID);
    const written = await b.map.set(ID, Buffer.from('from b'));
    const seen = await changed;
    expect(text(seen)).toBe('from b');
    expect(seen?.version).toBe(written.version);
    expect(text(a.map.peek(ID))).toBe('from b');
    expect(text(await a.map.get(ID))).toBe('from b');
    // Neither client ever needed an idMapGet: set and notifications kept the caches fresh.
    expect(auth.count('idMapGet')).toBe(0);
    expect(auth.count('idMapSet')).toBe(2);
  });

  it('watchers of other ids are not told', async () => {
    const auth = authority();
    const a = await auth.connect(2);
    const b = await auth.connect(3);
    const other = vi.fn<IdMapWatcher>();
    a.map.watch(OTHER, other);
    const changed = nextChange(a.map, ID);
    await b.map.set(ID, Buffer.from('x'));
    await changed;
    expect(other).not.toHaveBeenCalled();
  });

  it('cas race: two clients cas the same absent id with expected 0, exactly one wins', async () => {
    for (let round = 0; round < 20; round++) {
      const auth = authority();
      const a = await auth.connect(2);
      const b = await auth.connect(3);
      const id = ID + round;
      const results: CasResult[] = await Promise.all([a.map.cas(id, 0, Buffer.from('a')), b.map.cas(id, 0, Buffer.from('b'))]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      const winner = results[0].ok ? 'a' : 'b';
      // Both learn the winner's entry: the loser through its failed cas.
      expect(results.map((r) => text(r.entry))).toEqual([winner, winner]);
      expect(text(await auth.store.get(id))).toBe(winner);
      await vi.waitFor(() => {
        expect(text(a.map.peek(id))).toBe(winner);
        expect(text(b.map.peek(id))).toBe(winner);
      });
    }
  });

  it('cas with the current version succeeds, a stale one fails with the current entry', async () => {
    const auth = authority();
    const a = await auth.connect(2);
    const created = await a.map.cas(ID, 0, Buffer.from('v1'));
    expect(created.ok).toBe(true);
    const next = await a.map.cas(ID, created.entry!.version, Buffer.from('v2'));
    expect(next.ok).toBe(true);
    const stale = await a.map.cas(ID, created.entry!.version, Buffer.from('v3'));
    expect(stale.ok).toBe(false);
    expect(text(stale.entry)).toBe('v2');
  });

  it('a stale notification does not roll the cache back', async () => {
    const auth = authority();
    const a = await auth.connect(2);
    await a.map.set(ID, Buffer.from('v1'));
    const v2 = await a.map.set(ID, Buffer.from('v2'));
    a.map.changed({ id: ID, found: true, value: Buffer.from('v1 again'), version: v2.version - 1 });
    expect(text(a.map.peek(ID))).toBe('v2');
  });

  it('a store failure arrives as an EbbError ID_MAP_ERROR, and the connection keeps working', async () => {
    const store = new MemoryIdMapStore();
    const failing: GlobalIdMap = {
      peek: (id) => store.peek(id),
      get: (id) => (id === OTHER ? Promise.reject(new Error('redis is down')) : store.get(id)),
      set: (id, value) => store.set(id, value),
      cas: (id, expected, value) => store.cas(id, expected, value),
      watch: (id, watcher) => store.watch(id, watcher),
    };
    const auth = authority(failing);
    const a = await auth.connect(2);
    const error = await a.map.get(OTHER).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EbbError);
    expect((error as EbbError).code).toBe('ID_MAP_ERROR');
    await a.map.set(ID, Buffer.from('still fine'));
    expect(text(await store.get(ID))).toBe('still fine');
  });

  it('a closed connection is forgotten by the server: later writes notify only live clients', async () => {
    const auth = authority();
    const a = await auth.connect(2);
    const b = await auth.connect(3);
    await auth.store.set(ID, Buffer.from('v1'));
    expect(text(await a.map.get(ID))).toBe('v1');
    expect(text(await b.map.get(ID))).toBe('v1');
    const sent = vi.spyOn(a.serverConn, 'sendControl');
    a.conn.close();
    await vi.waitFor(() => expect(a.serverConn.open).toBe(false));
    const changed = nextChange(b.map, ID);
    await auth.store.set(ID, Buffer.from('later'));
    expect(text(await changed)).toBe('later');
    // Nothing was sent towards the closed client, and it no longer trusts what it cached.
    expect(sent).not.toHaveBeenCalled();
    expect(a.map.peek(ID)).toBeUndefined();
  });

  it('a new connection invalidates the cache (notifications may have been missed)', async () => {
    const auth = authority();
    const first = await auth.connect(2);
    const second = await auth.connect(2);
    let current = first.conn;
    const map = new RemoteGlobalIdMap(async () => current);
    for (const c of [first, second]) c.conn.attach({ ...c.conn.handler, onControl: (_c, m) => m.type === 'idMapChanged' && map.changed(m.body) });
    await auth.store.set(ID, Buffer.from('v1'));
    expect(text(await map.get(ID))).toBe('v1');
    expect(auth.count('idMapGet')).toBe(1);
    current = second.conn;
    first.conn.close();
    await auth.store.set(ID, Buffer.from('v2'));
    expect(text(await map.get(ID))).toBe('v2');
    expect(auth.count('idMapGet')).toBe(2);
  });
});

describe('IdMapServer authority: who may write and read what', () => {
  // Node 2 owns id space 2, node 3 id space 3; node 9 is gone.
  const members = new Map([
    [2, 2],
    [3, 3],
  ]);
  const refused: { nodeId: number; code: string }[] = [];
  const access: IdMapAccess = {
    idSpaceOf: (n) => members.get(n),
    isLive: (n) => members.has(n),
    refused: (nodeId, error) => refused.push({ nodeId, code: error.code }),
  };
  const record = (type: string, home?: number) => encodeValue(home === undefined ? { type } : { type, home });
  const forbidden = async (p: Promise<unknown>) => {
    const error = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ForbiddenError);
    expect((error as ForbiddenError).code).toBe('FORBIDDEN');
  };

  it('a node writes its own id space; another node writing it is refused FORBIDDEN, counted, reported once, and nothing changes', async () => {
    refused.length = 0;
    const auth = authority(new MemoryIdMapStore(), access);
    const [a, b] = [await auth.connect(2), await auth.connect(3)];
    await a.map.set(0x00020005, Buffer.from('mine'));
    await forbidden(b.map.set(0x00020005, Buffer.from('theirs')));
    await forbidden(b.map.cas(0x00020005, 1, Buffer.from('theirs')));
    await forbidden(b.map.set(0x00010001, Buffer.from("the frontend's")));
    expect(text(await auth.store.get(0x00020005))).toBe('mine');
    expect(await auth.store.get(0x00010001)).toBeUndefined();
    expect(auth.server.refusals.write).toBe(3);
    expect(refused).toEqual([{ nodeId: 3, code: 'FORBIDDEN' }]);
    // The connection keeps working for what is allowed.
    await b.map.set(0x00030001, Buffer.from('ok'));
  });

  it('ids the frontend assigned are writable; forgetNode takes them back', async () => {
    const auth = authority(new MemoryIdMapStore(), access);
    const b = await auth.connect(3);
    await forbidden(b.map.set(0x00010007, Buffer.from('x')));
    auth.server.assign(3, [0x00010007]);
    await b.map.set(0x00010007, Buffer.from('x'));
    auth.server.forgetNode(3);
    await forbidden(b.map.set(0x00010007, Buffer.from('y')));
  });

  it('claims: a static id not yet recorded, or a record whose owner left, may be taken by cas homed on the claimant only', async () => {
    const auth = authority(new MemoryIdMapStore(), access);
    const [a, b] = [await auth.connect(2), await auth.connect(3)];
    const STATIC = 0x9abc;
    await forbidden(b.map.cas(STATIC, 0, record('Kv', 2)));
    expect((await b.map.cas(STATIC, 0, record('Kv', 3))).ok).toBe(true);
    // Now assigned to node 3; node 2 cannot take a live owner's record.
    const current = (await auth.store.get(STATIC))!;
    await forbidden(a.map.cas(STATIC, current.version, record('Kv', 2)));
    // Owner gone: a same-type claim homed on the claimant wins; a type change does not.
    const orphan = await auth.store.set(0x00090001, record('Kv', 9));
    await forbidden(a.map.cas(0x00090001, orphan.version, record('Other', 2)));
    expect((await a.map.cas(0x00090001, orphan.version, record('Kv', 2))).ok).toBe(true);
    // Not an Ebb record at all: refused.
    await forbidden(a.map.cas(0x9abd, 0, Buffer.from('garbage')));
  });

  it('scoped reads: get is refused FORBIDDEN and a watch is dropped outside the scope', async () => {
    const auth = authority(new MemoryIdMapStore(), access);
    const b = await auth.connect(3);
    await auth.store.set(0x00010001, Buffer.from('public'));
    await auth.store.set(0x00010002, Buffer.from('private'));
    auth.server.scopeReads(3, (id) => id === 0x00010001);
    expect(text(await b.map.get(0x00010001))).toBe('public');
    await forbidden(b.map.get(0x00010002));
    expect(auth.server.refusals.read).toBe(2); // the client watches before it reads: both refused
    auth.server.scopeReads(3, undefined);
    expect(text(await b.map.get(0x00010002))).toBe('private');
  });

  it('a connection of a node that is not a member is refused everything', async () => {
    const auth = authority(new MemoryIdMapStore(), access);
    const stranger = await auth.connect(42);
    await forbidden(stranger.map.get(0x00010001));
    await forbidden(stranger.map.set(0x002a0001, Buffer.from('x')));
  });
});
