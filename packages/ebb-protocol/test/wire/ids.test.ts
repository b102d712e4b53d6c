import { describe, expect, it } from 'vitest';
import {
  EbbError,
  FIRST_LOCAL_ID,
  FIRST_STATIC_ID,
  GLOBAL_ID_MAP_ID,
  HOSTED_ID_SPACE,
  IDS_PER_SPACE,
  IdAllocator,
  IdConflictError,
  IdSpaceAllocator,
  IdSpaceExhaustedError,
  LAST_LOCAL_ID,
  LAST_STATIC_ID,
  MAX_ID_SPACE,
  StaticIdRegistry,
  fnv1a32,
  idSpaceOf,
  isEbbId,
  isGlobalId,
  isLocalId,
  isStaticId,
  spaceBase,
  staticIdFor,
} from '@ebbrt/ebb-protocol/internal';
import { thrown } from '../helpers.js';

describe('id ranges', () => {
  it('pins the layout of the 32-bit id space', () => {
    expect(GLOBAL_ID_MAP_ID).toBe(0);
    expect([FIRST_LOCAL_ID, LAST_LOCAL_ID]).toEqual([1, 0x7fff]);
    expect([FIRST_STATIC_ID, LAST_STATIC_ID]).toEqual([0x8000, 0xffff]);
    expect(IDS_PER_SPACE).toBe(0x10000);
    expect(HOSTED_ID_SPACE).toBe(1);
    expect(MAX_ID_SPACE).toBe(0xffff);
  });

  it('isEbbId accepts exactly the unsigned 32-bit integers', () => {
    for (const ok of [0, 1, 0x7fff, 0xffff, 0x10000, 0xffffffff]) expect(isEbbId(ok), String(ok)).toBe(true);
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN, Infinity, '1', null, undefined, 1n]) expect(isEbbId(bad), String(bad)).toBe(false);
  });

  it('classifies ids at every range boundary', () => {
    const cls = (id: number) => [isLocalId(id), isStaticId(id), isGlobalId(id)];
    expect(cls(0)).toEqual([false, false, false]); // the GlobalIdMap
    expect(cls(1)).toEqual([true, false, false]);
    expect(cls(0x7fff)).toEqual([true, false, false]);
    expect(cls(0x8000)).toEqual([false, true, false]);
    expect(cls(0xffff)).toEqual([false, true, false]);
    expect(cls(0x10000)).toEqual([false, false, true]);
    expect(cls(0xffffffff)).toEqual([false, false, true]);
  });

  it('idSpaceOf and spaceBase are inverse on block boundaries', () => {
    expect(idSpaceOf(0)).toBe(0);
    expect(idSpaceOf(0xffff)).toBe(0);
    expect(idSpaceOf(0x10000)).toBe(1);
    expect(idSpaceOf(0x1ffff)).toBe(1);
    expect(idSpaceOf(0x20000)).toBe(2);
    expect(idSpaceOf(0xffffffff)).toBe(0xffff);
    expect(spaceBase(1)).toBe(0x10000);
    expect(spaceBase(2)).toBe(0x20000);
    expect(spaceBase(0x8000)).toBe(0x80000000); // unsigned, not -2147483648
    expect(spaceBase(0xffff)).toBe(0xffff0000);
    for (let space = 1; space <= MAX_ID_SPACE; space += 97) {
      expect(idSpaceOf(spaceBase(space))).toBe(space);
      expect(idSpaceOf(spaceBase(space) + 0xffff)).toBe(space);
    }
  });

  it('spaceBase rejects spaces outside 1..0xFFFF', () => {
    for (const bad of [0, -1, 0x10000, 1.5, Number.NaN]) expect(() => spaceBase(bad), String(bad)).toThrow(RangeError);
  });
});

