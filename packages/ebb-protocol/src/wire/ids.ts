/**
 * The global 32-bit EbbId space (PROTOCOL.md §2):
 *
 *   0                 the GlobalIdMap itself
 *   1 .. 0x7FFF       node-local / system ids (never cross a node boundary)
 *   0x8000 .. 0xFFFF  static user ids, derived from a name hash
 *   >= 0x10000        global ids, in blocks of 65536: block `space` is
 *                     `space << 16 .. (space << 16) | 0xFFFF`. Space 1 is the
 *                     hosted frontend; each native gets its own space on join.
 */
import { IdConflictError, IdSpaceExhaustedError } from './errors.js';
import { fnv1a32 } from './hash.js';

/** A 32-bit unsigned Ebb identifier. */
export type EbbId = number;

export const GLOBAL_ID_MAP_ID: EbbId = 0;
export const FIRST_LOCAL_ID: EbbId = 1;
export const LAST_LOCAL_ID: EbbId = 0x7fff;
export const FIRST_STATIC_ID: EbbId = 0x8000;
export const LAST_STATIC_ID: EbbId = 0xffff;
/** The id space granted to the hosted frontend. */
export const HOSTED_ID_SPACE = 1;
/** The largest id space number (its block ends at 0xFFFFFFFF). */
export const MAX_ID_SPACE = 0xffff;
/** Ids per space block. */
export const IDS_PER_SPACE = 0x10000;

/** Is `id` an unsigned 32-bit integer? */
export function isEbbId(id: unknown): id is EbbId {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffffffff;
}

export function isLocalId(id: EbbId): boolean {
  return id >= FIRST_LOCAL_ID && id <= LAST_LOCAL_ID;
}

export function isStaticId(id: EbbId): boolean {
  return id >= FIRST_STATIC_ID && id <= LAST_STATIC_ID;
}

export function isGlobalId(id: EbbId): boolean {
  return id >= IDS_PER_SPACE && id <= 0xffffffff;
}

/** The id space a global id belongs to (`id >>> 16`), 0 for ids below 0x10000. */
export function idSpaceOf(id: EbbId): number {
  return id >>> 16;
}

/** First id of space block `space`. */
export function spaceBase(space: number): EbbId {
  assertSpace(space);
  return (space << 16) >>> 0;
}

function assertSpace(space: number): void {
  if (!Number.isInteger(space) || space < 1 || space > MAX_ID_SPACE) {
    throw new RangeError(`id space must be an integer in 1..${MAX_ID_SPACE}, got ${space}`);
  }
}

/**
 * The static id of a user Ebb named `name`: `0x8000 | (fnv1a32(name) & 0x7FFF)`.
 * Deterministic on every node and in every language. With only 32768 static ids,
 * collisions are possible; {@link StaticIdRegistry} detects them.
 */
export function staticIdFor(name: string): EbbId {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError('an Ebb name must be a non-empty string');
  }
  return FIRST_STATIC_ID | (fnv1a32(name) & 0x7fff);
}

/** Remembers which name owns each static id so a hash collision is an error, not silent aliasing. */
export class StaticIdRegistry {
  readonly #names = new Map<EbbId, string>();

  /** Returns the static id of `name`, throwing {@link IdConflictError} if another name already holds it. */
  claim(name: string): EbbId {
    const id = staticIdFor(name);
    const owner = this.#names.get(id);
    if (owner !== undefined && owner !== name) {
      throw new IdConflictError(`static Ebb names "${owner}" and "${name}" both hash to id 0x${id.toString(16)}; rename one of them`);
    }
    this.#names.set(id, name);
    return id;
  }

  nameOf(id: EbbId): string | undefined {
    return this.#names.get(id);
  }
}

/**
 * Hands out ids from a closed range `[first, last]`: freed (or skipped by
 * {@link reserve}) ids are reused first, most recently freed first; otherwise
 * never-used ids in ascending order. Exhaustion is an {@link IdSpaceExhaustedError}.
 */
export class IdAllocator {
  readonly first: EbbId;
  readonly last: EbbId;
  readonly #label: string;
  #next: EbbId;
  readonly #freed: EbbId[] = [];
  readonly #taken = new Set<EbbId>();

  constructor(first: EbbId, last: EbbId, label = 'id range') {
    if (!isEbbId(first) || !isEbbId(last) || first > last) {
      throw new RangeError(`invalid id range 0x${first.toString(16)}..0x${last.toString(16)}`);
    }
    this.first = first;
    this.last = last;
    this.#next = first;
    this.#label = label;
  }

  /** Allocator for node-local ids. `reserved` ids at the bottom are kept for the runtime's system Ebbs. */
  static local(reserved = 0xff): IdAllocator {
    return new IdAllocator(FIRST_LOCAL_ID + reserved, LAST_LOCAL_ID, 'the node-local id range');
  }

  /** Allocator for the global ids of id space `space`. */
  static global(space: number): IdAllocator {
    const base = spaceBase(space);
    return new IdAllocator(base, (base | 0xffff) >>> 0, `id space ${space}`);
  }

  /** Number of ids currently allocated. */
  get size(): number {
    return this.#taken.size;
  }

  allocate(): EbbId {
    let id: EbbId | undefined = this.#freed.pop();
    if (id === undefined) {
      if (this.#next > this.last) {
        throw new IdSpaceExhaustedError(`${this.#label} is exhausted (${this.last - this.first + 1} ids in use); free ids you no longer need`);
      }
      id = this.#next++;
    }
    this.#taken.add(id);
    return id;
  }

  /** Marks a specific id as used (e.g. recovered from a persistent store). */
  reserve(id: EbbId): void {
    if (id < this.first || id > this.last) throw new RangeError(`id 0x${id.toString(16)} is outside ${this.#label}`);
    if (this.#taken.has(id)) throw new IdConflictError(`id 0x${id.toString(16)} is already allocated`);
    this.#taken.add(id);
    const at = this.#freed.indexOf(id);
    if (at >= 0) this.#freed.splice(at, 1);
    while (this.#next <= id) {
      if (this.#next !== id) this.#freed.push(this.#next);
      this.#next++;
    }
  }

  free(id: EbbId): void {
    if (!this.#taken.delete(id)) throw new RangeError(`id 0x${id.toString(16)} was not allocated from ${this.#label}`);
    this.#freed.push(id);
  }
}

/**
 * Hands out id spaces to joining nodes (run by the GlobalIdMap authority).
 * Space 1 is the hosted frontend's; natives get 2, 3, …
 */
export class IdSpaceAllocator {
  readonly #inner = new IdAllocator(HOSTED_ID_SPACE + 1, MAX_ID_SPACE, 'the id-space table');

  allocate(): number {
    return this.#inner.allocate();
  }

  reserve(space: number): void {
    this.#inner.reserve(space);
  }

  free(space: number): void {
    this.#inner.free(space);
  }
}
