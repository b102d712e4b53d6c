/**
 * A writer of `newc` cpio archives, the format the Linux kernel unpacks into
 * its root file system at boot (Documentation/driver-api/early-userspace).
 * Written here rather than shelling out to `cpio` so the archive is
 * reproducible: fixed inode numbers, owner root, mtime 0, entries in the order
 * given. The same inputs give the same bytes, so the image's content hash is
 * the hash of what was put in.
 */
import { createReadStream } from 'node:fs';
import { ImageBuildError } from './errors.js';

/** File type bits of `st_mode`. */
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** One entry of the archive. Paths are relative to the root, without a leading slash. */
export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; mode?: number; data: Buffer }
  /** A file copied from disk while the archive is written (large binaries are streamed, not buffered). */
  | { type: 'copy'; path: string; mode?: number; source: string; size: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; mode?: number; major: number; minor: number };

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const ZEROS = Buffer.alloc(4);

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** The 110-byte newc header followed by the NUL-terminated name, padded to 4 bytes. */
export function cpioHeader(ino: number, mode: number, size: number, name: string, rdev: { major: number; minor: number } = { major: 0, minor: 0 }): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, size, 0, 0, rdev.major, rdev.minor, nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([header, nameBytes, ZEROS.subarray(0, pad4(header.length + nameBytes.length))]);
}

/**
 * Yields the archive's bytes, entry by entry, then the `TRAILER!!!` entry.
 * Pipe it through gzip to get an initramfs.
 */
export async function* cpioArchive(entries: Iterable<CpioEntry>): AsyncGenerator<Buffer> {
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '');
    switch (entry.type) {
      case 'dir':
        yield cpioHeader(ino++, S_IFDIR | (entry.mode ?? 0o755), 0, name);
        break;
      case 'file':
        yield cpioHeader(ino++, S_IFREG | (entry.mode ?? 0o644), entry.data.length, name);
        yield entry.data;
        yield ZEROS.subarray(0, pad4(entry.data.length));
        break;
      case 'copy': {
        yield cpioHeader(ino++, S_IFREG | (entry.mode ?? 0o755), entry.size, name);
        let copied = 0;
        for await (const chunk of createReadStream(entry.source)) {
          copied += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        // The header already promised `size` bytes: a file that changed meanwhile would corrupt every later entry.
        if (copied !== entry.size) throw new ImageBuildError(`${entry.source} changed size while the archive was written (${entry.size} → ${copied} bytes)`);
        yield ZEROS.subarray(0, pad4(entry.size));
        break;
      }
      case 'symlink': {
        const target = Buffer.from(entry.target);
        yield cpioHeader(ino++, S_IFLNK | 0o777, target.length, name);
        yield target;
        yield ZEROS.subarray(0, pad4(target.length));
        break;
      }
      case 'char':
        yield cpioHeader(ino++, S_IFCHR | (entry.mode ?? 0o600), 0, name, { major: entry.major, minor: entry.minor });
        break;
    }
  }
  yield cpioHeader(0, 0, 0, 'TRAILER!!!');
}
