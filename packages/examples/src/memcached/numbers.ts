/**
 * Numbers read from bytes the way memcached reads them (its safe_strtoul /
 * safe_strtol / safe_strtoull over strtoul/strtol), so odd inputs — "+5",
 * "-0", a flag of 2^32, "12 " — get exactly memcached's answers. Each has a
 * fast path for plain short decimals (the common case) and a BigInt path for
 * the rest. No allocation on the fast path.
 */

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/** Not a number (the parse failed). */
export const INVALID = -1;

export function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Digits of a plain decimal token of 1..9 digits, else -1. */
function shortDigits(bytes: Uint8Array, start: number, end: number): number {
  const length = end - start;
  if (length < 1 || length > 9) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = bytes[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * strtoull/strtol over `bytes[start, end)`: leading whitespace, a sign,
 * decimal digits, then the end or whitespace. Returns the signed value
 * (the sign applied) or null when there are no digits or other characters follow.
 */
function scan(bytes: Uint8Array, start: number, end: number): bigint | null {
  let i = start;
  while (i < end && isSpace(bytes[i])) i++;
  let negative = false;
  if (i < end && (bytes[i] === 0x2b || bytes[i] === 0x2d)) negative = bytes[i++] === 0x2d;
  const digits = i;
  while (i < end && bytes[i] >= 0x30 && bytes[i] <= 0x39) i++;
  if (i === digits || (i < end && !isSpace(bytes[i]))) return null;
  let value = 0n;
  // Longer than any valid number: only the overflow answer matters, and no more than 30 digits are needed to see it.
  const stop = Math.min(i, digits + 30);
  for (let j = digits; j < stop; j++) value = value * 10n + BigInt(bytes[j] - 0x30);
  if (i - digits > 30) value = U64_MAX + 1n;
  return negative ? -value : value;
}

/**
 * safe_strtoull: an unsigned 64-bit value, or -1n. strtoull negates a '-'
 * value; memcached refuses the sign only when the result would read as a
 * negative signed number, so "-0" is 0.
 */
export function parseU64(bytes: Uint8Array, start: number, end: number): bigint {
  const fast = shortDigits(bytes, start, end);
  if (fast >= 0) return BigInt(fast);
  const value = scan(bytes, start, end);
  if (value === null) return -1n;
  if (value > U64_MAX || value < -U64_MAX) return -1n;
  if (value >= 0n) return value;
  const negated = U64_MAX + 1n + value;
  return negated > I64_MAX ? -1n : negated;
}

/** A stored counter as incr/decr reads it (safe_strtoull over the value, which may carry spaces). */
export function parseCounter(bytes: Uint8Array, start: number, end: number): bigint {
  return parseU64(bytes, start, end);
}

/** safe_strtoul into a uint32 (client flags, verbosity): the 64-bit value truncated to 32 bits, or -1. */
export function parseU32(bytes: Uint8Array, start: number, end: number): number {
  const fast = shortDigits(bytes, start, end);
  if (fast >= 0) return fast;
  const value = parseU64(bytes, start, end);
  return value < 0n ? INVALID : Number(value & 0xffffffffn);
}

/**
 * safe_strtol into an int32 (exptime, value length): strtol's 64-bit value
 * truncated to 32 bits (so 4294967296 is 0), or NaN when it is not a number
 * or overflows 64 bits.
 */
export function parseI32(bytes: Uint8Array, start: number, end: number): number {
  const fast = shortDigits(bytes, start, end);
  if (fast >= 0) return fast;
  const value = scan(bytes, start, end);
  if (value === null || value < I64_MIN || value > I64_MAX) return NaN;
  return Number(BigInt.asIntN(32, value));
}

/** A CAS unique as a JS number: values beyond 2^53 cannot match any item here, so they map to -1 (never equal). */
export function casNumber(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(value);
}

/** Writes the decimal digits of a non-negative integer (< 2^53) at `pos`; returns the position after them. */
export function writeDecimal(out: Buffer, pos: number, n: number): number {
  if (n < 10) {
    out[pos] = 0x30 + n;
    return pos + 1;
  }
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  const end = pos + digits;
  for (let m = n, i = end - 1; i >= pos; i--) {
    out[i] = 0x30 + (m % 10);
    m = Math.floor(m / 10);
  }
  return end;
}
