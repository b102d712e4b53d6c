/**
 * The Printer Ebb shared by both sides (EbbRT's helloworld): a `home` Ebb
 * whose one rep lives on the hosted node; natives get forwarding proxies.
 */
import { defineEbb } from '@ebbrt/ebb-protocol';

export interface Printer {
  /** Prints one line on the frontend's stdout. */
  print(line: string): Promise<void>;
}

/** Lines printed so far, and who waits for a count (hosted side only). */
export class PrinterRep implements Printer {
  readonly lines: string[] = [];
  #waiters: { count: number; resolve(): void }[] = [];

  async print(line: string): Promise<void> {
    if (typeof line !== 'string') throw new TypeError('Printer.print(line): line must be a string');
    process.stdout.write(`${line}\n`);
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => (this.lines.length >= w.count ? (w.resolve(), false) : true));
  }

  /** Resolves once `count` lines were printed. */
  waitFor(count: number): Promise<void> {
    if (this.lines.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }
}

export const PrinterEbb = defineEbb<Printer>({
  name: 'Printer',
  policy: 'home',
  home: 'hosted',
  methods: ['print'],
  create: () => new PrinterRep(),
});
