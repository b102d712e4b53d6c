// Small helpers shared by the ebb-protocol unit tests.

/** Runs `fn` and returns what it threw; fails the test if it did not throw. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}
