// vm suite: natives booted as QEMU VMs (KVM if the probe shows it
// works, else TCG), next to their peer baseline in the same run, process
// natives. Cases: image size and build time, boot-to-joined (from QEMU's start
// to the join; image and KVM probe done beforehand) for 1 and 2 cores, the QEMU
// process's RSS once joined, and how long a clean stop (goodbye → power-off) takes.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildNativeImage, NodeAllocator, QemuBackend, resolveApp, startHosted, VM_FAILURE_TIMEOUT_MS } from '@ebbrt/hosted';
import { median } from '../lib.mjs';

const BOOTS = 3;

const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

export async function run(ctx) {
  const app = resolveApp('counter').native;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ebbrt-bench-vm-'));
  try {
    const buildStarted = performance.now();
    const image = await buildNativeImage(app, dir, { force: true });
    const buildMs = performance.now() - buildStarted;
    ctx.log(`image ${(image.manifest.bytes.total / 1e6).toFixed(1)} MB built in ${(buildMs / 1000).toFixed(1)} s`);

    const backend = new QemuBackend({ imageDir: dir, warn: (m) => ctx.log(m) });
    const accelUsed = await backend.accel(image.kernel);
    const hosted = await startHosted({ secret: 'bench-vm-secret', failureTimeoutMs: VM_FAILURE_TIMEOUT_MS });
    const allocator = new NodeAllocator(hosted);
    allocator.registerBackend(backend);
    const results = {};
    try {
      for (const [backendName, cores] of [['process', 1], ['qemu', 1], ['process', 2], ['qemu', 2]]) {
        const joins = [];
        const rss = [];
        const stops = [];
        for (let i = 0; i < (ctx.quick ? 1 : BOOTS); i++) {
          const started = performance.now();
          const node = await allocator.allocateNode(app, { backend: backendName, cores, stdio: 'pipe' });
          joins.push(performance.now() - started);
          rss.push(rssMiB(node.pid));
          const stopping = performance.now();
          await node.stop(10_000);
          stops.push(performance.now() - stopping);
          ctx.log(`${backendName} ${cores} core(s): joined in ${Math.round(joins.at(-1))} ms, RSS ${Math.round(rss.at(-1))} MiB`);
        }
        results[`${backendName}_${cores}`] = { join: median(joins), rss: median(rss), stop: median(stops) };
      }
    } finally {
      allocator.killAll();
      await hosted.close();
    }
    const cases = {
      image_compressed_mb: { value: image.manifest.bytes.total / 1e6, unit: 'MB' },
      image_unpacked_initramfs_mb: { value: image.manifest.bytes.uncompressedInitrd / 1e6, unit: 'MB' },
      image_build_s: { value: buildMs / 1000, unit: 's' },
      [`vm_${accelUsed}_join_1core_ms_p50`]: { value: results.qemu_1.join, unit: 'ms' },
      [`vm_${accelUsed}_join_2cores_ms_p50`]: { value: results.qemu_2.join, unit: 'ms' },
      process_join_1core_ms_p50: { value: results.process_1.join, unit: 'ms' },
      process_join_2cores_ms_p50: { value: results.process_2.join, unit: 'ms' },
      vm_qemu_rss_2cores_mib_p50: { value: results.qemu_2.rss, unit: 'MiB' },
      process_rss_2cores_mib_p50: { value: results.process_2.rss, unit: 'MiB' },
      vm_stop_ms_p50: { value: results.qemu_2.stop, unit: 'ms' },
    };
    return { cases, ratios: { vm_vs_process_join_2cores: results.qemu_2.join / results.process_2.join } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
