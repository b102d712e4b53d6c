#!/usr/bin/env node
// Committed shim so `npm ci` can link the bin before `npm run build` creates dist/.
await import('../dist/node.js');
