import { existsSync, readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The wire code of ebb-protocol does no I/O (docs/architecture.md, Packages and folders): no sockets,
 * files, processes, threads, timers or `process`. Runtime files that may do
 * I/O live next to these in src/ and are deliberately not listed.
 */
const WIRE_FILES = [
  'errors.ts',
  'hash.ts',
  'ids.ts',
  'frame.ts',
  'control.ts',
  'control-proto.generated.ts',
  'codec.ts',
  'flat-pack.ts',
  'call-stats.ts',
] as const;

/** Modules the wire code must not import (with or without the `node:` prefix). */
const BANNED_MODULES = new Set([
  'net',
  'tls',
  'dgram',
  'http',
  'https',
  'http2',
  'ws',
  'fs',
  'fs/promises',
  'child_process',
  'worker_threads',
  'cluster',
  'dns',
  'timers',
  'timers/promises',
  'process',
]);
/** Globals the wire code must not touch. */
const BANNED_GLOBALS = new Set(['setTimeout', 'setInterval', 'setImmediate', 'process']);
/** The only packages the wire code may import; relative imports must stay inside WIRE_FILES. */
const ALLOWED_PACKAGES = new Set(['msgpackr', 'protobufjs', 'protobufjs/light.js']);

const srcUrl = new URL('../../src/wire/', import.meta.url);

/** Returns every violation in `source` (imports, requires, dynamic imports, banned globals). */
function violations(fileName: string, source: string): string[] {
  const found: string[] = [];
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const checkSpecifier = (spec: string, node: ts.Node) => {
    const where = `${fileName}:${file.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const bare = spec.replace(/^node:/, '');
    if (BANNED_MODULES.has(bare)) found.push(`${where} imports ${spec}`);
    else if (spec.startsWith('.')) {
      const target = spec.replace(/^\.\//, '').replace(/\.js$/, '.ts');
      if (!(WIRE_FILES as readonly string[]).includes(target)) found.push(`${where} imports ${spec}, which is not a wire file`);
    } else if (!ALLOWED_PACKAGES.has(spec)) found.push(`${where} imports ${spec}, which is not an allowed package`);
  };
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      checkSpecifier(node.moduleSpecifier.text, node);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      checkSpecifier(node.moduleReference.expression.text, node);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))
    ) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) checkSpecifier(arg.text, node);
      else found.push(`${fileName}: dynamic import/require with a computed specifier`);
    } else if (ts.isIdentifier(node) && BANNED_GLOBALS.has(node.text)) {
      // `x.process` as a property name is fine; `process.env`, `setTimeout(...)`, `globalThis.setTimeout` are not
      const parent = node.parent;
      const isMemberName =
        parent &&
        ts.isPropertyAccessExpression(parent) &&
        parent.name === node &&
        !(ts.isIdentifier(parent.expression) && parent.expression.text === 'globalThis');
      const isDeclaredName =
        parent &&
        (ts.isPropertyAssignment(parent) || ts.isPropertySignature(parent) || ts.isMethodDeclaration(parent) || ts.isPropertyDeclaration(parent)) &&
        parent.name === node;
      if (!isMemberName && !isDeclaredName) found.push(`${fileName}:${file.getLineAndCharacterOfPosition(node.getStart()).line + 1} uses ${node.text}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('wire code purity', () => {
  it.each(WIRE_FILES)('%s does no I/O and uses no timers or process', (name) => {
    const url = new URL(name, srcUrl);
    expect(existsSync(url), `${name} is listed in WIRE_FILES but missing`).toBe(true);
    expect(violations(name, readFileSync(url, 'utf8'))).toEqual([]);
  });

  it('the checker catches what it is meant to catch', () => {
    const bad = [
      `import net from 'node:net';`,
      `import { readFileSync } from 'fs';`,
      `export { WebSocket } from 'ws';`,
      `import type { Worker } from 'node:worker_threads';`,
      `const cp = await import('node:child_process');`,
      `const tls = require('tls');`,
      `import { Transport } from './transport.js';`,
      `import express from 'express';`,
      `setTimeout(() => {}, 1);`,
      `const t = setInterval;`,
      `globalThis.setImmediate(() => {});`,
      `const pid = process.pid;`,
    ];
    for (const line of bad) expect(violations('bad.ts', line), line).toHaveLength(1);
    const fine = [
      `import { ProtocolError } from './errors.js';`,
      `import { Packr } from 'msgpackr';`,
      `const o = { process: 1, setTimeout: 2 };`,
      `o.process(); o.setTimeout;`,
      `// setTimeout and process.env in a comment`,
      `const s = "process.env and setTimeout in a string";`,
    ];
    for (const line of fine) expect(violations('fine.ts', line), line).toEqual([]);
  });
});
