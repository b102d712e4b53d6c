import { describe, expect, it } from 'vitest';
import {
  defineEbb,
  definitionByName,
  definitionByStaticId,
  EbbError,
  IdConflictError,
  methodCode,
  staticIdFor,
  type EbbDefinitionOptions,
} from '@ebbrt/ebb-protocol/internal';

/**
 * `defineEbb`: validation (one case per TypeError message), registration by
 * name and static id, idempotent re-definition, and the wire codes it derives.
 * Definitions are registered per thread, so every name here is unique to this file.
 */

interface Counter {
  add(n: number): number;
  get(): number;
}

const create = () => {
  let total = 0;
  return { add: (n: number) => (total += n), get: () => total };
};

/** Valid options with one field overridden (through `unknown`, since the point is to pass what the types forbid). */
function options(overrides: Record<string, unknown>): EbbDefinitionOptions<Counter> {
  return { name: 'ebb.test.Valid', policy: 'shared', methods: ['add', 'get'], create, ...overrides } as unknown as EbbDefinitionOptions<Counter>;
}

describe('defineEbb validation', () => {
  it('rejects options that are not an object', () => {
    expect(() => defineEbb(null as unknown as EbbDefinitionOptions<Counter>)).toThrow(TypeError);
    expect(() => defineEbb('Counter' as unknown as EbbDefinitionOptions<Counter>)).toThrow(/options must be an object/);
  });

  it.each([
    ['empty', ''],
    ['a leading digit', '1Counter'],
    ['a space', 'my counter'],
    ['a slash', 'app/Counter'],
    ['not a string', 42],
    ['missing', undefined],
  ])('rejects a name with %s', (_label, name) => {
    expect(() => defineEbb(options({ name }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name }))).toThrow(/options\.name/);
  });

  it.each([['global'], [''], [undefined], ['Shared']])('rejects policy %j', (policy) => {
    expect(() => defineEbb(options({ name: 'ebb.test.BadPolicy', policy }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.BadPolicy', policy }))).toThrow(/options\.policy/);
  });

  it.each([
    ['a string', 'add'],
    ['missing', undefined],
    ['a Set', new Set(['add'])],
    ['holding an empty name', ['add', '']],
    ['holding a non-string', ['add', 7]],
  ])('rejects methods that are %s', (_label, methods) => {
    expect(() => defineEbb(options({ name: 'ebb.test.BadMethods', methods }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.BadMethods', methods }))).toThrow(/options\.methods must be an array/);
  });

  it('rejects methods that list onMessage (messages reach onMessage without it)', () => {
    expect(() => defineEbb(options({ name: 'ebb.test.ListsOnMessage', methods: ['add', 'onMessage'] }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.ListsOnMessage', methods: ['add', 'onMessage'] }))).toThrow(/must not list onMessage/);
  });

  it.each([['shared'], ['multicore'], ['home']])('rejects a %s Ebb without create', (policy) => {
    expect(() => defineEbb(options({ name: 'ebb.test.NoCreate', policy, create: undefined }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.NoCreate', policy, create: 'not a function' }))).toThrow(/needs options\.create/);
  });

  it('rejects a custom Ebb without a fault handler, even if it has create', () => {
    expect(() => defineEbb(options({ name: 'ebb.test.NoFault', policy: 'custom' }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.NoFault', policy: 'custom', fault: {} }))).toThrow(/custom Ebb needs options\.fault/);
  });

  it('accepts a custom Ebb with fault and no create', () => {
    const def = defineEbb<Counter>({ name: 'ebb.test.CustomOk', policy: 'custom', methods: ['add'], fault: create });
    expect(def.policy).toBe('custom');
  });

  it.each([['nowhere'], [''], [1], [null]])('rejects home %j', (home) => {
    expect(() => defineEbb(options({ name: 'ebb.test.BadHome', policy: 'home', home }))).toThrow(TypeError);
    expect(() => defineEbb(options({ name: 'ebb.test.BadHome', policy: 'home', home }))).toThrow(/options\.home/);
  });

  it('registers nothing when validation fails', () => {
    expect(() => defineEbb(options({ name: 'ebb.test.NeverRegistered', policy: 'bogus' }))).toThrow(TypeError);
    expect(definitionByName('ebb.test.NeverRegistered')).toBeUndefined();
    expect(definitionByStaticId(staticIdFor('ebb.test.NeverRegistered'))).toBeUndefined();
  });
});

describe('defineEbb registration', () => {
  it('re-defining the same type returns the same definition (module re-evaluation)', () => {
    const first = defineEbb<Counter>({ name: 'ebb.test.Same', policy: 'multicore', methods: ['add', 'get'], create });
    const again = defineEbb<Counter>({ name: 'ebb.test.Same', policy: 'multicore', methods: ['add', 'get'], create: () => create() });
    expect(again).toBe(first);
    expect(definitionByName('ebb.test.Same')).toBe(first);
    expect(definitionByStaticId(first.staticId)).toBe(first);
  });

  it('a conflicting re-definition throws IdConflictError and keeps the first', () => {
    const first = defineEbb<Counter>({ name: 'ebb.test.Conflict', policy: 'shared', methods: ['add', 'get'], create });
    const conflicts: EbbDefinitionOptions<Counter>[] = [
      { name: 'ebb.test.Conflict', policy: 'multicore', methods: ['add', 'get'], create },
      { name: 'ebb.test.Conflict', policy: 'shared', methods: ['add'], create },
      { name: 'ebb.test.Conflict', policy: 'shared', methods: ['get', 'add'], create },
    ];
    for (const conflict of conflicts) {
      let thrown: unknown;
      try {
        defineEbb(conflict);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(IdConflictError);
      expect(thrown).toBeInstanceOf(EbbError);
      expect((thrown as EbbError).code).toBe('ID_CONFLICT');
    }
    expect(definitionByName('ebb.test.Conflict')).toBe(first);
  });

  it('method codes equal methodCode(name, method) and map back by code', () => {
    const def = defineEbb<Counter>({ name: 'ebb.test.Codes', policy: 'shared', methods: ['add', 'get'], create });
    expect(def.codes).toEqual({ add: methodCode('ebb.test.Codes', 'add'), get: methodCode('ebb.test.Codes', 'get') });
    expect(def.byCode.get(methodCode('ebb.test.Codes', 'add'))).toBe('add');
    expect(def.byCode.get(methodCode('ebb.test.Codes', 'get'))).toBe('get');
    expect(def.byCode.size).toBe(2);
    expect(def.messageCode).toBe(methodCode('ebb.test.Codes', 'onMessage'));
    for (const code of Object.values(def.codes)) expect(code >>> 0).toBe(code);
  });

  it('derives the static id from the name and freezes the definition', () => {
    const def = defineEbb<Counter>({ name: 'ebb.test.Static', policy: 'home', home: 'first', methods: ['get'], create });
    expect(def.staticId).toBe(staticIdFor('ebb.test.Static'));
    expect(def.staticId).toBeGreaterThanOrEqual(0x8000);
    expect(def.staticId).toBeLessThanOrEqual(0xffff);
    expect(Object.isFrozen(def)).toBe(true);
    expect(def.home).toBe('first');
  });

  it('the same method name on two types gets two codes', () => {
    const a = defineEbb<Counter>({ name: 'ebb.test.TwinA', policy: 'shared', methods: ['add'], create });
    const b = defineEbb<Counter>({ name: 'ebb.test.TwinB', policy: 'shared', methods: ['add'], create });
    expect(a.codes.add).not.toBe(b.codes.add);
    expect(a.staticId).not.toBe(b.staticId);
  });
});
