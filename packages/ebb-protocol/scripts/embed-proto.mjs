// Copies control.proto into src/wire/control-proto.generated.ts as a string constant,
// so the wire code can load it with protobufjs without any file I/O (and so a
// bundled native image needs no side files). A unit test fails if they drift.
import { readFileSync, writeFileSync } from 'node:fs';
const here = new URL('..', import.meta.url);
const text = readFileSync(new URL('control.proto', here), 'utf8');
const out = `// Generated from control.proto by scripts/embed-proto.mjs; do not edit.\nexport const CONTROL_PROTO = ${JSON.stringify(text)};\n`;
writeFileSync(new URL('src/wire/control-proto.generated.ts', here), out);
