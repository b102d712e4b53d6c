import net from 'node:net';

/**
 * A minimal QMP client (QEMU's JSON control protocol over a unix socket):
 * greeting, capabilities negotiation, then one command at a time.
 */
export class Qmp {
  readonly #socket: net.Socket;
  #buffer = '';
  #waiting: ((reply: { return?: unknown; error?: { desc: string } }) => void)[] = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, nl).trim();
        this.#buffer = this.#buffer.slice(nl + 1);
        if (!line) continue;
        const message = JSON.parse(line) as { return?: unknown; error?: { desc: string }; event?: string; QMP?: unknown };
        // Greetings and asynchronous events are not replies.
        if (message.event !== undefined || message.QMP !== undefined) continue;
        this.#waiting.shift()?.(message);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const waiter of this.#waiting.splice(0)) waiter({ error: { desc: 'QMP connection closed' } });
    });
  }

  /** Connects once the socket exists; `gone` resolves if QEMU exits first. */
  static async connect(socketPath: string, gone: Promise<unknown>, timeoutMs: number): Promise<Qmp | undefined> {
    return connectWhenReady(socketPath, gone, timeoutMs, async (socket) => {
      const qmp = new Qmp(socket);
      return (await qmp.execute('qmp_capabilities')).error ? undefined : qmp;
    });
  }

  execute(command: string, args?: Record<string, unknown>): Promise<{ return?: unknown; error?: { desc: string } }> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /**
   * Runs a human-monitor command (QMP has no native command for user-network
   * port forwards: `hostfwd_add` exists only there); resolves with its output,
   * empty on success.
   */
  async human(commandLine: string): Promise<string> {
    const reply = await this.execute('human-monitor-command', { 'command-line': commandLine });
    if (reply.error) throw new Error(reply.error.desc);
    return String(reply.return ?? '');
  }

  close(): void {
    this.#socket.destroy();
  }
}

/**
 * Connects to a unix socket QEMU serves (`server=on,wait=off`) once it
 * exists, retrying until `accept` takes the connection, `gone` resolves (QEMU
 * exited) or `timeoutMs` passes.
 */
export async function connectWhenReady<T>(
  socketPath: string,
  gone: Promise<unknown>,
  timeoutMs: number,
  accept: (socket: net.Socket) => Promise<T | undefined>,
): Promise<T | undefined> {
  let exited = false;
  void gone.then(() => (exited = true));
  const deadline = performance.now() + timeoutMs;
  while (!exited && performance.now() < deadline) {
    const socket = await new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(undefined));
    });
    if (socket) {
      const accepted = await accept(socket);
      if (accepted !== undefined) return accepted;
      socket.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return undefined;
}
