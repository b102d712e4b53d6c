/**
 * Node services: what every core of a native node can ask of its node
 * (docs/architecture.md, Cores) — memory that all its cores share, and listening sockets that
 * all its cores accept on. An app reaches them with `nodeServices(rt)` on any
 * core; the node's supervisor thread brokers both:
 *
 * - `sharedMemory(name, bytes)`: the first request for `name` creates a
 *   zero-filled SharedArrayBuffer, later ones (from any core) get the same
 *   memory — posting a SharedArrayBuffer between threads shares it, it does not
 *   copy it. Guard what lives in it with `Atomics`.
 * - `listenShared({ host, port })`: the first core to ask binds the socket;
 *   the others listen on its file descriptor (`server.listen({ fd })`, as the
 *   messenger does), so the kernel spreads accepted connections over the cores.
 *
 * Both are per node and live as long as the node: a core's listener and its
 * connections close when the core stops, after the `onStop` hooks ran. A
 * listener closed on every core is withdrawn: on a VM native its host
 * forward goes with it.
 */
import net from 'node:net';
import { EbbError, type EbbErrorOptions } from '@ebbrt/ebb-protocol/errors';
// Type only: the supervisor imports this module before it loads the protocol stack.
import type { EbbRuntime, ServiceAddress } from '@ebbrt/ebb-protocol/internal';

/** Stable codes of {@link NodeServiceError}. */
export type NodeServiceErrorCode =
  /** `nodeServices(rt)` on a runtime that is not a native core (the frontend, a bare EbbRuntime). */
  | 'NO_NODE_SERVICES'
  /** Bad arguments (name, size, port). */
  | 'BAD_SERVICE_REQUEST'
  /** `sharedMemory(name, bytes)` with a size other than the one the name was created with. */
  | 'SHARED_MEMORY_MISMATCH'
  /** The address is taken by another process or socket. */
  | 'ADDRESS_IN_USE'
  /** Binding the address failed for another reason (permission, unknown host…). */
  | 'LISTEN_FAILED'
  /** A VM native's listener is bound but could not be made reachable from outside (the host refused or could not forward its port). */
  | 'NOT_EXPOSED';

export class NodeServiceError extends EbbError {
  constructor(code: NodeServiceErrorCode, message: string, options?: EbbErrorOptions) {
    super(code, message, options);
  }
}

/** Options of {@link NodeServices.listenShared}. */
export interface SharedListenOptions {
  /** TCP port; 0 = any free port (picked by the core that binds, then shared by the others). */
  port: number;
  /** Address to bind. Default `127.0.0.1` (loopback only unless you configure it). */
  host?: string;
  /** Name under which the cores share the socket. Default `host:port`; give one to share a port-0 socket under your own name. */
  name?: string;
  /** Disables Nagle's algorithm on accepted sockets (request/response protocols want this). Default true. */
  noDelay?: boolean;
}

/** This core's side of a shared listening socket. */
export interface SharedListener {
  /** The bound address (inside a VM native: the VM's interfaces, 0.0.0.0, for a loopback request). */
  readonly host: string;
  /** The bound port (the one picked, for port 0). */
  readonly port: number;
  /**
   * `host:port` where clients reach the listener: the bound address on a
   * process native; on a VM native the host port forwarded to it (network
   * mode `user`) or the VM's own address (mode `tap`). Print and hand out this one.
   */
  readonly address: string;
  /** True on the core that bound the socket; the other cores listen on its descriptor. */
  readonly bound: boolean;
  /** Open client connections accepted by this core. */
  readonly connections: number;
  /** Stops accepting on this core and destroys the connections it accepted. */
  close(): Promise<void>;
}

/** What a native core offers its app; get it with {@link nodeServices}. */
export interface NodeServices {
  /** This core's index. */
  readonly core: number;
  /** Number of cores of this node. */
  readonly cores: number;
  /** The node-wide SharedArrayBuffer named `name`, `bytes` long, zero-filled when first created. */
  sharedMemory(name: string, bytes: number): Promise<SharedArrayBuffer>;
  /** Accepts connections on this core from the node's shared listening socket for `host:port`; resolves once this core accepts. */
  listenShared(options: SharedListenOptions, onConnection: (socket: net.Socket) => void): Promise<SharedListener>;
  /** Runs `hook` when this core stops, before its listeners and their connections close. */
  onStop(hook: () => void | Promise<void>): void;
}

