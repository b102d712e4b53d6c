/**
 * Declarative flag parsing for `ebbrt` commands: each command lists its flags
 * once (name, type, range, default, help) and gets validation, `--flag=value`
 * and `--flag value` forms, `--` for app arguments, and its help text.
 */

export class UsageError extends Error {}

export interface FlagSpec {
  /** Long name without dashes, e.g. `nodes`. */
  name: string;
  type: 'int' | 'string' | 'boolean';
  /** Shown in help. */
  help: string;
  /** Placeholder in help, e.g. `N`. */
  value?: string;
  min?: number;
  max?: number;
  /** For strings: allowed values. */
  choices?: readonly string[];
  /** For strings: minimum length. */
  minLength?: number;
}

export interface ParsedArgs {
  flags: Record<string, string | number | boolean | undefined>;
  positionals: string[];
  /** Everything after `--`. */
  rest: string[];
  help: boolean;
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const parsed: ParsedArgs = { flags: {}, positionals: [], rest: [], help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      parsed.rest = argv.slice(i + 1);
      break;
    }
    if (arg === '-h' || arg === '--help') {
      parsed.help = true;
      continue;
    }
    if (!arg.startsWith('-')) {
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq > 0 ? eq : undefined);
    const spec = arg.startsWith('--') ? byName.get(name) : undefined;
    if (!spec) throw new UsageError(`unknown option ${eq > 0 ? arg.slice(0, eq) : arg}`);
    if (spec.type === 'boolean') {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      parsed.flags[name] = true;
      continue;
    }
    const raw = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined || (eq < 0 && raw.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    parsed.flags[name] = convert(spec, raw);
  }
  return parsed;
}

function convert(spec: FlagSpec, raw: string): string | number {
  if (spec.type === 'int') {
    const n = Number(raw);
    const min = spec.min ?? 0;
    const max = spec.max ?? Number.MAX_SAFE_INTEGER;
    if (!/^\d+$/.test(raw) || n < min || n > max) throw new UsageError(`--${spec.name} must be an integer in ${min}..${max}, got "${raw}"`);
    return n;
  }
  if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, got "${raw}"`);
  if (spec.minLength !== undefined && raw.length < spec.minLength) throw new UsageError(`--${spec.name} must be at least ${spec.minLength} characters`);
  if (raw.length === 0) throw new UsageError(`--${spec.name} needs a non-empty value`);
  return raw;
}

/** Help lines for a flag table. */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const left = specs.map((s) => `  --${s.name}${s.type === 'boolean' ? '' : ` ${s.value ?? s.type.toUpperCase()}`}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const lines = specs.map((s, i) => `${left[i].padEnd(width)}${s.help}`);
  lines.push(`${'  -h, --help'.padEnd(width)}show this help`);
  return lines.join('\n');
}
