/**
 * Stable 32-bit codes. A method or message type is named on the wire by
 * FNV-1a (32-bit) over the UTF-8 bytes of `"<EbbTypeName>.<method>"`, so every
 * node, in any language, computes the same code without a registry.
 * Test vectors are in PROTOCOL.md §6.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/** FNV-1a 32-bit over the UTF-8 encoding of `text`; an unsigned 32-bit integer. */
export function fnv1a32(text: string): number {
  const bytes = encoder.encode(text);
  let hash = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/** The wire code of `typeName.method`. */
export function methodCode(typeName: string, method: string): number {
  return fnv1a32(`${typeName}.${method}`);
}
