/**
 * The argument handling the simple examples' hosted mains share (counter,
 * pingpong): `--help` needs no natives, bad arguments exit 2 with the flags,
 * and the app itself needs at least one native.
 */
import { flagHelp, UsageError, type AppCheck, type FlagSpec, type HostedApp } from '@ebbrt/hosted';

/** What `ebbrt run` checks before anything boots: the arguments (`--help` needs no natives). */
export function helpNeedsNoNatives(parse: (args: readonly string[]) => unknown): (args: readonly string[]) => AppCheck {
  return (args) => (parse(args) === 'help' ? { natives: 'none' } : { natives: 'required' });
}

/**
 * The options `parse` makes of `app.args`, or the status `main` returns at once: 0 after printing the
 * flags for `--help`, 2 (with the problem on stderr) for bad arguments or a run without natives.
 */
export function mainOptions<T>(app: HostedApp, name: string, flags: readonly FlagSpec[], parse: (args: readonly string[]) => T | 'help'): T | number {
  let options: T | 'help';
  try {
    options = parse(app.args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n\n${name} takes:\n${flagHelp(flags)}\n`);
    return 2;
  }
  if (options === 'help') {
    app.print(`${name} takes:\n${flagHelp(flags)}`);
    return 0;
  }
  if (app.natives.length === 0) {
    process.stderr.write(`${name}: needs at least one native node (--nodes 1 or more)\n`);
    return 2;
  }
  return options;
}
