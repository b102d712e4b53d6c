import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { EbbError, errorFromWire } from '@ebbrt/ebb-protocol/internal';

/**
 * PROTOCOL.md §8 is the one table of error codes. This test reads every
 * package's sources (syntax only, no type checker) and collects each code an
 * error can carry, with the class that carries it:
 * - `super(<literal>, …)` in a class that extends EbbError (directly or not);
 * - `super(code, …)` where `code` is a constructor parameter: the string
 *   literals of its type (inline union, a type alias, or `keyof typeof OBJ`);
 * - `new EbbError(<literal>, …)` and the literals handed to `errorFromWire`.
 * Every code found must have a row naming its class, and every row a code found.
 */

const packagesDir = fileURLToPath(new URL('../../', import.meta.url));
const protocolMd = readFileSync(new URL('../PROTOCOL.md', import.meta.url), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const CODE = /^[A-Z][A-Z0-9_]+$/;

/** Scans sources; returns code → the classes that carry it. */
function scanCodes(files: string[]): Map<string, Set<string>> {
  const aliases = new Map<string, ts.TypeNode>();
  const objects = new Map<string, ts.Expression>();
  const pending: Array<{ name: string; base: string | undefined; resolve: () => string[] }> = [];
  const direct: Array<[string, string]> = [];

  const literalsOf = (type: ts.TypeNode | undefined): string[] => {
    if (type === undefined) return [];
    if (ts.isUnionTypeNode(type)) return type.types.flatMap(literalsOf);
    if (ts.isLiteralTypeNode(type) && ts.isStringLiteral(type.literal)) return [type.literal.text];
    if (ts.isParenthesizedTypeNode(type)) return literalsOf(type.type);
    if (ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName)) return literalsOf(aliases.get(type.typeName.text));
    if (ts.isTypeOperatorNode(type) && type.operator === ts.SyntaxKind.KeyOfKeyword && ts.isTypeQueryNode(type.type) && ts.isIdentifier(type.type.exprName)) {
      let init = objects.get(type.type.exprName.text);
      while (init && (ts.isAsExpression(init) || ts.isSatisfiesExpression(init))) init = init.expression;
      if (init && ts.isObjectLiteralExpression(init))
        return init.properties.flatMap((p) => (p.name && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) ? [p.name.text] : []));
    }
    return [];
  };

  for (const path of files) {
    const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isTypeAliasDeclaration(node)) aliases.set(node.name.text, node.type);
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) objects.set(node.name.text, node.initializer);
      if (ts.isClassDeclaration(node) && node.name) {
        const base = node.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword)?.types[0]?.expression;
        const ctor = node.members.find(ts.isConstructorDeclaration);
        let superArg: ts.Expression | undefined;
        const findSuper = (n: ts.Node): void => {
          if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.SuperKeyword) superArg = n.arguments[0];
          else ts.forEachChild(n, findSuper);
        };
        if (ctor?.body) findSuper(ctor.body);
        const arg = superArg;
        pending.push({
          name: node.name.text,
          base: base && ts.isIdentifier(base) ? base.text : undefined,
          resolve: () => {
            if (arg === undefined) return [];
            if (ts.isStringLiteral(arg)) return [arg.text];
            if (ts.isIdentifier(arg)) return literalsOf(ctor?.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === arg.text)?.type);
            return [];
          },
        });
      }
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'EbbError') {
        const first = node.arguments?.[0];
        if (first && ts.isStringLiteral(first)) direct.push([first.text, 'EbbError']);
      }
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'errorFromWire') {
        const literals = (n: ts.Node): void => {
          if (ts.isStringLiteral(n) && CODE.test(n.text)) direct.push([n.text, 'EbbError']);
          ts.forEachChild(n, literals);
        };
        node.arguments.forEach(literals);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }

  const errorClasses = new Set(['EbbError']);
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of pending) {
      if (!errorClasses.has(c.name) && c.base !== undefined && errorClasses.has(c.base)) {
        errorClasses.add(c.name);
        grew = true;
      }
    }
  }
  const found = new Map<string, Set<string>>();
  const add = (code: string, cls: string) => found.set(code, (found.get(code) ?? new Set()).add(cls));
  for (const c of pending) if (c.name !== 'EbbError' && errorClasses.has(c.name)) for (const code of c.resolve()) add(code, c.name);
  for (const [code, cls] of direct) add(code, cls);
  return found;
}

/** Rows of §8's tables: code → class, and the codes of the first (wire) table. */
function documentedCodes(): { rows: Map<string, string>; wire: string[] } {
  const section = protocolMd.slice(protocolMd.indexOf('## 8. Error codes'), protocolMd.indexOf('## 9. Versioning'));
  const row = /^\| `([A-Z][A-Z0-9_]+)` \| `(\w+)` \|/gm;
  const rows = new Map<string, string>();
  for (const [, code, cls] of section.matchAll(row)) {
    expect(rows.has(code), `${code} has two rows in PROTOCOL.md §8`).toBe(false);
    rows.set(code, cls);
  }
  const wireTable = section.slice(0, section.indexOf('### 8.1'));
  return { rows, wire: [...wireTable.matchAll(row)].map(([, code]) => code) };
}

describe('error codes (PROTOCOL.md §8)', () => {
  const files = readdirSync(packagesDir).flatMap((pkg) => {
    try {
      return sourceFiles(join(packagesDir, pkg, 'src'));
    } catch {
      return [];
    }
  });
  const found = scanCodes(files);
  const { rows, wire } = documentedCodes();

  it('the scan reads every package and finds the codes it should', () => {
    expect(files.some((f) => f.includes('/hosted/src/'))).toBe(true);
    expect(files.some((f) => f.includes('/examples/src/'))).toBe(true);
    // One of each way a code is written: a literal, an inline union, an alias, keyof typeof, errorFromWire.
    expect(found.get('TIMEOUT')).toEqual(new Set(['TimeoutError']));
    expect(found.get('BAD_SECRET')).toEqual(new Set(['JoinRejectedError']));
    expect(found.get('BAD_MAGIC')).toEqual(new Set(['ProtocolError']));
    expect(found.get('INVOKER_NOT_FOUND')).toEqual(new Set(['InvokerError']));
    expect(found.get('ID_MAP_ERROR')).toEqual(new Set(['EbbError']));
    expect(found.size).toBeGreaterThan(50);
  });

  it('every code in the code has a row naming its class, and every row is a code in the code', () => {
    const missing = [...found].filter(([code]) => !rows.has(code)).map(([code, classes]) => `${code} (${[...classes].join(', ')})`);
    expect(missing, 'codes thrown by the code but missing from PROTOCOL.md §8').toEqual([]);
    const stale = [...rows.keys()].filter((code) => !found.has(code));
    expect(stale, 'rows of PROTOCOL.md §8 no code throws').toEqual([]);
    for (const [code, cls] of rows) expect([...found.get(code)!], `class of ${code}`).toContain(cls);
  });

  it('every code of the wire table is registered: it arrives as its own class', () => {
    expect(wire.length).toBeGreaterThan(20);
    for (const code of wire) {
      const rebuilt = errorFromWire({ code, message: 'x' });
      expect(rebuilt.constructor, code).not.toBe(EbbError);
      expect(rebuilt.constructor.name, code).toBe(rows.get(code));
      expect(rebuilt.code).toBe(code);
    }
  });
});
