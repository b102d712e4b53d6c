/** Shared by the memcached parser tests: drives a parser that pauses after every request. */

interface PausingParser {
  pause(): void;
  write(chunk: Uint8Array): number;
}

/**
 * Builds a parser with `make(onRequest)` whose `onRequest` records
 * `snapshot(request)` and pauses, then feeds it `input`, each write starting
 * where the last one stopped. Returns the snapshots and the bytes each write consumed.
 */
export function parsePaused<R>(
  make: (onRequest: (request: R) => void) => PausingParser,
  snapshot: (request: R) => Record<string, unknown>,
  input: Uint8Array,
): { requests: Record<string, unknown>[]; consumed: number[] } {
  const requests: Record<string, unknown>[] = [];
  const parser = make((r) => {
    requests.push(snapshot(r));
    parser.pause();
  });
  const consumed: number[] = [];
  for (let rest = input; rest.length > 0; ) {
    const used = parser.write(rest);
    consumed.push(used);
    rest = rest.subarray(used);
  }
  return { requests, consumed };
}
