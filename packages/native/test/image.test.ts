/**
 * The image builder's pure parts: the newc cpio writer (read back by a small
 * reader here; the kernel itself unpacks it in test/qemu.test.ts), the module
 * load order from modules.dep, and the init script.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { cpioArchive, ImageBuildError, initScript, moduleLoadOrder, moduleName, parseModulesDep, type CpioEntry } from '@ebbrt/native/image';

interface ReadEntry {
  name: string;
  mode: number;
  ino: number;
  rdev: [number, number];
  data: Buffer;
  /** Offset of the entry's header: the format keeps every header 4-byte aligned. */
  offset: number;
}

/** A newc reader, the inverse of what the kernel's initramfs unpacker expects. */
function readCpio(archive: Buffer): ReadEntry[] {
  const entries: ReadEntry[] = [];
  let at = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    expect(archive.toString('ascii', at, at + 6)).toBe('070701');
    const field = (i: number) => parseInt(archive.toString('ascii', at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.toString('utf8', at + 110, at + 110 + nameSize - 1);
    expect(archive[at + 110 + nameSize - 1]).toBe(0);
    const dataAt = align(at + 110 + nameSize);
    if (name === 'TRAILER!!!') {
      expect(align(dataAt)).toBe(archive.length);
      return entries;
    }
    entries.push({ name, mode: field(1), ino: field(0), rdev: [field(9), field(10)], data: archive.subarray(dataAt, dataAt + size), offset: at });
    at = align(dataAt + size);
  }
}

async function archive(entries: CpioEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of cpioArchive(entries)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('cpioArchive (newc)', () => {
  test('directories, files, a streamed copy, a symlink and a device node read back exactly, 4-byte aligned, with a trailer', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cpio-test-'));
    try {
      const source = path.join(dir, 'big');
      const big = Buffer.alloc(200_003, 7);
      await writeFile(source, big);
      const entries = readCpio(
        await archive([
          { type: 'dir', path: '/bin' },
          { type: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
          { type: 'copy', path: 'bin/big', source, size: big.length },
          { type: 'symlink', path: '/bin/sh', target: 'busybox' },
          { type: 'char', path: '/dev/console', major: 5, minor: 1 },
          { type: 'file', path: '/odd', data: Buffer.from('x') },
        ]),
      );
      expect(entries.map((e) => e.name)).toEqual(['bin', 'init', 'bin/big', 'bin/sh', 'dev/console', 'odd']);
      expect(entries.map((e) => e.mode)).toEqual([0o040755, 0o100755, 0o100755, 0o120777, 0o020600, 0o100644]);
      expect(entries.every((e) => e.offset % 4 === 0)).toBe(true);
      expect(new Set(entries.map((e) => e.ino)).size).toBe(entries.length);
      expect(entries[1].data.toString()).toBe('#!/bin/sh\n');
      expect(entries[2].data.equals(big)).toBe(true);
      expect(entries[3].data.toString()).toBe('busybox');
      expect(entries[4].rdev).toEqual([5, 1]);
      expect(entries[5].data.toString()).toBe('x');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the same entries give the same bytes (the image hash is the hash of its inputs)', async () => {
    const entries: CpioEntry[] = [
      { type: 'dir', path: '/app' },
      { type: 'file', path: '/app/a.js', data: Buffer.from('export {}') },
    ];
    expect((await archive(entries)).equals(await archive(entries))).toBe(true);
  });

  test('a copied file whose size changed while archiving is an ImageBuildError, not a corrupt archive', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cpio-test-'));
    try {
      const source = path.join(dir, 'f');
      await writeFile(source, 'abc');
      const error = await archive([{ type: 'copy', path: '/f', source, size: 10 }]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImageBuildError);
      expect((error as ImageBuildError).code).toBe('IMAGE_BUILD_FAILED');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// The lines of Debian 6.1 cloud kernel's modules.dep that matter here.
const MODULES_DEP = `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/acpi/button.ko:
kernel/drivers/input/evdev.ko:
`;

describe('kernel modules', () => {
  test('load order: every dependency before its user, each module once', () => {
    const plan = moduleLoadOrder(parseModulesDep(MODULES_DEP), ['virtio_pci', 'virtio-net', 'button']);
    const names = plan.load.map(moduleName);
    expect(names).toEqual([
      'virtio_pci_legacy_dev',
      'virtio_pci_modern_dev',
      'virtio_ring',
      'virtio',
      'virtio_pci',
      'failover',
      'net_failover',
      'virtio_net',
      'button',
    ]);
    expect(plan.builtin).toEqual([]);
  });

  test('a module built into the kernel needs no file', () => {
    const plan = moduleLoadOrder(parseModulesDep(MODULES_DEP), ['evdev', 'virtio_blk'], 'kernel/drivers/block/virtio_blk.ko\n');
    expect(plan.load.map(moduleName)).toEqual(['evdev']);
    expect(plan.builtin).toEqual(['virtio_blk']);
  });

  test('a module the kernel lacks, or a dependency cycle, is an ImageBuildError naming it', () => {
    expect(() => moduleLoadOrder(parseModulesDep(MODULES_DEP), ['e1000'])).toThrow(/e1000/);
    expect(() => moduleLoadOrder(parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n'), ['a'])).toThrow(ImageBuildError);
  });

  test('module names: compressed suffixes dropped, dashes as underscores', () => {
    expect(moduleName('kernel/drivers/net/virtio-net.ko.xz')).toBe('virtio_net');
  });
});

describe('initScript', () => {
  const script = initScript({ modules: ['/lib/modules/failover.ko', '/lib/modules/virtio_net.ko'], libraryDirs: ['/lib/x86_64-linux-gnu', '/lib64'] });

  test('mounts the kernel file systems, loads the modules in order, configures the user-mode NIC (eth0, or eth1 when ebbrt.net puts eth0 on a bridge)', () => {
    expect(script.startsWith('#!/bin/busybox sh\n')).toBe(true);
    for (const fs of ['proc proc /proc', 'sysfs sysfs /sys', 'devtmpfs devtmpfs /dev']) expect(script).toContain(`mount -t ${fs}`);
    expect(script).toContain('for module in /lib/modules/failover.ko /lib/modules/virtio_net.ko; do');
    expect(script).toContain('ip addr add 10.0.2.15/24 dev $user');
    expect(script).toContain('[ -n "$own" ] && user=eth1');
    expect(script).toContain('ip addr add "$own" dev eth0');
    expect(script).toContain('ip route add default via 10.0.2.2');
  });

  test('runs the runtime as a child it waits for (reaping), then powers off whatever its status', () => {
    expect(script).toContain('EBBRT_KERNEL_CMDLINE=/proc/cmdline LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/lib64 /bin/node /app/boot.js --app /app/app.js &');
    expect(script.indexOf('wait $!')).toBeGreaterThan(script.indexOf('/bin/node'));
    expect(script.trimEnd().endsWith('poweroff -f')).toBe(true);
  });
});