const registry = new WeakMap<object, NodeServices>();

/** The node services of the core `rt` runs on (a native core, or an inline native). */
export function nodeServices(rt: EbbRuntime): NodeServices {
  const services = registry.get(rt);
  if (!services)
    throw new NodeServiceError(
      'NO_NODE_SERVICES',
      `node ${rt.nodeId} core ${rt.core} offers no node services: only native cores do (process or inline natives), not the frontend`,
    );
  return services;
}

/** How a node's listeners are bound and where they are reachable (a VM native's are in expose.ts). */
export interface ServiceExposure {
  /** The address to bind when an app asks for `host`. */
  bindHost(host: string): string;
  /** The address (`host:port`) where a listener bound at `host:port` is reachable; `askedPort` is the port the app asked for (0 = any). */
  publish(host: string, port: number, askedPort: number): Promise<string>;
  /** The listener bound at `port` closed on every core: whatever {@link publish} set up for it goes. */
  withdraw(port: number): Promise<void>;
}

/** A process native: bound where asked, reachable where bound. */
export const localExposure: ServiceExposure = {
  bindHost: (host) => host,
  publish: async (host, port) => `${host}:${port}`,
  withdraw: async () => undefined,
};

// ---- between a core and its supervisor (internal) ----

/** A core's request to the broker. */
export type ServiceRequest =
  | { op: 'memory'; name: string; bytes: number }
  | { op: 'listen'; name: string; host: string; port: number }
  | { op: 'bound'; name: string; host: string; port: number; asked: number; fd: number }
  | { op: 'bindFailed'; name: string; code: NodeServiceErrorCode; message: string }
  /** This core stopped listening on `name`. */
  | { op: 'closed'; name: string };

/** The broker's answer. */
export type ServiceReply =
  | { memory: SharedArrayBuffer }
  /** You are the first: bind `host`, then report `bound` or `bindFailed`. */
  | { bind: true; host: string }
  /** Another core bound it: listen on `fd`; clients reach it at `address`. */
  | { fd: number; host: string; port: number; address: string }
  /** Your `bound` is recorded; clients reach the listener at `address`. */
  | { address: string }
  | { ok: true }
  | { error: { code: NodeServiceErrorCode; message: string } };

type ListenEntry =
  | { state: 'binding'; waiters: ((reply: ServiceReply) => void)[] }
  /** `cores`: how many cores listen on it; when the last one closes, the listener is withdrawn. */
  | { state: 'bound'; fd: number; host: string; port: number; address: string; cores: number };

/**
 * The node-wide side (the supervisor thread; the calling thread for inline
 * natives): one SharedArrayBuffer per name, one bound socket per name.
 */
export class ServiceBroker {
  readonly #memory = new Map<string, SharedArrayBuffer>();
  readonly #listeners = new Map<string, ListenEntry>();
  readonly #exposure: ServiceExposure;

  constructor(exposure: ServiceExposure = localExposure) {
    this.#exposure = exposure;
  }

