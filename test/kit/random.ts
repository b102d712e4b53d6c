/**
 * Seeded pseudo-random inputs for tests of every tier (mulberry32). Without a
 * seed each run draws one, so runs explore different inputs; a failing test
 * prints the seed, and `TEST_SEED=<seed>` replays exactly its inputs.
 */
import { onTestFailed } from 'vitest';

export interface Random {
  /** A float in [0, 1). */
  (): number;
  /** An integer in [0, below). */
  int(below: number): number;
  /** `n` bytes. */
  bytes(n: number): Buffer;
  readonly seed: number;
}

/** A generator seeded with `seed`, else `TEST_SEED`, else a fresh seed. Call it inside a test: a failure then names the seed. */
export function seededRandom(seed?: number): Random {
  const chosen = (seed ?? (process.env.TEST_SEED ? Number(process.env.TEST_SEED) : Math.floor(Math.random() * 2 ** 32))) >>> 0;
  onTestFailed(() => console.error(`random inputs of this test came from seed ${chosen}; replay them with TEST_SEED=${chosen}`));
  let state = chosen;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (below: number) => Math.floor(next() * below);
  const bytes = (n: number) => {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  return Object.assign(next, { int, bytes, seed: chosen });
}
