// Messenger peer lookup (a node known by id before this core's membership update names it), and
// calls that arrive for another core of the node (handed over as bytes, ended by the caller's cancel).
import { describe, expect, test } from 'vitest';
import { encodeArgs, MemoryNetwork, Messenger, NodeUnavailableError, TimeoutError, type CoreChannel, type Peer } from '@ebbrt/ebb-protocol/internal';

const SECRET = 'messenger-test-secret';

function pair(peerWaitMs?: number) {
  const network = new MemoryNetwork();
  const server = new Messenger({ nodeId: 3, core: 0, keys: SECRET, connect: network.connect });
  const listening = network.listen('node3', (t) => server.accept(t));
  const client = new Messenger({ nodeId: 2, core: 0, keys: SECRET, connect: network.connect, peerWaitMs });
  const peer: Peer = { nodeId: 3, host: listening.address.host, port: listening.address.port, cores: 1, idSpace: 3, backend: 'test' };
  return { server, client, peer };
}

describe('Messenger.connection to a node this core has no address for', () => {
  test('waits for the membership update that names it, then connects', async () => {
    const { client, server, peer } = pair();
    const opening = client.connection(3);
    setTimeout(() => client.addPeer(peer), 50);
    const conn = await opening;
    expect(conn.open).toBe(true);
    client.close();
    server.close();
  });

  test('fails with NodeUnavailableError once the wait is over', async () => {
    const { client } = pair(100);
    const started = performance.now();
    await expect(client.connection(3)).rejects.toBeInstanceOf(NodeUnavailableError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
  });

  test('fails at once for a node that left, and with peerWaitMs 0', async () => {
    const { client, peer } = pair();
    client.addPeer(peer);
    client.removePeer(3);
    const started = performance.now();
    await expect(client.connection(3)).rejects.toBeInstanceOf(NodeUnavailableError);
    expect(performance.now() - started).toBeLessThan(50);
    await expect(pair(0).client.connection(3)).rejects.toBeInstanceOf(NodeUnavailableError);
  });

  test('a waiting connect fails at once when the node is reported gone or the messenger closes', async () => {
    const { client } = pair();
    const waiting = client.connection(3);
    client.removePeer(3);
    await expect(waiting).rejects.toBeInstanceOf(NodeUnavailableError);
    const other = pair();
    const closing = other.client.connection(3);
    other.client.close();
    await expect(closing).rejects.toBeInstanceOf(NodeUnavailableError);
  });

  test('a node that re-registers after leaving is reachable again', async () => {
    const { client, server, peer } = pair();
    client.addPeer(peer);
    client.removePeer(3);
    client.addPeer(peer);
    expect((await client.connection(3)).open).toBe(true);
    client.close();
    server.close();
  });
});

describe('a call that arrived for another core of the node', () => {
  /** Node 3 runs two cores; core 1 takes what it is handed and never answers (a method that never returns). */
  function twoCores() {
    const network = new MemoryNetwork();
    const handedOver: { core: number; payload: Uint8Array; timeoutMs: number; signal?: AbortSignal }[] = [];
    const cores: CoreChannel = {
      cores: 2,
      call: (core, _ebbId, _code, payload, timeoutMs, _decode, _meter, signal) => {
        handedOver.push({ core, payload: Uint8Array.from(payload), timeoutMs, signal });
        return new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted'))));
      },
      message: () => undefined,
    };
    const server = new Messenger({ nodeId: 3, core: 0, keys: SECRET, connect: network.connect, cores });
    const listening = network.listen('node3', (t) => server.accept(t));
    const client = new Messenger({ nodeId: 2, core: 0, keys: SECRET, connect: network.connect });
    client.addPeer({ nodeId: 3, host: listening.address.host, port: listening.address.port, cores: 2, idSpace: 3, backend: 'test' });
    return { server, client, handedOver };
  }

  test('goes over as the bytes that arrived, and the caller giving up at its deadline ends the hand-over', async () => {
    const { server, client, handedOver } = twoCores();
    const error = await client.call(3, 1, 0x8001, 0xc0de, [7, 'seven'], 100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(handedOver).toHaveLength(1);
    expect(handedOver[0].core).toBe(1);
    expect(Buffer.from(handedOver[0].payload)).toEqual(encodeArgs([7, 'seven']));
    // The caller's cancel crosses the connection: the hand-over stops waiting long before its own 30 s.
    const deadline = performance.now() + 2000;
    while (!handedOver[0].signal?.aborted && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(handedOver[0].signal?.aborted).toBe(true);
    client.close();
    server.close();
  });

  test('the connection closing ends the hand-overs made for it', async () => {
    const { server, client, handedOver } = twoCores();
    const call = client.call(3, 1, 0x8001, 0xc0de, [1], 30_000).catch((e: unknown) => e);
    while (handedOver.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    client.close();
    expect(await call).toBeInstanceOf(NodeUnavailableError);
    const deadline = performance.now() + 2000;
    while (!handedOver[0].signal?.aborted && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(handedOver[0].signal?.aborted).toBe(true);
    server.close();
  });
});
