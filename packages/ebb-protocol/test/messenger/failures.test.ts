/**
 * The messenger's failure paths on the in-memory transport (transport.ts): a
 * refused connect, a refused handshake, a connection the peer drops (the next
 * call reconnects), and a close while a connect is still pending. Every path
 * ends in a typed error, promptly, and leaves nothing in flight.
 */
import { describe, expect, test } from 'vitest';
import { EbbError, JoinRejectedError, MemoryNetwork, Messenger, NodeUnavailableError, type Peer, type Transport } from '@ebbrt/ebb-protocol/internal';

const SECRET = 'messenger-failures-secret';

function peerAt(host: string, port: number): Peer {
  return { nodeId: 3, host, port, cores: 1, idSpace: 3, backend: 'test' };
}

/** A client messenger (node 2) and, unless `listen` is false, a server messenger (node 3) listening on `network`. */
function setup(options: { serverSecret?: string; accept?: (t: Transport, server: Messenger) => void } = {}) {
  const network = new MemoryNetwork();
  const server = new Messenger({ nodeId: 3, core: 0, keys: options.serverSecret ?? SECRET, connect: network.connect });
  const accepted: Transport[] = [];
  const listening = network.listen('node3', (t) => {
    accepted.push(t);
    (options.accept ?? ((transport, s) => s.accept(transport)))(t, server);
  });
  const client = new Messenger({ nodeId: 2, core: 0, keys: SECRET, connect: network.connect, peerWaitMs: 0 });
  client.addPeer(peerAt(listening.address.host, listening.address.port));
  return { network, server, client, accepted, listening };
}

describe('messenger failure paths', () => {
  test('connect refused (nothing listens at the address): NodeUnavailableError, nothing in flight', async () => {
    const network = new MemoryNetwork();
    const client = new Messenger({ nodeId: 2, core: 0, keys: SECRET, connect: network.connect, peerWaitMs: 0 });
    client.addPeer(peerAt('node3', 4242));
    const error = await client.connection(3).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NodeUnavailableError);
    expect((error as EbbError).code).toBe('NODE_UNAVAILABLE');
    expect((error as Error).message).toMatch(/node3:4242|node 3/);
    expect(client.inFlight).toBe(0);
    client.close();
  });

  test('handshake refused (the peer holds another secret): a typed join error; the server counts the rejection', async () => {
    const { client, server } = setup({ serverSecret: 'another-secret' });
    const error = await client.connection(3).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EbbError);
    // Either side may notice first: the client the bad Welcome, or the server the bad Hello.
    expect(error instanceof JoinRejectedError || error instanceof NodeUnavailableError, String(error)).toBe(true);
    expect(['BAD_SECRET', 'NODE_UNAVAILABLE']).toContain((error as EbbError).code);
    await expect.poll(() => server.stats.rejectedHandshakes + client.stats.rejectedHandshakes).toBeGreaterThanOrEqual(1);
    client.close();
    server.close();
  });

  test('the peer drops the connection: the next call opens a new one and is served', async () => {
    const { client, server, accepted } = setup();
    const first = await client.connection(3);
    expect(first.open).toBe(true);
    expect(client.stats.connectionsOpened).toBe(1);
    const closed = new Promise<void>((resolve) => first.transport.onClose(() => resolve()));
    accepted[0].close(); // the server side drops it
    await closed;
    expect(first.open).toBe(false);
    const second = await client.connection(3);
    expect(second).not.toBe(first);
    expect(second.open).toBe(true);
    expect(client.stats.connectionsOpened).toBe(2);
    client.close();
    server.close();
  });

  test('close while a connect is pending (the peer accepts but never answers): the connect rejects at once', async () => {
    const { client, server, accepted } = setup({ accept: () => undefined }); // accepted, never served: no challenge comes
    const opening = client.connection(3);
    const settled = opening.catch((e: unknown) => e);
    await expect.poll(() => accepted.length).toBe(1);
    const closedAt = performance.now();
    client.close();
    const error = await settled;
    expect(error).toBeInstanceOf(NodeUnavailableError);
    expect(performance.now() - closedAt).toBeLessThan(1000); // not the handshake deadline
    expect(client.inFlight).toBe(0);
    server.close();
  });
});
