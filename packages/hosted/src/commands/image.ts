/** `ebbrt image build <app> --out <dir>`: build the VM image the qemu backend boots, and print its size. */
import path from 'node:path';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../args.js';
import { AppNotFoundError, appHint, resolveApp } from '../app.js';
import { buildNativeImage, QemuError } from '../backends/qemu/index.js';

const FLAGS: FlagSpec[] = [
  { name: 'out', type: 'string', value: 'DIR', help: 'directory to write the image to (vmlinuz, initramfs.cpio.gz, image.json); required' },
  { name: 'kernel', type: 'string', value: 'PATH', help: 'kernel to boot (default: the newest /boot/vmlinuz-*-cloud-amd64)' },
  { name: 'force', type: 'boolean', help: 'rebuild even if no input changed' },
];

export const summary = 'build the VM image of an app (for --backend qemu)';

export const usage = `usage: ebbrt image build <app> --out DIR [options]

  <app>  ${appHint()}

  The image is a kernel and an initramfs holding node, busybox and the app's
  native side bundled with the native runtime; it is rebuilt only when one of
  those inputs changed. Boot it with \`ebbrt run <app> --backend qemu\`.

options:
${flagHelp(FLAGS)}`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [sub, appName, extra] = parsed.positionals;
  if (sub !== 'build') throw new UsageError(sub === undefined ? 'ebbrt image needs a subcommand: build' : `unknown subcommand "${sub}"; ebbrt image has: build`);
  if (appName === undefined) throw new UsageError('ebbrt image build needs an app: an example name or an app folder');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const out = parsed.flags.out as string | undefined;
  if (out === undefined) throw new UsageError('ebbrt image build needs --out DIR');
  let app;
  try {
    app = resolveApp(appName);
  } catch (error) {
    if (error instanceof AppNotFoundError) throw new UsageError(error.message);
    throw error;
  }
  try {
    await buildNativeImage(app.native, path.resolve(out), { force: parsed.flags.force === true, kernel: parsed.flags.kernel as string | undefined, print: true });
    return 0;
  } catch (error) {
    if (!(error instanceof QemuError)) throw error;
    process.stderr.write(`ebbrt image: ${error.message}\n`);
    return 1;
  }
}
