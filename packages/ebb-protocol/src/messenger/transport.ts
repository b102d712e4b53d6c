/**
 * The one interface the messenger sees: transports are adapters behind it.
 * Bytes in, bytes out, close, closed. TCP (`tcp-transport.ts`) and an
 * in-memory pair (below, for cluster-in-one-process tests) implement it.
 */
import { NodeUnavailableError } from '../wire/errors.js';

export interface Transport {
  /**
   * Writes `chunks` in order as one batch (a `writev` on sockets). Returns
   * false when the underlying buffer is over its high-water mark; the caller
   * should wait for `onDrain` before writing more.
   */
  write(chunks: Buffer[]): boolean;
  /** Bytes in flight inside the transport (not yet handed to the kernel). */
  readonly bufferedBytes: number;
  /** Closes the transport; `reason` is reported to `onClose` handlers. */
  close(reason?: Error): void;
  readonly closed: boolean;
  /** A readable label of the remote end (`host:port` or `memory:name`). */
  readonly remoteAddress: string;
  /** Registers the (single) byte sink. */
  onData(handler: (chunk: Buffer) => void): void;
  onDrain(handler: () => void): void;
  /** Called once, after which no data arrives. `error` is set for abnormal closes. */
  onClose(handler: (error?: Error) => void): void;
}

/** Something that accepts incoming transports (a listening socket, a memory endpoint). */
export interface TransportServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Connects to `host:port`, resolving once the transport is open. */
export type TransportConnector = (host: string, port: number) => Promise<Transport>;

/** In-memory transport end. Delivery is asynchronous (a microtask), as on a socket. */
class MemoryTransport implements Transport {
  peer!: MemoryTransport;
  closed = false;
  bufferedBytes = 0;
  readonly remoteAddress: string;
  #data?: (chunk: Buffer) => void;
  #early: Buffer[] = [];
  #drain: (() => void)[] = [];
  #close: ((error?: Error) => void)[] = [];

  constructor(remoteAddress: string) {
    this.remoteAddress = remoteAddress;
  }

  write(chunks: Buffer[]): boolean {
    if (this.closed) return false;
    const bytes = chunks.length === 1 ? Buffer.from(chunks[0]) : Buffer.concat(chunks);
    queueMicrotask(() => this.peer.#deliver(bytes));
    return true;
  }

  #deliver(bytes: Buffer): void {
    if (this.closed) return;
    if (this.#data) this.#data(bytes);
    else this.#early.push(bytes);
  }

  onData(handler: (chunk: Buffer) => void): void {
    this.#data = handler;
    for (const chunk of this.#early.splice(0)) handler(chunk);
  }

  onDrain(handler: () => void): void {
    this.#drain.push(handler);
  }

  onClose(handler: (error?: Error) => void): void {
    this.#close.push(handler);
  }

  close(reason?: Error): void {
    if (this.closed) return;
    this.closed = true;
    queueMicrotask(() => {
      for (const h of this.#close) h(reason);
      this.peer.close();
    });
  }
}

/** Two connected in-memory transports. */
export function memoryTransportPair(aName = 'memory:a', bName = 'memory:b'): [Transport, Transport] {
  const a = new MemoryTransport(bName);
  const b = new MemoryTransport(aName);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * A loopback "network" of in-memory endpoints keyed by `host:port`, so the
 * same messenger code runs a whole cluster inside one process.
 */
export class MemoryNetwork {
  readonly #listeners = new Map<string, (transport: Transport) => void>();
  #nextPort = 1;

  listen(host: string, onTransport: (transport: Transport) => void, port = 0): TransportServer {
    const p = port || this.#nextPort++;
    const key = `${host}:${p}`;
    if (this.#listeners.has(key)) throw new Error(`memory address ${key} is in use`);
    this.#listeners.set(key, onTransport);
    return {
      address: { host, port: p },
      close: async () => {
        this.#listeners.delete(key);
      },
    };
  }

  readonly connect: TransportConnector = async (host, port) => {
    const accept = this.#listeners.get(`${host}:${port}`);
    // Refused like a TCP connect is (tcp-transport.ts): a typed error at the edge.
    if (!accept) throw new NodeUnavailableError(`connecting to ${host}:${port} (memory) was refused: nothing listens there`);
    const [client, server] = memoryTransportPair(`memory:${host}:${port}`, 'memory:client');
    accept(server);
    return client;
  };
}
