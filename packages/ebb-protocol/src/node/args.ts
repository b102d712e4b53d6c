/**
 * The one command-line layer of the CLI, the native boot, the image builder
 * and every example: each command lists its flags once (name, type, range,
 * help) and gets `--flag value` and `--flag=value`, `--` for what follows
 * (an app's own arguments), validation with a {@link UsageError} naming the
 * flag and the fix, typed results and its help text. Tokenizing is
 * `node:util` `parseArgs`; this module adds the types, checks and messages.
 * No I/O, and nothing but the error module: a native parses its boot flags
 * before it loads the protocol stack.
 */
import { parseArgs } from 'node:util';
import { EbbError, type EbbErrorOptions } from '../wire/errors.js';

/**
 * Bad command-line usage: an unknown flag, a missing or bad value. Commands
 * print the message with their usage and exit 2. An app with a usage error
 * of its own (its own code) has {@link parseFlags} build that instead.
 */
export class UsageError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('USAGE', message, options);
  }
}

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `nodes`. */
  readonly name: string;
  readonly type: 'int' | 'string' | 'boolean';
  /** Shown in help. */
  readonly help: string;
  /** Placeholder in help, e.g. `N`. */
  readonly value?: string;
  /** For ints: the range (default 0..Number.MAX_SAFE_INTEGER). */
  readonly min?: number;
  readonly max?: number;
  /** For strings: allowed values. */
  readonly choices?: readonly string[];
  /** For strings: minimum length (every string value must be non-empty). */
  readonly minLength?: number;
  /** May be given several times; the result is the list of values in order. */
  readonly multiple?: boolean;
}

/** The value type of one flag. */
type FlagValue<S extends FlagSpec> = S['type'] extends 'int'
  ? number
  : S['type'] extends 'boolean'
    ? true
    : S extends { readonly choices: readonly (infer C)[] }
      ? C
      : string;

/** The flags given, by name, typed by their specs (declared `as const`); flags not given are absent. */
export type Flags<F extends readonly FlagSpec[]> = string extends F[number]['name']
  ? Record<string, unknown>
  : { [S in F[number] as S['name']]?: S extends { readonly multiple: true } ? FlagValue<S>[] : FlagValue<S> };

export interface ParsedArgs<F extends readonly FlagSpec[] = readonly FlagSpec[]> {
  flags: Flags<F>;
  positionals: string[];
  /** Everything after `--`. */
  rest: string[];
  /** `-h` or `--help` was given. */
  help: boolean;
}

/** Options of {@link parseFlags}. */
export interface ParseFlagsOptions {
  /** Builds the error thrown for bad usage (an app's own class). Default {@link UsageError}. */
  error?: (message: string) => Error;
}

/**
 * Parses `argv` against `specs`. Throws {@link UsageError} (or `options.error`'s
 * error) for an unknown flag, a flag without its value, a value to a boolean
 * flag, or a value out of its range or choices.
 */
export function parseFlags<const F extends readonly FlagSpec[]>(argv: readonly string[], specs: F, options: ParseFlagsOptions = {}): ParsedArgs<F> {
  const fail = options.error ?? ((message: string) => new UsageError(message));
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const byName = new Map<string, FlagSpec>(specs.map((s) => [s.name, s]));
  const config: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const spec of specs) config[spec.name] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  // Not strict: unknown flags and missing values come back as tokens, so the messages below can name them.
  const { tokens } = parseArgs({ args: own, options: config, strict: false, allowPositionals: true, tokens: true });
  const flags: Record<string, unknown> = {};
  const parsed = { flags, positionals: [] as string[], rest: dashes < 0 ? [] : argv.slice(dashes + 1), help: false };
  for (const token of tokens) {
    if (token.kind === 'positional') {
      parsed.positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    if (token.rawName === '-h' || token.rawName === '--help') {
      parsed.help = true;
      continue;
    }
    const spec = token.rawName.startsWith('--') ? byName.get(token.name) : undefined;
    if (!spec) throw fail(`unknown option ${token.rawName}`);
    let value: unknown = true;
    if (spec.type === 'boolean') {
      if (token.inlineValue) throw fail(`--${spec.name} takes no value`);
    } else {
      // A value that looks like the next flag means this one's value was forgotten.
      if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) throw fail(`--${spec.name} needs a value`);
      value = convert(spec, token.value, fail);
    }
    if (spec.multiple) ((flags[spec.name] ??= []) as unknown[]).push(value);
    else flags[spec.name] = value;
  }
  return parsed as ParsedArgs<F>;
}

function convert(spec: FlagSpec, raw: string, fail: (message: string) => Error): string | number {
  if (spec.type === 'int') {
    const n = Number(raw);
    const min = spec.min ?? 0;
    const max = spec.max ?? Number.MAX_SAFE_INTEGER;
    if (!/^\d+$/.test(raw) || n < min || n > max) throw fail(`--${spec.name} must be an integer in ${min}..${max}, got "${raw}"`);
    return n;
  }
  if (spec.choices && !spec.choices.includes(raw)) throw fail(`--${spec.name} must be one of ${spec.choices.join(', ')}, got "${raw}"`);
  if (spec.minLength !== undefined && raw.length < spec.minLength) throw fail(`--${spec.name} must be at least ${spec.minLength} characters`);
  if (raw.length === 0) throw fail(`--${spec.name} needs a non-empty value`);
  return raw;
}

/** Help lines for a flag table, `-h, --help` last. */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const left = specs.map((s) => `  --${s.name}${s.type === 'boolean' ? '' : ` ${s.value ?? s.type.toUpperCase()}`}`);
  const width = Math.max(12, ...left.map((l) => l.length)) + 2;
  const lines = specs.map((s, i) => `${left[i].padEnd(width)}${s.help}${s.multiple ? ' (repeatable)' : ''}`);
  lines.push(`${'  -h, --help'.padEnd(width)}show this help`);
  return lines.join('\n');
}
