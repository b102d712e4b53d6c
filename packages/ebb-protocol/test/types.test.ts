import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineEbb, type EbbDefinition, type EbbId, type EbbRef, type EbbRuntime, type MethodName, type RemoteRef } from '@ebbrt/ebb-protocol';

/**
 * Type tests of the public generics. Vitest runs
 * this file without type-checking it; the assertions are enforced by
 *
 *   npm run typecheck:tests (tsconfig.test.json type-checks every test file)
 *
 * (after `npm run build`, since `@ebbrt/ebb-protocol` resolves to dist/).
 * The runtime assertions below check the same shapes on real values.
 */

interface Store {
  /** A field: not callable through a ref. */
  readonly size: number;
  put(key: string, value: Buffer): boolean;
  take(key: string): Promise<Buffer | undefined>;
  keys(prefix?: string): string[];
  stats(): Hits | Promise<Hits>;
}

interface Hits {
  hits: number;
}

interface Note {
  text: string;
}

const StoreEbb = defineEbb<Store, Note>({
  name: 'types.test.Store',
  policy: 'shared',
  methods: ['put', 'take', 'keys', 'stats'],
  create: () => {
    const map = new Map<string, Buffer>();
    return {
      get size() {
        return map.size;
      },
      put: (key, value) => (map.set(key, value), true),
      take: async (key) => map.get(key),
      keys: (prefix = '') => [...map.keys()].filter((k) => k.startsWith(prefix)),
      stats: async () => ({ hits: 0 }),
    };
  },
});

describe('MethodName<T>', () => {
  it('is the union of the function-valued keys', () => {
    expectTypeOf<MethodName<Store>>().toEqualTypeOf<'put' | 'take' | 'keys' | 'stats'>();
    expectTypeOf<MethodName<{ a: number; b(): void }>>().toEqualTypeOf<'b'>();
  });
});

describe('EbbRef<T>', () => {
  it("exposes T's methods with their signatures and $id: number", () => {
    expectTypeOf<EbbRef<Store>['put']>().toEqualTypeOf<(key: string, value: Buffer) => boolean>();
    expectTypeOf<EbbRef<Store>['take']>().toEqualTypeOf<(key: string) => Promise<Buffer | undefined>>();
    expectTypeOf<EbbRef<Store>['keys']>().parameters.toEqualTypeOf<[prefix?: string]>();
    expectTypeOf<EbbRef<Store>['keys']>().returns.toEqualTypeOf<string[]>();
    expectTypeOf<EbbRef<Store>['$id']>().toEqualTypeOf<number>();
    expectTypeOf<EbbRef<Store>['$id']>().toEqualTypeOf<EbbId>();
  });

  it('does not expose fields, and its members are read-only', () => {
    expectTypeOf<EbbRef<Store>>().not.toHaveProperty('size');
    expectTypeOf<EbbRef<Store>>().not.toHaveProperty('onMessage');
    const assign = (ref: EbbRef<Store>) => {
      // @ts-expect-error ref members are read-only: methods cannot be replaced
      ref.put = () => false;
      // @ts-expect-error $id is read-only
      ref.$id = 1;
    };
    expect(typeof assign).toBe('function');
  });

  it('is what EbbRuntime.ref returns for a definition of T', () => {
    expectTypeOf<ReturnType<typeof ref>>().toEqualTypeOf<EbbRef<Store>>();
    function ref(rt: EbbRuntime) {
      return rt.ref(StoreEbb);
    }
    expectTypeOf<ReturnType<EbbRuntime['localRep']>>().toEqualTypeOf<object>();
    expectTypeOf<ReturnType<typeof local>>().toEqualTypeOf<Store>();
    function local(rt: EbbRuntime) {
      return rt.localRep(rt.ref(StoreEbb));
    }
  });

  it('type-checks calls: wrong argument types are compile errors', () => {
    const misuse = (ref: EbbRef<Store>) => {
      // @ts-expect-error put takes (string, Buffer)
      ref.put('k', 'not a buffer');
      // @ts-expect-error no such method
      ref.delete('k');
      const n: boolean = ref.put('k', Buffer.alloc(1));
      return n;
    };
    expect(typeof misuse).toBe('function');
  });
});

describe('RemoteRef<T>', () => {
  it('every method returns Promise<Awaited<R>> with the same parameters', () => {
    expectTypeOf<RemoteRef<Store>['put']>().toEqualTypeOf<(key: string, value: Buffer) => Promise<boolean>>();
    expectTypeOf<RemoteRef<Store>['take']>().toEqualTypeOf<(key: string) => Promise<Buffer | undefined>>();
    expectTypeOf<RemoteRef<Store>['keys']>().returns.toEqualTypeOf<Promise<string[]>>();
    // A value-or-Promise result is awaited once: Promise<Hits>, not Promise<Hits | Promise<Hits>>.
    expectTypeOf<RemoteRef<Store>['stats']>().returns.toEqualTypeOf<Promise<Hits>>();
    expectTypeOf<RemoteRef<Store>['$id']>().toEqualTypeOf<number>();
    expectTypeOf<RemoteRef<Store>>().not.toHaveProperty('size');
  });

  it('is what EbbRuntime.remote, onCore return', () => {
    function remote(rt: EbbRuntime) {
      return rt.remote(StoreEbb, 2);
    }
    function onCore(rt: EbbRuntime) {
      return rt.onCore(rt.ref(StoreEbb), 1);
    }
    expectTypeOf<ReturnType<typeof remote>>().toEqualTypeOf<RemoteRef<Store>>();
    expectTypeOf<ReturnType<typeof onCore>>().toEqualTypeOf<RemoteRef<Store>>();
  });
});

describe('defineEbb<T>', () => {
  it('returns EbbDefinition<T, M>', () => {
    expectTypeOf(StoreEbb).toEqualTypeOf<EbbDefinition<Store, Note>>();
    expectTypeOf(StoreEbb.methods).toEqualTypeOf<readonly ('put' | 'take' | 'keys' | 'stats')[]>();
    expect(StoreEbb.methods).toEqual(['put', 'take', 'keys', 'stats']);
  });

  it('rejects method names that are not methods of T', () => {
    // Never called: only the compiler looks at these.
    const wrong = () => [
      defineEbb<Store>({
        name: 'types.test.Wrong',
        policy: 'shared',
        // @ts-expect-error 'remove' is not a method of Store
        methods: ['put', 'remove'],
        create: () => ({}) as Store,
      }),
      defineEbb<Store>({
        name: 'types.test.Field',
        policy: 'shared',
        // @ts-expect-error 'size' is a field, not a method
        methods: ['size'],
        create: () => ({}) as Store,
      }),
      defineEbb<Store>({
        name: 'types.test.Idem',
        policy: 'shared',
        methods: ['put'],
        // @ts-expect-error idempotent lists methods too
        idempotent: ['nope'],
        create: () => ({}) as Store,
      }),
      defineEbb<Store>({
        name: 'types.test.Create',
        policy: 'shared',
        methods: ['put'],
        // @ts-expect-error create must build a T
        create: () => ({ put: 1 }),
      }),
    ];
    expect(typeof wrong).toBe('function');
  });

  it('send carries the definition message type', () => {
    const send = (rt: EbbRuntime) => [
      rt.send(StoreEbb, 2, { text: 'hi' }),
      // @ts-expect-error a Note has a string `text`
      rt.send(StoreEbb, 2, { text: 3 }),
    ];
    expect(typeof send).toBe('function');
  });
});
