/**
 * Where a node's services are reachable from outside it. A process native
 * serves on the host, so a socket bound at `host:port` is reachable there. A
 * VM native is behind its own network interface; the qemu backend tells it
 * how it is reached (`--services`, `ebbrt.services` on the kernel command line):
 *
 * - `forward:<serial device>` (network mode `user`): the VM has no address of
 *   its own; each listener is forwarded from a host port, which the host
 *   side sets up (QMP `hostfwd_add`) when asked over a dedicated serial port
 *   and answers with the host address. The serial port is the channel because
 *   nothing but this guest can write to it.
 * - `address:<ip>` (network mode `tap`): the VM has its own address on a
 *   bridge; a listener is reachable at that address, unforwarded.
 *
 * Either way an app's request to bind loopback (or any address) binds every
 * interface of the VM: inside a VM native, "this host" is the VM, and its
 * only way in is its network interface.
 */
import { openSync } from 'node:fs';
import tty from 'node:tty';
import { BootConfigError, isThisMachine } from '@ebbrt/ebb-protocol/node';
import { localExposure, NodeServiceError, type ServiceExposure } from './shared.js';

/** The exposure a `--services` value names (`local`, `forward:<device>`, `address:<ip>`). */
export function parseExposure(value: string | undefined): ServiceExposure {
  if (value === undefined || value === 'local') return localExposure;
  const colon = value.indexOf(':');
  const kind = colon < 0 ? value : value.slice(0, colon);
  const rest = colon < 0 ? '' : value.slice(colon + 1);
  if (kind === 'address' && /^[0-9a-fA-F.:]+$/.test(rest))
    return vmExposure(
      async (port) => `${rest}:${port}`,
      async () => undefined,
    );
  if (kind === 'forward' && rest.startsWith('/dev/')) {
    const channel = new ForwardChannel(rest);
    return vmExposure(
      (port, asked) => channel.forward(port, asked),
      (port) => channel.remove(port),
    );
  }
  throw new BootConfigError(`--services must be local, forward:/dev/<serial port> or address:<ip>, got "${value}"`);
}

function vmExposure(publish: (port: number, askedPort: number) => Promise<string>, withdraw: (port: number) => Promise<void>): ServiceExposure {
  return {
    bindHost: (host) => (isThisMachine(host) ? '0.0.0.0' : host),
    publish: (_host, port, askedPort) => publish(port, askedPort),
    withdraw,
  };
}

/** A line the host answers with. */
interface Reply {
  id?: unknown;
  address?: unknown;
  removed?: unknown;
  error?: unknown;
}

/** How long the host may take to set up a forward, ms (a QMP command; seconds under a loaded TCG host). */
const REPLY_TIMEOUT_MS = 15_000;
/** Longest reply line the host may send; anything longer is not ours. */
const MAX_REPLY = 256;

/**
 * The guest end of the forwarding channel: JSON lines over a serial port in
 * raw mode. `{"id":1,"guestPort":11211,"hostPort":11211}` asks for a forward
 * (hostPort 0 = any free one); the host answers `{"id":1,"address":"127.0.0.1:11211"}`
 * or `{"id":1,"error":"…"}`. `{"id":2,"guestPort":11211,"remove":true}` takes
 * the forward away (the listener closed); the host answers `{"id":2,"removed":true}`.
 */
class ForwardChannel {
  readonly #device: string;
  #io?: { input: tty.ReadStream; output: tty.WriteStream };
  #next = 1;
  readonly #waiting = new Map<number, (reply: Reply) => void>();
  #buffer = '';

  constructor(device: string) {
    this.#device = device;
  }

  async forward(guestPort: number, askedPort: number): Promise<string> {
    const reply = await this.#request({ guestPort, hostPort: askedPort }, `the forward request for port ${guestPort}`);
    if (typeof reply.address === 'string') return reply.address;
    throw new NodeServiceError('NOT_EXPOSED', `the host did not forward the port: ${String(reply.error)}`);
  }

  async remove(guestPort: number): Promise<void> {
    const reply = await this.#request({ guestPort, remove: true }, `the request to remove the forward of port ${guestPort}`);
    if (reply.removed !== true) throw new NodeServiceError('NOT_EXPOSED', `the host did not remove the forward of port ${guestPort}: ${String(reply.error)}`);
  }

  #request(body: Record<string, unknown>, what: string): Promise<Reply> {
    const io = this.#open();
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new NodeServiceError('NOT_EXPOSED', `the host did not answer ${what} within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      this.#waiting.set(id, (reply) => (clearTimeout(timer), resolve(reply)));
      io.output.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  #open(): { input: tty.ReadStream; output: tty.WriteStream } {
    if (this.#io) return this.#io;
    let fd: number;
    try {
      fd = openSync(this.#device, 'r+');
    } catch (error) {
      throw new NodeServiceError('NOT_EXPOSED', `cannot open the forwarding channel ${this.#device}: ${(error as Error).message}`, { cause: error });
    }
    const input = new tty.ReadStream(fd);
    // Raw: no echo of what we write back into what we read, no line editing.
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => this.#receive(chunk));
    // The channel must not keep the node alive once its work is done.
    input.unref();
    const output = new tty.WriteStream(fd);
    this.#io = { input, output };
    return this.#io;
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      let reply: Reply;
      try {
        reply = JSON.parse(line);
      } catch {
        continue;
      }
      const waiter = typeof reply?.id === 'number' ? this.#waiting.get(reply.id) : undefined;
      if (!waiter) continue;
      this.#waiting.delete(reply.id as number);
      waiter(reply);
    }
    if (this.#buffer.length > MAX_REPLY) this.#buffer = '';
  }
}
