/**
 * The one command-line layer: both flag forms, `--` and help, typed results,
 * and one message per kind of bad usage, each naming the flag.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import { EbbError } from '@ebbrt/ebb-protocol';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '@ebbrt/ebb-protocol/node';

const FLAGS = [
  { name: 'nodes', type: 'int', value: 'N', min: 0, max: 64, help: 'native nodes' },
  { name: 'backend', type: 'string', choices: ['process', 'qemu'], help: 'how natives start' },
  { name: 'secret', type: 'string', minLength: 8, help: 'cluster secret' },
  { name: 'detach', type: 'boolean', help: 'run in the background' },
  { name: 'tag', type: 'string', multiple: true, help: 'a tag' },
] as const satisfies readonly FlagSpec[];

function usageError(argv: string[]): UsageError {
  try {
    parseFlags(argv, FLAGS);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect(error).toBeInstanceOf(EbbError);
    expect((error as UsageError).code).toBe('USAGE');
    return error as UsageError;
  }
  throw new Error(`parseFlags accepted ${JSON.stringify(argv)}`);
}

describe('parseFlags', () => {
  test('--flag value and --flag=value, positionals anywhere, the rest after --', () => {
    const parsed = parseFlags(['app', '--nodes', '3', '--backend=qemu', '--detach', 'more', '--tag', 'a', '--tag=b', '--', '--nodes', 'x'], FLAGS);
    expect(parsed).toEqual({
      flags: { nodes: 3, backend: 'qemu', detach: true, tag: ['a', 'b'] },
      positionals: ['app', 'more'],
      rest: ['--nodes', 'x'],
      help: false,
    });
  });

  test('results are typed by the specs', () => {
    const { flags } = parseFlags([], FLAGS);
    expect(flags).toEqual({});
    expectTypeOf(flags.nodes).toEqualTypeOf<number | undefined>();
    expectTypeOf(flags.backend).toEqualTypeOf<'process' | 'qemu' | undefined>();
    expectTypeOf(flags.detach).toEqualTypeOf<true | undefined>();
    expectTypeOf(flags.tag).toEqualTypeOf<string[] | undefined>();
  });

  test('-h and --help set help', () => {
    expect(parseFlags(['-h'], FLAGS).help).toBe(true);
    expect(parseFlags(['x', '--help'], FLAGS).help).toBe(true);
  });

  test.each([
    [['--nodse', '2'], 'unknown option --nodse'],
    [['--nodes=2', '-x'], 'unknown option -x'],
    [['--nodes'], '--nodes needs a value'],
    [['--nodes', '--detach'], '--nodes needs a value'],
    [['--nodes', '--', '4'], '--nodes needs a value'],
    [['--detach=yes'], '--detach takes no value'],
    [['--nodes', '65'], '--nodes must be an integer in 0..64, got "65"'],
    [['--nodes', '-1'], '--nodes must be an integer in 0..64, got "-1"'],
    [['--nodes=2.5'], '--nodes must be an integer in 0..64, got "2.5"'],
    [['--backend', 'docker'], '--backend must be one of process, qemu, got "docker"'],
    [['--secret', 'short'], '--secret must be at least 8 characters'],
    [['--tag='], '--tag needs a non-empty value'],
  ])('%j: %s', (argv, message) => {
    expect(usageError(argv).message).toBe(message);
  });

  test("an app's own error class via options.error", () => {
    class AppUsageError extends EbbError {
      constructor(message: string) {
        super('APP_USAGE', message);
      }
    }
    const error = (() => {
      try {
        return parseFlags(['--bogus'], FLAGS, { error: (message) => new AppUsageError(`${message}; app takes --nodes`) });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(AppUsageError);
    expect(error).toMatchObject({ code: 'APP_USAGE', message: 'unknown option --bogus; app takes --nodes' });
  });
});

test('flagHelp lists every flag with its placeholder, then -h, --help', () => {
  expect(flagHelp(FLAGS).split('\n')).toEqual([
    '  --nodes N         native nodes',
    '  --backend STRING  how natives start',
    '  --secret STRING   cluster secret',
    '  --detach          run in the background',
    '  --tag STRING      a tag (repeatable)',
    '  -h, --help        show this help',
  ]);
});
