/**
 * A user-space TCP proxy that puts latency, jitter, loss and partitions on a
 * path, for fault tests and the `faults` bench suite (the kernel of the test
 * machines lacks netem). Every chunk read on one side is written to the other
 * after `latencyMs ± jitterMs`; with probability `lossRate` a chunk is "lost"
 * and arrives one retransmission timeout (`rtoMs`) late, which is what packet
 * loss looks like above TCP; bytes keep their order. `partition()` stops
 * forwarding in both directions without closing anything (a cable pulled:
 * the peers only notice by silence); `heal()` delivers what was held.
 *
 * Plain JavaScript so the bench suites (.mjs) can use it as they are.
 */
import net from 'node:net';

/**
 * @typedef {object} FaultSettings
 * @property {number} [latencyMs] one-way delay of every chunk (default 0)
 * @property {number} [jitterMs] uniform ± spread around latencyMs (default 0)
 * @property {number} [lossRate] probability a chunk is lost and retransmitted (default 0)
 * @property {number} [rtoMs] delay of a lost chunk's retransmission (default 200, Linux's minimum RTO)
 */

/** Chunks held per direction before the reading side is paused (bounds the proxy's memory). */
const MAX_QUEUED = 256;

export class FaultProxy {
  /** @type {net.Server} */
  #server;
  /** @type {Required<FaultSettings>} */
  #settings;
  #partitioned = false;
  /** @type {Set<() => void>} */
  #pumps = new Set();
  /** @type {Set<net.Socket>} */
  #sockets = new Set();
  /** Chunks forwarded, chunks lost (delayed by an RTO), connections accepted. */
  stats = { chunks: 0, lost: 0, connections: 0 };
  /** @type {{ host: string, port: number }} */
  address;

  /**
   * @param {{ host: string, port: number }} target where connections are forwarded
   * @param {FaultSettings & { listenHost?: string }} [options]
   */
  static async start(target, options = {}) {
    const proxy = new FaultProxy(target, options);
    await new Promise((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, options.listenHost ?? '127.0.0.1', resolve);
    });
    const { address, port } = /** @type {net.AddressInfo} */ (proxy.#server.address());
    proxy.address = { host: address, port };
    return proxy;
  }

  /** @private use {@link FaultProxy.start} */
  constructor(target, options) {
    this.#settings = { latencyMs: 0, jitterMs: 0, lossRate: 0, rtoMs: 200 };
    this.set(options);
    this.#server = net.createServer((client) => {
      this.stats.connections++;
      const upstream = net.connect(target);
      for (const socket of [client, upstream]) {
        socket.setNoDelay(true);
        socket.on('error', () => undefined);
        this.#sockets.add(socket);
        socket.once('close', () => {
          this.#sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      this.#link(client, upstream);
      this.#link(upstream, client);
    });
  }

  /** `host:port` clients connect to. */
  get url() {
    return `${this.address.host}:${this.address.port}`;
  }

  /** Changes the path's latency, jitter or loss (for chunks read from now on). @param {FaultSettings} settings */
  set(settings) {
    for (const key of ['latencyMs', 'jitterMs', 'lossRate', 'rtoMs']) {
      const value = settings[key];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (key === 'lossRate' && value > 1))
        throw new TypeError(`FaultProxy: ${key} must be a non-negative number${key === 'lossRate' ? ' ≤ 1' : ''}`);
      this.#settings[key] = value;
    }
  }

  /** Stops forwarding both ways; connections stay open and bytes are held. */
  partition() {
    this.#partitioned = true;
  }

  /** Forwards again, starting with what was held. */
  heal() {
    this.#partitioned = false;
    for (const pump of this.#pumps) pump();
  }

  /** Closes the listener and every connection through it. */
  async close() {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(() => resolve(undefined)));
  }

  /** Forwards `from` → `to` through the fault schedule. @param {net.Socket} from @param {net.Socket} to */
  #link(from, to) {
    /** @type {{ at: number, chunk: Buffer }[]} */
    const queue = [];
    let lastAt = 0;
    let ended = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const pump = () => {
      clearTimeout(timer);
      timer = undefined;
      if (this.#partitioned) return;
      const now = performance.now();
      while (queue.length > 0 && queue[0].at <= now) {
        to.write(queue.shift().chunk);
        this.stats.chunks++;
      }
      if (queue.length < MAX_QUEUED / 2 && from.isPaused()) from.resume();
      if (queue.length > 0) timer = setTimeout(pump, Math.max(0, queue[0].at - now));
      else if (ended) to.end();
    };
    this.#pumps.add(pump);
    from.on('data', (chunk) => {
      const { latencyMs, jitterMs, lossRate, rtoMs } = this.#settings;
      let at = performance.now() + latencyMs + (Math.random() * 2 - 1) * jitterMs;
      if (lossRate > 0 && Math.random() < lossRate) {
        at += rtoMs;
        this.stats.lost++;
      }
      // TCP delivers in order: a chunk never overtakes the one before it.
      at = Math.max(at, lastAt);
      lastAt = at;
      queue.push({ at, chunk });
      if (queue.length >= MAX_QUEUED) from.pause();
      if (timer === undefined) pump();
    });
    from.once('end', () => {
      ended = true;
      if (timer === undefined) pump();
    });
    from.once('close', () => {
      clearTimeout(timer);
      this.#pumps.delete(pump);
    });
  }
}
