import { defineConfig } from 'vitest/config';

// Tiers by folder: packages/*/test = unit (no sockets), test/ = integration and
// end-to-end (real processes, loopback TCP, Redis, QEMU). A unit test imports the
// sources it tests (`../src/…`); other packages and the integration tier import
// packages by name, which resolves to their built `dist/` (natives run it), so
// `npm test` builds first.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['packages/*/test/**/*.test.ts'], testTimeout: 30_000 } },
      { test: { name: 'integration', include: ['test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } },
    ],
  },
});
