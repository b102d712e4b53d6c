/**
 * The PingPong Ebb shared by both sides: a dynamically allocated `multicore`
 * Ebb. The frontend creates it with `rt.createEbb(PingPongEbb)`, which takes a
 * fresh global id and records `{ type: 'PingPong' }` for it in the
 * GlobalIdMap. No native is told the id: the first ping that reaches a native
 * core names an Ebb that core has never seen, so the core reads the record,
 * finds the type among the definitions its app module loaded, and faults its
 * rep in (EbbRT's remote fault). That rep answers every ping with a pong.
 */
import { defineEbb, type EbbRuntime, type MessageSource, type RepContext } from '@ebbrt/ebb-protocol';

/** What a pong carries back (also the result of the call form `ping(seq)`). */
export interface Pong {
  seq: number;
  /** Node and core whose rep answered. */
  nodeId: number;
  core: number;
  /**
   * True when the answering core's GlobalIdMap client holds the Ebb's record:
   * the proof that the rep was faulted in from the record the frontend wrote,
   * since the native app never names the id itself.
   */
  viaIdMap: boolean;
}

/** One-way messages between reps: pings go to natives, pongs come back. */
export type PingPongMessage = { t: 'ping'; seq: number } | ({ t: 'pong' } & Pong);

export interface PingPong {
  /** Call form of a ping: answers with what a pong message would carry. */
  ping(seq: number): Pong;
}

/** Every core's rep: natives answer pings; the frontend's rep matches pongs to waiting pings. */
export class PingPongRep implements PingPong {
  readonly #rt: EbbRuntime;
  readonly #id: number;
  readonly #viaIdMap: boolean;
  readonly #waiting = new Map<number, (pong: Pong) => void>();

  constructor(ctx: RepContext) {
    this.#rt = ctx.runtime;
    this.#id = ctx.id;
    // Read once, at fault time: is the record in this core's id-map cache?
    this.#viaIdMap = ctx.runtime.idMap.peek(ctx.id) !== undefined;
  }

  ping(seq: number): Pong {
    return { seq, nodeId: this.#rt.nodeId, core: this.#rt.core, viaIdMap: this.#viaIdMap };
  }

  /** Delivered by the runtime for every one-way message to this Ebb on this core. */
  onMessage(message: PingPongMessage, from: MessageSource): Promise<void> | void {
    if (message.t === 'ping') {
      // Answer the core that pinged; the returned promise lets the runtime report a failed send.
      const pong: PingPongMessage = { t: 'pong', ...this.ping(message.seq) };
      return this.#rt.send(this.#rt.ref(PingPongEbb, this.#id), from.nodeId, pong, from.core);
    }
    const { t: _t, ...pong } = message;
    this.#waiting.get(pong.seq)?.(pong);
    this.#waiting.delete(pong.seq);
  }

  /** Frontend side: resolves with the pong for `seq`, or rejects after `timeoutMs`. */
  expect(seq: number, timeoutMs: number): Promise<Pong> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(seq);
        reject(new Error(`no pong for ping ${seq} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(seq, (pong) => {
        clearTimeout(timer);
        resolve(pong);
      });
    });
  }
}

export const PingPongEbb = defineEbb<PingPong, PingPongMessage>({
  name: 'PingPong',
  policy: 'multicore',
  methods: ['ping'],
  create: (ctx) => new PingPongRep(ctx),
});
