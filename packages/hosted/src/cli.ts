#!/usr/bin/env node
/**
 * `ebbrt`: the command line. Each command is a module under `commands/`
 * exporting `summary`, `usage` and `command(argv)`; bad flags print what is
 * wrong and exit 2.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '@ebbrt/ebb-protocol/node';

interface CommandModule {
  summary: string;
  usage: string;
  command(argv: string[]): Promise<number>;
}

/** Add a command here and in `commands/<name>.ts`. */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  run: () => import('./commands/run.js'),
  image: () => import('./commands/image.js'),
  up: () => import('./commands/up.js'),
  ps: () => import('./commands/ps.js'),
  top: () => import('./commands/top.js'),
  down: () => import('./commands/down.js'),
};

async function usage(): Promise<string> {
  const lines = await Promise.all(Object.entries(COMMANDS).map(async ([name, load]) => `  ${name.padEnd(8)}${(await load()).summary}`));
  return `usage: ebbrt <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nebbrt <command> --help shows a command's options; ebbrt --version the installed version.`;
}

/** `@ebbrt/hosted <version> (node <version>)`, from the installed package.json. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version} (node ${process.versions.node})`;
}

async function cli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${await usage()}\n`);
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`ebbrt: unknown command "${name}"\n\n${await usage()}\n`);
    return 2;
  }
  const module = await load();
  try {
    return await module.command(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`ebbrt ${name}: ${error.message}\n\n${module.usage}\n`);
      return 2;
    }
    throw error;
  }
}

process.exit(await cli(process.argv.slice(2)));