  handle(request: ServiceRequest): Promise<ServiceReply> | ServiceReply {
    switch (request.op) {
      case 'memory': {
        const existing = this.#memory.get(request.name);
        if (existing) {
          if (existing.byteLength === request.bytes) return { memory: existing };
          return fail(
            'SHARED_MEMORY_MISMATCH',
            `shared memory "${request.name}" exists with ${existing.byteLength} bytes, not ${request.bytes}; ask for it with the size it was created with`,
          );
        }
        const memory = new SharedArrayBuffer(request.bytes);
        this.#memory.set(request.name, memory);
        return { memory };
      }
      case 'listen': {
        const entry = this.#listeners.get(request.name);
        if (!entry) {
          this.#listeners.set(request.name, { state: 'binding', waiters: [] });
          return { bind: true, host: this.#exposure.bindHost(request.host) };
        }
        if (entry.state === 'bound') {
          entry.cores++;
          return { fd: entry.fd, host: entry.host, port: entry.port, address: entry.address };
        }
        return new Promise((resolve) => entry.waiters.push(resolve));
      }
      case 'closed': {
        const entry = this.#listeners.get(request.name);
        if (entry?.state === 'bound' && --entry.cores === 0) {
          this.#listeners.delete(request.name);
          // The core need not wait for the host: its socket is closed already.
          this.#exposure
            .withdraw(entry.port)
            .catch((error: Error) => console.error(`node services: could not withdraw ${entry.address} (${request.name}): ${error.message}`));
        }
        return { ok: true };
      }
      case 'bound':
        return this.#bound(request);
      case 'bindFailed': {
        const entry = this.#listeners.get(request.name);
        this.#listeners.delete(request.name);
        if (entry?.state === 'binding') for (const waiter of entry.waiters) waiter(fail(request.code, request.message));
        return { ok: true };
      }
    }
  }

  async #bound(request: Extract<ServiceRequest, { op: 'bound' }>): Promise<ServiceReply> {
    const entry = this.#listeners.get(request.name);
    const waiters = entry?.state === 'binding' ? entry.waiters : [];
    let address: string;
    try {
      address = await this.#exposure.publish(request.host, request.port, request.asked);
    } catch (error) {
      this.#listeners.delete(request.name);
      const failed = fail('NOT_EXPOSED', `${request.host}:${request.port} is bound but not reachable from outside this node: ${(error as Error).message}`);
      for (const waiter of waiters) waiter(failed);
      return failed;
    }
    this.#listeners.set(request.name, { state: 'bound', fd: request.fd, host: request.host, port: request.port, address, cores: 1 + waiters.length });
    for (const waiter of waiters) waiter({ fd: request.fd, host: request.host, port: request.port, address });
    return { address };
  }

