/**
 * TCP adapter of {@link Transport} over node:net. Raw Node errors are
 * translated at this edge (ECONNREFUSED, EPIPE… become {@link NodeUnavailableError}
 * with the original as `cause`).
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import type tlsModule from 'node:tls';
import { NodeUnavailableError } from '../wire/errors.js';
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

/**
 * TLS for the messenger (optional): every node presents `cert`/`key` and
 * accepts only peers whose certificate `ca` signed, in both directions
 * (mutual TLS); clients also check the server's certificate names the address
 * they dialed (a SAN `IP:` or `DNS:` entry). PEM text. The HMAC handshake
 * still runs inside: TLS adds privacy and integrity on the wire.
 */
export interface MessengerTls {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

const requireBuiltin = createRequire(import.meta.url);
/** node:tls, loaded on first use: a node without TLS (and a core on its way to its first listen) does not compile it. */
const tls = () => requireBuiltin('node:tls') as typeof tlsModule;

/** Opens a TCP (or, with `tlsOptions`, TLS) connection; refusal, timeouts and TLS failures become {@link NodeUnavailableError}. */
export function connectTcp(host: string, port: number, timeoutMs = 5000, tlsOptions?: MessengerTls): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = tlsOptions
      ? tls().connect({ host, port, cert: tlsOptions.cert, key: tlsOptions.key, ca: tlsOptions.ca, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NodeUnavailableError(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpTransport(socket));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new NodeUnavailableError(`cannot connect to ${host}:${port} (${error.code ?? error.message}); is the node running and listening there?`, {
          cause: error,
        }),
      );
    });
  });
}

/** Options of {@link listenTcp}. */
export interface ListenTcpOptions {
  /** Address to bind; default `127.0.0.1` (loopback only unless configured). */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
  /** Listen on an already-listening socket's file descriptor (per-core listening, docs/architecture.md, Cores). */
  fd?: number;
  /** Serve TLS (mutual: clients must present a certificate `ca` signed). Default: plain TCP. */
  tls?: MessengerTls;
}

/** A listening TCP server handing each accepted socket over as a {@link Transport}. */
export function listenTcp(options: ListenTcpOptions, onTransport: (t: Transport) => void): Promise<TransportServer & { server: net.Server; fd: number }> {
  return new Promise((resolve, reject) => {
    const server = options.tls
      ? tls().createServer(
          {
            noDelay: true,
            cert: options.tls.cert,
            key: options.tls.key,
            ca: options.tls.ca,
            requestCert: true,
            rejectUnauthorized: true,
            handshakeTimeout: 5000,
          },
          (socket) => onTransport(new TcpTransport(socket)),
        )
      : net.createServer({ noDelay: true }, (socket) => onTransport(new TcpTransport(socket)));
    // A client that fails the TLS handshake (no certificate, a foreign CA, plain bytes) is dropped by node:tls; nothing reaches the messenger.
    server.on('tlsClientError', () => undefined);
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
