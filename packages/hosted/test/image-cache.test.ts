/** `ebbrt image prune`'s policy on a cache folder of the qemu backend's shape (no image is built). */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { imageCacheDir, pruneImageCache } from '@ebbrt/hosted';

let work: string;
afterEach(() => rmSync(work, { recursive: true, force: true }));

function cachedImage(cache: string, name: string, manifest: object | undefined): string {
  const dir = path.join(cache, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'initramfs.cpio.gz'), Buffer.alloc(2048));
  if (manifest) writeFileSync(path.join(dir, 'image.json'), JSON.stringify(manifest));
  return dir;
}

describe('image cache', () => {
  it('prune removes images whose app is gone and interrupted builds, keeps the rest; --dry-run removes nothing; --all removes every image', () => {
    work = mkdtempSync(path.join(tmpdir(), 'ebbrt-image-cache-'));
    const app = path.join(work, 'app', 'native.js');
    mkdirSync(path.dirname(app));
    writeFileSync(app, '');
    const cache = path.join(work, 'cache');
    const kept = cachedImage(cache, 'app-0123456789ab', { format: 1, app });
    const gone = cachedImage(cache, 'old-0123456789ac', { format: 1, app: path.join(work, 'deleted', 'native.js') });
    const broken = cachedImage(cache, 'half-0123456789ad', undefined);
    const foreign = cachedImage(cache, 'not-an-image', undefined);

    const planned = pruneImageCache(cache, { dryRun: true });
    expect(planned.map((p) => [path.basename(p.dir), p.reason])).toEqual([
      ['half-0123456789ad', 'incomplete'],
      ['old-0123456789ac', 'app gone'],
    ]);
    expect(planned.every((p) => p.bytes >= 2048)).toBe(true);
    expect([kept, gone, broken, foreign].every((dir) => existsSync(dir))).toBe(true);

    expect(pruneImageCache(cache).map((p) => p.dir)).toEqual([broken, gone]);
    expect([existsSync(kept), existsSync(gone), existsSync(broken), existsSync(foreign)]).toEqual([true, false, false, true]);

    expect(pruneImageCache(cache, { all: true }).map((p) => [p.dir, p.reason])).toEqual([[kept, 'all']]);
    expect(existsSync(foreign)).toBe(true);
    expect(pruneImageCache(path.join(work, 'no-cache'))).toEqual([]);
  });

  it('the cache is EBBRT_IMAGE_CACHE, else ~/.cache/ebbrt/images', () => {
    work = mkdtempSync(path.join(tmpdir(), 'ebbrt-image-cache-'));
    expect(imageCacheDir({ EBBRT_IMAGE_CACHE: '/x/images' })).toBe('/x/images');
    expect(imageCacheDir({})).toMatch(/\.cache\/ebbrt\/images$/);
  });
});
