#!/usr/bin/env node
/**
 * `ebbrt-image`: the image builder as a command. `ebbrt image build` and the
 * hosted package's qemu backend run it as a child process (the hosted and
 * native packages never import each other), the backend with `--json`.
 *
 *   ebbrt-image build <native module> --out DIR [--kernel PATH] [--modules DIR]
 *                     [--node PATH] [--busybox PATH] [--level 1-9] [--force] [--json]
 *
 * Exit status: 0 built or up to date, 1 the build failed (the message names
 * the input to fix), 2 bad usage.
 */
import { buildImage, type ImageBuildOptions, type ImageBuildResult } from './build.js';
import { ImageBuildError } from './errors.js';

const USAGE = `usage: ebbrt-image build <native module> --out DIR [--kernel PATH] [--modules DIR] [--node PATH] [--busybox PATH] [--level 1-9] [--force] [--json]`;

/** Path-valued flags and the option each sets. */
const PATH_FLAGS: Record<string, 'outDir' | 'kernel' | 'modulesDir' | 'node' | 'busybox'> = {
  '--out': 'outDir',
  '--kernel': 'kernel',
  '--modules': 'modulesDir',
  '--node': 'node',
  '--busybox': 'busybox',
};

class UsageError extends Error {}

function parse(argv: readonly string[]): { options: ImageBuildOptions; json: boolean } {
  const [command, ...rest] = argv;
  if (command !== 'build') throw new UsageError(command === undefined ? 'missing command' : `unknown command "${command}"`);
  const options: Partial<ImageBuildOptions> = {};
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--json') json = true;
    else if (arg === '--force') options.force = true;
    else if (arg === '--level') {
      const level = Number(rest[++i]);
      if (!Number.isInteger(level) || level < 1 || level > 9) throw new UsageError(`--level must be an integer in 1..9, got "${rest[i]}"`);
      options.compressionLevel = level;
    } else if (PATH_FLAGS[arg]) {
      const value = rest[++i];
      if (!value) throw new UsageError(`${arg} needs a value`);
      options[PATH_FLAGS[arg]] = value;
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (options.app === undefined) options.app = arg;
    else throw new UsageError(`unexpected argument "${arg}"`);
  }
  if (!options.app) throw new UsageError("missing the app's native module");
  if (!options.outDir) throw new UsageError('missing --out DIR');
  return { options: options as ImageBuildOptions, json };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** One line: where the image is, its size, and whether it was rebuilt. */
function imageSummary(result: ImageBuildResult): string {
  const { manifest: m } = result;
  const how = result.rebuilt ? `built in ${(m.buildMs / 1000).toFixed(1)} s` : 'up to date';
  return `image ${result.dir}: kernel ${mb(m.bytes.kernel)} + initramfs ${mb(m.bytes.initrd)} = ${mb(m.bytes.total)} compressed (${mb(m.bytes.uncompressedInitrd)} unpacked; node ${m.node}, kernel ${m.kernelRelease}; ${how})`;
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`ebbrt-image: ${error.message}\n${USAGE}\n`);
    return 2;
  }
  try {
    const result = await buildImage(parsed.options);
    process.stdout.write(`${parsed.json ? JSON.stringify(result) : imageSummary(result)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ImageBuildError || error instanceof TypeError) {
      process.stderr.write(`ebbrt-image: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
