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
        const qmp = new Qmp(socket);
        const reply = await qmp.execute('qmp_capabilities');
        if (!reply.error) return qmp;
        socket.destroy();
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return undefined;
  }

  execute(command: string): Promise<{ return?: unknown; error?: { desc: string } }> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#socket.write(`${JSON.stringify({ execute: command })}\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

