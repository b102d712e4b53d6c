/**
 * The progress display of `ebbrt up`: one line per node group with how many
 * nodes boot, joined and failed. On a terminal the block is redrawn in place;
 * elsewhere (logs, CI, tests) a group's line is printed each time it changes.
 */
import type { GroupView } from './view.js';

export function groupLine(group: GroupView): string {
  const done = group.joined + group.failed + group.left === group.count && group.booting === 0;
  const mark = group.failed > 0 ? '✗' : done ? '✓' : '…';
  return `${mark} ${group.name.padEnd(12)} ${`${group.backend}`.padEnd(8)} ${group.app.padEnd(14)} ${group.joined}/${group.count} joined, ${group.booting} booting, ${group.failed} failed`;
}

export class ProgressBoard {
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly #last = new Map<string, string>();
  #drawn = 0;

  constructor(out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr) {
    this.#out = out;
  }

  update(groups: readonly GroupView[]): void {
    const lines = groups.map(groupLine);
    if (this.#out.isTTY) {
      // Move up over the previous block and rewrite it line by line.
      const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : '';
      this.#out.write(`${up}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
      this.#drawn = lines.length;
      return;
    }
    for (const [i, group] of groups.entries()) {
      if (this.#last.get(group.name) === lines[i]) continue;
      this.#last.set(group.name, lines[i]);
      this.#out.write(`${lines[i]}\n`);
    }
  }

  /** Prints a line below the block (the block is not redrawn over it). */
  line(text: string): void {
    this.#out.write(`${text}\n`);
    this.#drawn = 0;
  }
}
