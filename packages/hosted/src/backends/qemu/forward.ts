/**
 * Network mode `user`: the host end of a VM's port-forwarding channel. The
 * guest's node services bind each listener an app opens on the VM's
 * interface, then ask here (JSON lines on the guest's second serial port, a
 * unix socket on this side) for a host port forwarded to it; this side adds
 * the forward with QMP (`hostfwd_add`) and answers with the host address, so
 * the app learns and prints where it is really reachable. When the listener
 * closes on every core the guest asks for its removal (`hostfwd_remove`), and
 * the host port is free again.
 *
 * The guest is the peer here: its lines are bounded in length, its forwards
 * in number, and a bad line is answered (or dropped), never thrown.
 */
import type net from 'node:net';
import { freePort } from './ports.js';
import type { Qmp } from './qmp.js';

/** Forwards one VM may ask for: its apps' listening ports, not a way to exhaust the host's. */
export const MAX_FORWARDS = 64;
/** Longest request line the guest may send. */
const MAX_LINE = 256;
/** Host ports tried per request before giving up (each a lost race with another process). */
const ATTEMPTS = 3;

/** Serves forward requests from the guest on `socket` until it closes; resolves with the forwards made. */
export function serveForwards(socket: net.Socket, qmp: Qmp, hostSide: string): { forwards: () => ReadonlyMap<number, number> } {
  /** guest port → host port. */
  const forwards = new Map<number, number>();
  let buffer = '';
  // One request at a time: QMP answers in order and two forwards must not race for one host port.
  let queue: Promise<unknown> = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) queue = queue.then(() => answer(line)).then((reply) => reply && socket.write(`${JSON.stringify(reply)}\n`));
    }
    if (buffer.length > MAX_LINE) buffer = '';
  });

  async function answer(line: string): Promise<Record<string, unknown> | undefined> {
    let request: { id?: unknown; guestPort?: unknown; hostPort?: unknown; remove?: unknown } | null;
    try {
      request = JSON.parse(line);
    } catch {
      return undefined;
    }
    const { id, guestPort, hostPort, remove } = request ?? {};
    if (typeof id !== 'number') return undefined;
    if (remove === true) return isPort(guestPort, 1) ? { id, ...(await withdraw(guestPort)) } : { id, error: 'guestPort must be 1..65535' };
    if (!isPort(guestPort, 1) || !isPort(hostPort, 0)) return { id, error: 'guestPort must be 1..65535 and hostPort 0..65535' };
    const existing = forwards.get(guestPort);
    if (existing !== undefined) return { id, address: `${hostSide}:${existing}` };
    if (forwards.size >= MAX_FORWARDS) return { id, error: `at most ${MAX_FORWARDS} ports are forwarded per VM` };
    let lastError = '';
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const port = attempt === 0 && hostPort !== 0 ? hostPort : await freePort(hostSide);
      try {
        // hostfwd_add prints nothing on success and the reason otherwise.
        const output = await qmp.human(`hostfwd_add net0 tcp:${hostSide}:${port}-:${guestPort}`);
        if (output.trim() === '') {
          forwards.set(guestPort, port);
          return { id, address: `${hostSide}:${port}` };
        }
        lastError = output.trim();
      } catch (error) {
        lastError = (error as Error).message;
      }
    }
    return { id, error: `QEMU could not forward a host port to guest port ${guestPort}: ${lastError}` };
  }

  /** Removes the forward to `guestPort` (its listener closed); none is not an error. */
  async function withdraw(guestPort: number): Promise<{ removed: true } | { error: string }> {
    const port = forwards.get(guestPort);
    if (port === undefined) return { removed: true };
    try {
      // hostfwd_remove says "… removed" on success and "… not found" otherwise.
      const output = (await qmp.human(`hostfwd_remove net0 tcp:${hostSide}:${port}`)).trim();
      if (!/ removed$/.test(output)) return { error: output };
    } catch (error) {
      return { error: (error as Error).message };
    }
    forwards.delete(guestPort);
    return { removed: true };
  }

  return { forwards: () => forwards };
}

function isPort(value: unknown, min: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= 65535;
}
