/**
 * `ebbrt image build <app> --out <dir>`: build the VM image the qemu backend boots, and print its size.
 * `ebbrt image prune [--all] [--dry-run]`: remove cached images nothing can use any more.
 */
import path from 'node:path';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '@ebbrt/ebb-protocol/node';
import { AppNotFoundError, appHint, resolveApp } from '../app.js';
import { buildNativeImage, imageCacheDir, pruneImageCache, QemuError } from '../backends/qemu/index.js';

const FLAGS = [
  { name: 'out', type: 'string', value: 'DIR', help: 'directory to write the image to (vmlinuz, initramfs.cpio.gz, image.json); required' },
  { name: 'kernel', type: 'string', value: 'PATH', help: 'kernel to boot (default: the newest /boot/vmlinuz-*-cloud-amd64)' },
  { name: 'force', type: 'boolean', help: 'build: rebuild even if no input changed' },
  { name: 'all', type: 'boolean', help: 'prune: remove every cached image (they are rebuilt on demand)' },
  { name: 'dry-run', type: 'boolean', help: 'prune: list what would be removed, remove nothing' },
] as const satisfies readonly FlagSpec[];

export const summary = 'build the VM image of an app (for --backend qemu); prune cached images';

export const usage = `usage: ebbrt image build <app> --out DIR [options]
       ebbrt image prune [--all] [--dry-run]

  <app>  ${appHint()}

  The image is a kernel and an initramfs holding node, busybox and the app's
  native side bundled with the native runtime; it is rebuilt only when one of
  those inputs changed. Boot it with \`ebbrt run <app> --backend qemu\`.

  \`--backend qemu\` builds images on demand into ${imageCacheDir()}
  (EBBRT_IMAGE_CACHE overrides), one per app path, about 50 MB each. prune
  removes those whose app is gone and interrupted builds (--all: every one).

options:
${flagHelp(FLAGS)}`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [sub, appName, extra] = parsed.positionals;
  if (sub === 'prune') return prune(parsed.positionals.slice(1), parsed.flags);
  if (sub !== 'build')
    throw new UsageError(sub === undefined ? 'ebbrt image needs a subcommand: build or prune' : `unknown subcommand "${sub}"; ebbrt image has: build, prune`);
  if (parsed.flags.all || parsed.flags['dry-run']) throw new UsageError('--all and --dry-run are options of ebbrt image prune');
  if (appName === undefined) throw new UsageError('ebbrt image build needs an app: an example name or an app folder');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const out = parsed.flags.out;
  if (out === undefined) throw new UsageError('ebbrt image build needs --out DIR');
  let app;
  try {
    app = resolveApp(appName);
  } catch (error) {
    if (error instanceof AppNotFoundError) throw new UsageError(error.message);
    throw error;
  }
  try {
    await buildNativeImage(app.native, path.resolve(out), { force: parsed.flags.force === true, kernel: parsed.flags.kernel, print: true });
    return 0;
  } catch (error) {
    if (!(error instanceof QemuError)) throw error;
    process.stderr.write(`ebbrt image: ${error.message}\n`);
    return 1;
  }
}

function prune(extra: string[], flags: Record<string, unknown>): number {
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (flags.out !== undefined || flags.kernel !== undefined || flags.force)
    throw new UsageError('--out, --kernel and --force are options of ebbrt image build');
  const cache = imageCacheDir();
  const dryRun = flags['dry-run'] === true;
  const pruned = pruneImageCache(cache, { all: flags.all === true, dryRun });
  for (const image of pruned)
    process.stdout.write(`${dryRun ? 'would remove' : 'removed'} ${image.dir} (${(image.bytes / 1048576).toFixed(1)} MiB, ${image.reason})\n`);
  const total = pruned.reduce((sum, image) => sum + image.bytes, 0);
  process.stdout.write(`${pruned.length} image(s), ${(total / 1048576).toFixed(1)} MiB ${dryRun ? 'would be freed' : 'freed'} in ${cache}\n`);
  return 0;
}
