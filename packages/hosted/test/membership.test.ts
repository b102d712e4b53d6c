/** FailureDetector: suspicion before death, reinstatement within the grace, on a clock the test drives. */
import { describe, expect, test } from 'vitest';
import { FailureDetector } from '../src/membership.js';

describe('FailureDetector', () => {
  test('silence: suspected after suspectAfterMs, dead after deadAfterMs, each verdict once', () => {
    const d = new FailureDetector({ suspectAfterMs: 450, deadAfterMs: 2000 });
    d.add(2, 0);
    d.add(3, 0);
    expect(d.check(400)).toEqual([]);
    d.heard(3, 400);
    expect(d.check(451)).toEqual([{ kind: 'suspect', nodeId: 2, silentMs: 451 }]);
    expect(d.suspected(2)).toBe(true);
    expect(d.check(600)).toEqual([]);
    d.heard(3, 1000);
    d.heard(3, 1900);
    expect(d.check(2001)).toEqual([{ kind: 'dead', nodeId: 2, silentMs: 2001 }]);
    expect(d.check(2400).map((v) => [v.kind, v.nodeId])).toEqual([['suspect', 3]]);
    // Checked too late for the suspicion (a stalled frontend): straight to dead.
    expect(d.check(9000).map((v) => [v.kind, v.nodeId])).toEqual([['dead', 3]]);
    expect(d.lastHeard(2)).toBeUndefined();
  });

  test('a suspected member heard from within the grace is reinstated and watched afresh', () => {
    const d = new FailureDetector({ suspectAfterMs: 450, deadAfterMs: 2000 });
    d.add(2, 0);
    expect(d.check(500)).toHaveLength(1);
    expect(d.heard(2, 1500)).toEqual({ kind: 'reinstate', nodeId: 2, silentMs: 1500 });
    expect(d.suspected(2)).toBe(false);
    expect(d.check(1900)).toEqual([]);
    expect(d.check(2000)).toEqual([{ kind: 'suspect', nodeId: 2, silentMs: 500 }]);
    // A heartbeat from a member that was never suspected is no verdict; an unknown node is ignored.
    expect(d.heard(2, 2100)).toEqual({ kind: 'reinstate', nodeId: 2, silentMs: 600 });
    expect(d.heard(2, 2200)).toBeUndefined();
    expect(d.heard(9, 2200)).toBeUndefined();
  });

  test('a 300 ms stall between 100 ms heartbeats is no suspicion at the defaults', () => {
    const d = new FailureDetector({ suspectAfterMs: 450, deadAfterMs: 2000 });
    d.add(2, 0);
    const verdicts = [];
    // Beats every 100 ms, then nothing from 1000 to 1400 (the stall plus the beat that was due), checks every 50 ms.
    for (let t = 0; t <= 3000; t += 50) {
      if (t % 100 === 0 && (t <= 1000 || t >= 1400)) d.heard(2, t);
      verdicts.push(...d.check(t));
    }
    expect(verdicts).toEqual([]);
  });

  test('options: dead must come after suspect', () => {
    expect(() => new FailureDetector({ suspectAfterMs: 500, deadAfterMs: 500 })).toThrow(TypeError);
    expect(() => new FailureDetector({ suspectAfterMs: 0, deadAfterMs: 500 })).toThrow(TypeError);
  });
});
