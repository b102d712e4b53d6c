// Writes control.proto's descriptor (protobufjs's JSON form of the parsed file) into
// src/wire/control-proto.generated.ts as a string constant, so the wire code loads it
// with protobufjs/light: no .proto parser to load or run when a node starts (and a
// bundled native image needs no side files). A unit test fails if they drift.
import { readFileSync, writeFileSync } from 'node:fs';
import protobuf from 'protobufjs';

/** The generated module for the text of control.proto. */
export function generated(text) {
  const descriptor = JSON.stringify(protobuf.parse(text, { keepCase: false }).root.toJSON());
  return `// Generated from control.proto by scripts/embed-proto.mjs; do not edit.\nexport const CONTROL_DESCRIPTOR = ${JSON.stringify(descriptor)};\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const here = new URL('..', import.meta.url);
  writeFileSync(new URL('src/wire/control-proto.generated.ts', here), generated(readFileSync(new URL('control.proto', here), 'utf8')));
}
