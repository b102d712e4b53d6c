/** The VM image manifest contract: what the native image builder writes is what both readers accept, and a bad manifest names its bad field. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkImageManifest, readImageManifest, IMAGE_FORMAT, IMAGE_MANIFEST_FILE, type ImageManifest } from '@ebbrt/ebb-protocol/node';

const manifest: ImageManifest = {
  format: IMAGE_FORMAT,
  hash: 'ab'.repeat(32),
  kernel: 'vmlinuz',
  initrd: 'initramfs.cpio.gz',
  kernelRelease: '6.1.0-cloud-amd64',
  node: 'v20.0.0',
  app: '/app/native.js',
  modules: ['virtio_net'],
  bytes: { kernel: 10, initrd: 20, total: 30, uncompressedInitrd: 40 },
  strippedNode: true,
  builtAt: '2026-01-01T00:00:00.000Z',
  buildMs: 1000,
};

describe('image manifest', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'image-manifest-test-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a written manifest reads back equal', async () => {
    await writeFile(path.join(dir, IMAGE_MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    expect(await readImageManifest(dir)).toEqual(manifest);
  });

  test('a missing or non-JSON manifest is an error naming the file', async () => {
    await expect(readImageManifest(path.join(dir, 'nothing-here'))).rejects.toThrow(/cannot read .*image\.json/);
    const other = await mkdtemp(path.join(dir, 'bad-'));
    await writeFile(path.join(other, IMAGE_MANIFEST_FILE), '{ not json');
    await expect(readImageManifest(other)).rejects.toThrow(/image\.json is not JSON/);
  });

  test.each([
    [null, /must hold a JSON object/],
    [{ ...manifest, format: IMAGE_FORMAT + 1 }, /this runtime reads format 1: rebuild the image/],
    [{ ...manifest, kernel: '../vmlinuz' }, /kernel must be a file name inside the image directory/],
    [{ ...manifest, initrd: '' }, /initrd must be a file name/],
    [{ ...manifest, hash: 7 }, /hash must be a non-empty string/],
    [{ ...manifest, bytes: { ...manifest.bytes, total: -1 } }, /bytes\.total must be a byte count/],
    [{ ...manifest, bytes: undefined }, /bytes\.kernel must be a byte count/],
  ])('%o is a TypeError naming the field', (value, message) => {
    expect(() => checkImageManifest(value)).toThrow(TypeError);
    expect(() => checkImageManifest(value)).toThrow(message);
  });
});
