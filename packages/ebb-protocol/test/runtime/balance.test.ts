import { describe, expect, it } from 'vitest';
import { InFlightBalancer, leastOutstanding, type BalanceCandidate, type CountedCandidate } from '@ebbrt/ebb-protocol';
import { seededRandom } from '../../../../test/kit/random.js';

interface Core extends BalanceCandidate {
  name: string;
  outstanding: number;
}

const cores = (...loads: number[]): Core[] => loads.map((outstanding, i) => ({ name: `c${i}`, outstanding }));

describe('leastOutstanding', () => {
  it('returns undefined when there is no candidate', () => {
    expect(leastOutstanding({ seq: 0 }, [])).toBeUndefined();
  });

  it('picks the candidate with the fewest calls in flight, wherever it is', () => {
    expect(leastOutstanding({ seq: 0 }, cores(3, 1, 2))?.name).toBe('c1');
    expect(leastOutstanding({ seq: 5 }, cores(3, 2, 0))?.name).toBe('c2');
    expect(leastOutstanding({ seq: 2 }, cores(0, 9, 9))?.name).toBe('c0');
  });

  it('rotates among equally loaded candidates with seq', () => {
    const list = cores(1, 4, 1, 1);
    const picks = [0, 1, 2, 3, 4, 5, 6, 7].map((seq) => leastOutstanding({ seq }, list)?.name);
    expect(picks).toEqual(['c0', 'c2', 'c2', 'c3', 'c0', 'c2', 'c2', 'c3']);
    const idle = cores(0, 0, 0);
    expect([0, 1, 2, 3].map((seq) => leastOutstanding({ seq }, idle)?.name)).toEqual(['c0', 'c1', 'c2', 'c0']);
  });

  it('skips full candidates and returns undefined when all are full', () => {
    expect(leastOutstanding({ seq: 0, maxOutstanding: 2 }, cores(2, 5, 1))?.name).toBe('c2');
    expect(leastOutstanding({ seq: 0, maxOutstanding: 2 }, cores(2, 3, 2))).toBeUndefined();
    expect(leastOutstanding({ seq: 0, maxOutstanding: 0 }, cores(0))).toBeUndefined();
  });

  it('treats odd seq values as a start position, never as an error', () => {
    const list = cores(0, 0, 0);
    expect(leastOutstanding({ seq: -1 }, list)?.name).toBe('c2');
    expect(leastOutstanding({ seq: 4.9 }, list)?.name).toBe('c1');
    expect(leastOutstanding({ seq: Number.NaN }, list)?.name).toBe('c0');
    expect(leastOutstanding({ seq: Number.MAX_SAFE_INTEGER }, list)?.name).toBe(`c${Number.MAX_SAFE_INTEGER % 3}`);
  });

  it('is pure: same inputs, same choice; candidates are not modified', () => {
    const list = cores(2, 1, 1, 3);
    const before = JSON.stringify(list);
    const first = leastOutstanding({ seq: 7 }, list);
    expect(leastOutstanding({ seq: 7 }, list)).toBe(first);
    expect(JSON.stringify(list)).toBe(before);
  });

  it('property: the choice is always a non-full candidate of minimal load (1000 random cases)', () => {
    const random = seededRandom();
    for (let trial = 0; trial < 1000; trial++) {
      const n = Math.floor(random() * 8);
      const list = cores(...Array.from({ length: n }, () => Math.floor(random() * 6)));
      const maxOutstanding = random() < 0.5 ? undefined : Math.floor(random() * 6);
      const seq = Math.floor(random() * 1000);
      const choice = leastOutstanding({ seq, maxOutstanding }, list);
      const open = list.filter((c) => c.outstanding < (maxOutstanding ?? Infinity));
      if (open.length === 0) {
        expect(choice).toBeUndefined();
        continue;
      }
      expect(choice).toBeDefined();
      expect(list).toContain(choice);
      expect(choice!.outstanding).toBe(Math.min(...open.map((c) => c.outstanding)));
    }
  });

  it('spreads a stream of calls evenly when each settles before the next (seq rotation)', () => {
    const list = cores(0, 0, 0, 0);
    const counts = new Map<string, number>();
    for (let seq = 0; seq < 400; seq++) {
      const choice = leastOutstanding({ seq }, list)!;
      counts.set(choice.name, (counts.get(choice.name) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([100, 100, 100, 100]);
  });

  it('keeps in-flight calls even when calls pile up (outstanding counts maintained by the caller)', () => {
    const list = cores(0, 0, 0);
    for (let seq = 0; seq < 30; seq++) leastOutstanding({ seq }, list)!.outstanding++;
    expect(list.map((c) => c.outstanding)).toEqual([10, 10, 10]);
  });
});

describe('InFlightBalancer', () => {
  const counted = (n: number): (CountedCandidate & { name: string })[] =>
    Array.from({ length: n }, (_, i) => ({ name: `c${i}`, outstanding: 0, calls: 0, errors: 0 }));

  it('counts a call on its target from placement until it settles; failures count as errors', async () => {
    const list = counted(2);
    const balancer = new InFlightBalancer();
    let release!: (value: string) => void;
    const first = balancer.place(list, () => new Promise<string>((resolve) => (release = resolve)))!;
    expect(first.target.name).toBe('c0');
    expect(list.map((c) => [c.outstanding, c.calls])).toEqual([
      [1, 1],
      [0, 0],
    ]);
    const second = balancer.place(list, () => Promise.reject(new Error('boom')))!;
    expect(second.target.name).toBe('c1');
    await expect(second.result).rejects.toThrow('boom');
    const third = balancer.place(list, () => {
      throw new Error('sync');
    })!;
    await expect(third.result).rejects.toThrow('sync');
    release('done');
    await expect(first.result).resolves.toBe('done');
    expect(list.map(({ outstanding, calls, errors }) => ({ outstanding, calls, errors }))).toEqual([
      { outstanding: 0, calls: 1, errors: 0 },
      { outstanding: 0, calls: 2, errors: 2 },
    ]);
  });

  it('places nothing when there is no candidate or every one is full', () => {
    const balancer = new InFlightBalancer(1);
    expect(balancer.place([], () => Promise.resolve())).toBeUndefined();
    const list = counted(1);
    expect(balancer.place(list, () => new Promise(() => undefined))).toBeDefined();
    let called = false;
    expect(
      balancer.place(list, () => {
        called = true;
        return Promise.resolve();
      }),
    ).toBeUndefined();
    expect(called).toBe(false);
  });
});