describe('static ids', () => {
  it('are 0x8000 | (fnv1a32(name) & 0x7FFF), pinned for a few names', () => {
    expect(staticIdFor('Printer')).toBe(0xbc9f);
    expect(staticIdFor('Counter')).toBe(0xb3c3);
    expect(staticIdFor('Echo')).toBe(0xeba4);
    expect(staticIdFor('Memcached')).toBe(0x96e8);
    expect(staticIdFor('日本')).toBe(0xee51);
  });

  it('are deterministic and always in the static range', () => {
    for (let i = 0; i < 20_000; i++) {
      const name = `Ebb${i}.${i * 7919}`;
      const id = staticIdFor(name);
      expect(id).toBe(staticIdFor(name));
      expect(id).toBe(0x8000 | (fnv1a32(name) & 0x7fff));
      if (!isStaticId(id)) expect.unreachable(`${name} → ${id}`);
    }
  });

  it('reject empty or non-string names', () => {
    expect(() => staticIdFor('')).toThrow(TypeError);
    expect(() => staticIdFor(42 as unknown as string)).toThrow(TypeError);
  });

  it('StaticIdRegistry: a name may claim its id again; a colliding name is an IdConflictError', () => {
    // Brute-force two names that hash to the same static id (birthday bound: ~230 tries).
    const seen = new Map<number, string>();
    let a = '';
    let b = '';
    for (let i = 0; !b; i++) {
      const name = `Collide${i}`;
      const id = staticIdFor(name);
      const other = seen.get(id);
      if (other) [a, b] = [other, name];
      else seen.set(id, name);
    }
    expect(staticIdFor(a)).toBe(staticIdFor(b));

    const registry = new StaticIdRegistry();
    const id = registry.claim(a);
    expect(id).toBe(staticIdFor(a));
    expect(registry.claim(a)).toBe(id);
    const err = thrown(() => registry.claim(b));
    expect(err).toBeInstanceOf(IdConflictError);
    expect(err).toBeInstanceOf(EbbError);
    expect((err as IdConflictError).code).toBe('ID_CONFLICT');
    // the first owner keeps the id
    expect(registry.nameOf(id)).toBe(a);
    expect(registry.claim(a)).toBe(id);
    expect(registry.nameOf(0x8000 | ((id + 1) & 0x7fff))).toBeUndefined();
  });
});

