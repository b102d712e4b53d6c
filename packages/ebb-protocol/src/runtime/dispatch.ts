/**
 * Work the messenger hands a core's runtime: calls and messages that arrived
 * from other nodes or cores, already decoded. The runtime's side of the
 * messenger's {@link Dispatcher} interface, counting what it serves.
 */
import type { CallLedger } from './call-ledger.js';
import type { MessageSource } from './ebb.js';
import type { Dispatcher } from '../messenger/messenger.js';
import type { EbbRuntime } from './runtime.js';

export class RuntimeDispatcher implements Dispatcher {
  readonly #runtime: EbbRuntime;
  readonly #ledger: CallLedger;

  constructor(runtime: EbbRuntime, ledger: CallLedger) {
    this.#runtime = runtime;
    this.#ledger = ledger;
  }

  call(ebbId: number, code: number, args: unknown[]): unknown {
    this.#ledger.totals.servedCalls++;
    return this.#runtime.invoke(ebbId, code, args);
  }

  served(ebbId: number, startedMs: number, failed: boolean): void {
    this.#ledger.served(ebbId, startedMs, failed, this.#runtime.isDefined(ebbId));
  }

  message(ebbId: number, message: unknown, from: MessageSource): void {
    this.#runtime.deliver(ebbId, message, from);
  }

  messageFailed(error: unknown, ebbId: number): void {
    this.#runtime.messageFailed(error, ebbId);
  }

  describe(ebbId: number, code: number): string {
    return this.#runtime.describe(ebbId, code);
  }
}
