/**
 * Bundles the native runtime and an app's native module for a VM image.
 *
 * The runtime is two programs that must share one copy of every module: the
 * boot entry (supervisor, main thread) starts each core with
 * `new Worker(new URL('./core.js', import.meta.url))`, and each core
 * `import()`s the app's native module at run time. Three separate bundles
 * would give the core and the app two copies of `@ebbrt/ebb-protocol` (two
 * Ebb registries, two runtimes), so the three entries are bundled together
 * with code splitting: `boot.js`, `core.js` and `app.js` side by side, and
 * what they share in `chunks/`, loaded once per thread. The file names are
 * fixed because boot finds `./core.js` beside itself and the init passes
 * `--app app.js`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageBuildError } from './errors.js';
import { APP_DIR } from './init.js';

/** One output file of the bundle, relative to the app directory of the image. */
export interface BundleFile {
  path: string;
  contents: Buffer;
}

/** The native package's build output (`dist/`), where the boot entry (node.js) and core.js are; the image names the boot entry boot.js. */
const DIST = fileURLToPath(new URL('../', import.meta.url));

/**
 * `node_modules` directories above the native package: an app outside this
 * package's tree (a folder given by path) still resolves `@ebbrt/native` and
 * `@ebbrt/ebb-protocol` to the copies this builder belongs to.
 */
function nodePaths(): string[] {
  const paths: string[] = [];
  for (let dir = path.dirname(DIST); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules');
    if (existsSync(candidate)) paths.push(candidate);
    if (path.dirname(dir) === dir) return paths;
  }
}

/** Bundles boot + core + the app at `app` (path of its native module) into memory. */
export async function bundleNative(app: string): Promise<BundleFile[]> {
  const { build } = await import('esbuild');
  let result;
  try {
    result = await build({
      entryPoints: { boot: path.join(DIST, 'node.js'), core: path.join(DIST, 'core.js'), app },
      outdir: APP_DIR,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      chunkNames: 'chunks/[name]-[hash]',
      nodePaths: nodePaths(),
      write: false,
      logLevel: 'silent',
      // CommonJS dependencies bundled into ESM call require() for Node built-ins.
      banner: { js: "import { createRequire as __ebbrtCreateRequire } from 'node:module'; const require = __ebbrtCreateRequire(import.meta.url);" },
    });
  } catch (error) {
    const errors = (error as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`).join('\n  ');
    throw new ImageBuildError(`bundling ${app} with the native runtime failed${detail ? `:\n  ${detail}` : `: ${(error as Error).message}`}`, { cause: error });
  }
  const files = result.outputFiles.map((file) => ({ path: path.relative(APP_DIR, file.path), contents: Buffer.from(file.contents) }));
  // The bundle is ESM in .js files.
  files.push({ path: 'package.json', contents: Buffer.from('{"type":"module"}\n') });
  return files.sort((a, b) => a.path.localeCompare(b.path));
}
