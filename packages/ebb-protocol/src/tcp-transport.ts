/**
 * TCP adapter of {@link Transport} over node:net. Raw Node errors are
 * translated at this edge (ECONNREFUSED, EPIPE… become {@link NodeUnavailableError}
 * with the original as `cause`).
 */
import net from 'node:net';
import { NodeUnavailableError } from './errors.js';
import type { Transport, TransportServer } from './transport.js';

export class TcpTransport implements Transport {
  readonly socket: net.Socket;
  readonly remoteAddress: string;
  #closed = false;
  #closeError?: Error;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.on('error', (error) => {
      this.#closeError ??= new NodeUnavailableError(`connection to ${this.remoteAddress} failed: ${error.message}`, { cause: error });
    });
    socket.on('close', () => {
      this.#closed = true;
    });
  }

  get closed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  write(chunks: Buffer[]): boolean {
    if (this.closed) return false;
    if (chunks.length === 1) return this.socket.write(chunks[0]);
    // cork/uncork turns the batch into one writev syscall.
    this.socket.cork();
    let ok = true;
    for (const chunk of chunks) ok = this.socket.write(chunk);
    this.socket.uncork();
    return ok;
  }

  onData(handler: (chunk: Buffer) => void): void {
    this.socket.on('data', handler);
  }

  onDrain(handler: () => void): void {
    this.socket.on('drain', handler);
  }

  onClose(handler: (error?: Error) => void): void {
    this.socket.on('close', () => handler(this.#closeError));
  }

  close(reason?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (reason) this.#closeError ??= reason;
    // end() flushes what is queued (a Reject or Goodbye) before the FIN.
    this.socket.end();
    this.socket.setTimeout(1000, () => this.socket.destroy());
  }
}

/** Opens a TCP connection; refusal and timeouts become {@link NodeUnavailableError}. */
export function connectTcp(host: string, port: number, timeoutMs = 5000): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NodeUnavailableError(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpTransport(socket));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new NodeUnavailableError(`cannot connect to ${host}:${port} (${error.code ?? error.message}); is the node running and listening there?`, { cause: error }));
    });
  });
}

/** Options of {@link listenTcp}. */
export interface ListenTcpOptions {
  /** Address to bind; default `127.0.0.1` (loopback only unless configured). */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
  /** Listen on an already-listening socket's file descriptor (per-core listening, DESIGN §5). */
  fd?: number;
}

/** A listening TCP server handing each accepted socket over as a {@link Transport}. */
export function listenTcp(options: ListenTcpOptions, onTransport: (t: Transport) => void): Promise<TransportServer & { server: net.Server; fd: number }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, (socket) => onTransport(new TcpTransport(socket)));
    server.once('error', reject);
    const ready = () => {
      server.removeListener('error', reject);
      server.on('error', () => undefined);
      const address = server.address() as net.AddressInfo;
      const handle = (server as unknown as { _handle?: { fd?: number } })._handle;
      resolve({
        server,
        fd: handle?.fd ?? -1,
        address: { host: options.host ?? address.address, port: address.port },
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    };
    if (options.fd !== undefined) server.listen({ fd: options.fd }, ready);
    else server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, ready);
  });
}