  /** The node's listeners (bound on some core) and where clients reach them, by name: what its heartbeats report. */
  services(): ServiceAddress[] {
    const services: ServiceAddress[] = [];
    for (const [name, entry] of this.#listeners) if (entry.state === 'bound') services.push({ name, address: entry.address });
    return services.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

function fail(code: NodeServiceErrorCode, message: string): ServiceReply {
  return { error: { code, message } };
}

/**
 * A core's {@link NodeServices}: asks the broker through `ask` (a message to
 * the supervisor thread, or a direct call for inline natives) and keeps what
 * it must close when the core stops.
 */
export class CoreServices implements NodeServices {
  readonly core: number;
  readonly cores: number;
  readonly #ask: (request: ServiceRequest) => Promise<ServiceReply> | ServiceReply;
  readonly #hooks: (() => void | Promise<void>)[] = [];
  readonly #listeners = new Set<SharedListener>();
  #stopped = false;

  constructor(runtime: EbbRuntime, ask: (request: ServiceRequest) => Promise<ServiceReply> | ServiceReply) {
    this.core = runtime.core;
    this.cores = runtime.cores;
    this.#ask = ask;
    registry.set(runtime, this);
  }

  async sharedMemory(name: string, bytes: number): Promise<SharedArrayBuffer> {
    if (typeof name !== 'string' || name.length === 0)
      throw new NodeServiceError('BAD_SERVICE_REQUEST', 'sharedMemory(name, bytes): name must be a non-empty string');
    if (!Number.isSafeInteger(bytes) || bytes < 1)
      throw new NodeServiceError('BAD_SERVICE_REQUEST', `sharedMemory(name, bytes): bytes must be a positive integer, got ${bytes}`);
    const reply = unwrap(await this.#ask({ op: 'memory', name, bytes }));
    return (reply as { memory: SharedArrayBuffer }).memory;
  }

  async listenShared(options: SharedListenOptions, onConnection: (socket: net.Socket) => void): Promise<SharedListener> {
    if (options === null || typeof options !== 'object') throw new NodeServiceError('BAD_SERVICE_REQUEST', 'listenShared(options): options must be an object');
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)
      throw new NodeServiceError('BAD_SERVICE_REQUEST', `options.port must be an integer in 0..65535, got ${options.port}`);
    if (options.host !== undefined && (typeof options.host !== 'string' || options.host.length === 0))
      throw new NodeServiceError('BAD_SERVICE_REQUEST', 'options.host must be a non-empty string');
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0))
      throw new NodeServiceError('BAD_SERVICE_REQUEST', 'options.name must be a non-empty string');
    if (typeof onConnection !== 'function')
      throw new NodeServiceError('BAD_SERVICE_REQUEST', 'listenShared(options, onConnection): onConnection must be a function');
    if (this.#stopped) throw new NodeServiceError('BAD_SERVICE_REQUEST', `core ${this.core} is stopping; it accepts no new listeners`);
    const asked = options.host ?? '127.0.0.1';
    const name = options.name ?? `${asked}:${options.port}`;
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ noDelay: options.noDelay ?? true }, (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      onConnection(socket);
    });
    const reply = unwrap(await this.#ask({ op: 'listen', name, host: asked, port: options.port }));
    let bound = false;
    let host: string;
    let port: number;
    let address: string;
    if ('bind' in reply) {
      host = reply.host;
      try {
        await listen(server, { host, port: options.port });
      } catch (error) {
        const typed = listenError(error, host, options.port);
        await this.#ask({ op: 'bindFailed', name, code: typed.code as NodeServiceErrorCode, message: typed.message });
        throw typed;
      }
      bound = true;
      port = (server.address() as net.AddressInfo).port;
      const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      try {
        address = (unwrap(await this.#ask({ op: 'bound', name, host, port, asked: options.port, fd })) as { address: string }).address;
      } catch (error) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        throw error;
      }
    } else {
      const shared = reply as { fd: number; host: string; port: number; address: string };
      ({ host, port, address } = shared);
      await listen(server, { fd: shared.fd });
    }
    const listeners = this.#listeners;
    const listener: SharedListener = {
      host,
      port,
      address,
      bound,
      get connections() {
        return sockets.size;
      },
      close: async () => {
        if (!listeners.delete(listener)) return;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await closed;
        // Not awaited: a stopping node's supervisor may answer no more.
        Promise.resolve(this.#ask({ op: 'closed', name })).catch(() => undefined);
      },
    };
    listeners.add(listener);
    return listener;
  }

  onStop(hook: () => void | Promise<void>): void {
    if (typeof hook !== 'function') throw new NodeServiceError('BAD_SERVICE_REQUEST', 'onStop(hook): hook must be a function');
    this.#hooks.push(hook);
  }

  /** Runs the stop hooks, then closes this core's listeners (called by the core's stop sequence). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const hook of this.#hooks.splice(0)) {
      try {
        await hook();
      } catch (error) {
        console.error(`[core ${this.core}] a node-services stop hook failed: ${(error as Error).stack ?? String(error)}`);
      }
    }
    await Promise.all([...this.#listeners].map((listener) => listener.close()));
  }
}

function unwrap(reply: ServiceReply): ServiceReply {
  if ('error' in reply) throw new NodeServiceError(reply.error.code, reply.error.message);
  return reply;
}

function listen(server: net.Server, options: net.ListenOptions | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      // Accept failures (EMFILE…) arrive here; the listener stays open and retries on the next connection.
      server.on('error', (error) => console.error(`node services: accepting on ${JSON.stringify(options)} failed: ${error.message}`));
      resolve();
    });
  });
}

/** Translates a bind failure at the edge: raw Node errors never reach the app. */
function listenError(error: unknown, host: string, port: number): NodeServiceError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new NodeServiceError('ADDRESS_IN_USE', `${host}:${port} is already in use; stop what listens there or pick another port (0 = any free port)`, {
      cause: error,
    });
  return new NodeServiceError(
    'LISTEN_FAILED',
    `cannot listen on ${host}:${port} (${code ?? (error as Error).message}); check the host is a local address and the port is allowed`,
    { cause: error },
  );
}
