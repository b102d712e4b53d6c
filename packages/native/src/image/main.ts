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
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '@ebbrt/ebb-protocol/node';
import { buildImage, type ImageBuildOptions, type ImageBuildResult } from './build.js';
import { ImageBuildError } from './errors.js';

const FLAGS = [
  { name: 'out', type: 'string', value: 'DIR', help: 'directory to write the image to; required' },
  { name: 'kernel', type: 'string', value: 'PATH', help: 'kernel to boot (default: $EBBRT_KERNEL, else the newest /boot/vmlinuz-*-cloud-amd64)' },
  { name: 'modules', type: 'string', value: 'DIR', help: "that kernel's modules folder (default: /lib/modules/<release>)" },
  { name: 'node', type: 'string', value: 'PATH', help: 'node binary to put in the image (default: the one running the builder)' },
  { name: 'busybox', type: 'string', value: 'PATH', help: 'a statically linked busybox (default /bin/busybox)' },
  { name: 'level', type: 'int', value: '1-9', min: 1, max: 9, help: 'gzip level of the initramfs, 1 fast to 9 small (default 6)' },
  { name: 'force', type: 'boolean', help: 'rebuild even if no input changed' },
  { name: 'json', type: 'boolean', help: 'print the result as JSON' },
] as const satisfies readonly FlagSpec[];

const USAGE = `usage: ebbrt-image build <native module> --out DIR [options]\n\noptions:\n${flagHelp(FLAGS)}`;

function parse(argv: readonly string[]): { options: ImageBuildOptions; json: boolean } | undefined {
  const { flags, positionals, rest, help } = parseFlags(argv, FLAGS);
  if (help) return undefined;
  const [command, app, extra = rest[0]] = positionals;
  if (command !== 'build') throw new UsageError(command === undefined ? 'missing command' : `unknown command "${command}"`);
  if (app === undefined) throw new UsageError("missing the app's native module");
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (flags.out === undefined) throw new UsageError('missing --out DIR');
  const options: ImageBuildOptions = {
    app,
    outDir: flags.out,
    kernel: flags.kernel,
    modulesDir: flags.modules,
    node: flags.node,
    busybox: flags.busybox,
    compressionLevel: flags.level,
    force: flags.force,
  };
  return { options, json: flags.json === true };
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
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
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