describe('IdAllocator', () => {
  it('local(): node-local ids above the reserved system ids', () => {
    const local = IdAllocator.local();
    expect([local.first, local.last]).toEqual([0x100, 0x7fff]);
    expect(local.allocate()).toBe(0x100);
    expect(local.allocate()).toBe(0x101);
    const all = IdAllocator.local(0);
    expect([all.first, all.last]).toEqual([1, 0x7fff]);
    expect(all.allocate()).toBe(1);
    expect(IdAllocator.local(16).allocate()).toBe(17);
  });

  it('global(space): one 65536-id block per space', () => {
    const hosted = IdAllocator.global(1);
    expect([hosted.first, hosted.last]).toEqual([0x10000, 0x1ffff]);
    expect(hosted.allocate()).toBe(0x10000);
    const native = IdAllocator.global(2);
    expect([native.first, native.last]).toEqual([0x20000, 0x2ffff]);
    expect(native.allocate()).toBe(0x20000);
    const top = IdAllocator.global(0xffff);
    expect([top.first, top.last]).toEqual([0xffff0000, 0xffffffff]);
    for (const bad of [0, 0x10000, -1, 2.5]) expect(() => IdAllocator.global(bad), String(bad)).toThrow(RangeError);
  });

  it('hands out ascending fresh ids, counts them, and reuses freed ones', () => {
    const ids = new IdAllocator(10, 20);
    expect([ids.allocate(), ids.allocate(), ids.allocate()]).toEqual([10, 11, 12]);
    expect(ids.size).toBe(3);
    ids.free(11);
    expect(ids.size).toBe(2);
    expect(ids.allocate()).toBe(11);
    ids.free(10);
    ids.free(12);
    const again = [ids.allocate(), ids.allocate()].sort((x, y) => x - y);
    expect(again).toEqual([10, 12]);
    expect(ids.allocate()).toBe(13);
  });

  it('never hands out an id that is still allocated', () => {
    const ids = new IdAllocator(0x10000, 0x10000 + 99);
    const live = new Set<number>();
    let seed = 1;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      if (live.size > 0 && (live.size === 100 || seed % 3 === 0)) {
        const victim = [...live][seed % live.size];
        ids.free(victim);
        live.delete(victim);
      } else {
        const id = ids.allocate();
        expect(live.has(id)).toBe(false);
        expect(id >= ids.first && id <= ids.last).toBe(true);
        live.add(id);
      }
      expect(ids.size).toBe(live.size);
    }
  });

  it('exhaustion is an IdSpaceExhaustedError with code ID_SPACE_EXHAUSTED; freeing makes room again', () => {
    const ids = new IdAllocator(1, 3, 'the test range');
    expect([ids.allocate(), ids.allocate(), ids.allocate()]).toEqual([1, 2, 3]);
    const err = thrown(() => ids.allocate());
    expect(err).toBeInstanceOf(IdSpaceExhaustedError);
    expect(err).toBeInstanceOf(EbbError);
    expect((err as IdSpaceExhaustedError).code).toBe('ID_SPACE_EXHAUSTED');
    ids.free(2);
    expect(ids.allocate()).toBe(2);
    expect(thrown(() => ids.allocate())).toBeInstanceOf(IdSpaceExhaustedError);
  });

  it('a whole global space can be allocated, then is exhausted', () => {
    const ids = IdAllocator.global(3);
    for (let i = 0; i < IDS_PER_SPACE; i++) ids.allocate();
    expect(ids.size).toBe(IDS_PER_SPACE);
    expect((thrown(() => ids.allocate()) as EbbError).code).toBe('ID_SPACE_EXHAUSTED');
  });

  it('reserve() marks ids used; the ids it skipped stay allocatable', () => {
    const ids = new IdAllocator(100, 109);
    ids.reserve(104);
    ids.reserve(100);
    const rest = Array.from({ length: 8 }, () => ids.allocate());
    expect(rest.sort((x, y) => x - y)).toEqual([101, 102, 103, 105, 106, 107, 108, 109]);
    expect(ids.size).toBe(10);
    expect(thrown(() => ids.allocate())).toBeInstanceOf(IdSpaceExhaustedError);
    // reserving a freed id takes it out of the free list
    ids.free(107);
    ids.reserve(107);
    expect(thrown(() => ids.allocate())).toBeInstanceOf(IdSpaceExhaustedError);
  });

  it('reserve() and free() reject ids they do not own', () => {
    const ids = new IdAllocator(100, 109);
    const id = ids.allocate();
    expect(thrown(() => ids.reserve(id))).toBeInstanceOf(IdConflictError);
    expect((thrown(() => ids.reserve(id)) as EbbError).code).toBe('ID_CONFLICT');
    expect(() => ids.reserve(99)).toThrow(RangeError);
    expect(() => ids.reserve(110)).toThrow(RangeError);
    expect(() => ids.free(105)).toThrow(RangeError);
    ids.free(id);
    expect(() => ids.free(id)).toThrow(RangeError);
  });

  it('rejects invalid ranges', () => {
    expect(() => new IdAllocator(5, 4)).toThrow(RangeError);
    expect(() => new IdAllocator(-1, 4)).toThrow(RangeError);
    expect(() => new IdAllocator(0, 2 ** 32)).toThrow(RangeError);
    expect(() => new IdAllocator(0.5, 4)).toThrow(RangeError);
    expect(new IdAllocator(7, 7).allocate()).toBe(7);
  });
});

describe('IdSpaceAllocator', () => {
  it('hands out spaces 2, 3, … (1 is the hosted frontend) and takes them back', () => {
    const spaces = new IdSpaceAllocator();
    expect(spaces.allocate()).toBe(2);
    expect(spaces.allocate()).toBe(3);
    spaces.reserve(5);
    expect(spaces.allocate()).toBe(4);
    expect(spaces.allocate()).toBe(6);
    spaces.free(3);
    expect(spaces.allocate()).toBe(3);
    expect(() => spaces.reserve(HOSTED_ID_SPACE)).toThrow(RangeError);
    expect(() => spaces.reserve(MAX_ID_SPACE + 1)).toThrow(RangeError);
    expect(thrown(() => spaces.reserve(2))).toBeInstanceOf(IdConflictError);
    expect(() => spaces.free(100)).toThrow(RangeError);
  });

  it('is exhausted after 65534 spaces', () => {
    const spaces = new IdSpaceAllocator();
    let last = 0;
    for (let i = 0; i < MAX_ID_SPACE - HOSTED_ID_SPACE; i++) last = spaces.allocate();
    expect(last).toBe(MAX_ID_SPACE);
    const err = thrown(() => spaces.allocate());
    expect(err).toBeInstanceOf(IdSpaceExhaustedError);
    expect((err as EbbError).code).toBe('ID_SPACE_EXHAUSTED');
  });
});
