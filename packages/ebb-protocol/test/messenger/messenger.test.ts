// Messenger peer lookup: a node known by id before this core's membership update names it.
import { describe, expect, test } from 'vitest';
import { MemoryNetwork, Messenger, NodeUnavailableError, type Peer } from '@ebbrt/ebb-protocol/internal';

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
