/** Test kit for the invoker's tests: two namespaces' API keys, the rejection of a client call, zip actions. */
import { deflateRawSync } from 'node:zlib';

export const ALPHA_KEY = '11111111-2222-3333-4444-555555555555:alphaSecretKey0123456789';
export const BETA_KEY = '66666666-7777-8888-9999-000000000000:betaSecretKey0123456789';

/** The rejection of `promise` (an `openwhisk` client call), which must reject. */
export async function failure(promise: Promise<unknown>): Promise<{ statusCode: number; error: any; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { statusCode: number; error: any; message: string };
  }
  throw new Error('expected the request to fail');
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A zip archive of `files` (name → content), each entry deflated, as `zip`
 * would write it; `declared` overrides an entry's declared size. Entries over
 * 1 MiB carry CRC 0 (the invoker does not check CRCs, and one over a zip
 * bomb's tens of MB in JavaScript takes seconds).
 */
export function zip(files: Record<string, string | Buffer>, declared: Record<string, number> = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const packed = deflateRawSync(data);
    const crc = data.length > 1024 * 1024 ? 0 : crc32(data);
    const nameBytes = Buffer.from(name);
    const size = declared[name] ?? data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, packed);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + packed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
