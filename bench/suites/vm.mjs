// vm suite: natives booted as QEMU VMs (KVM if the probe shows it
// works, else TCG), next to their peer baseline in the same run, process
// natives. Cases: image size and build time, boot-to-joined (from QEMU's start
// to the join; image and KVM probe done beforehand) for 1 and 2 cores, the QEMU
// process's RSS once joined, and how long a clean stop (goodbye → power-off) takes.
//
// Then memcached served by a VM native, in each network mode (`user`: host
// port forwarded by QEMU; `tap`: the VM's own address on a bridge, root only),
// against the same example on a process native with the same cores, under the
// same memcaslap load (the memcached suite's rounds: flushed cache, fixed
// operations, verification on, hit counts that must agree), one VM at a time,
// rounds interleaved. Options after the suite name are the memcached suite's
// (--ops default 20000 here: a TCG guest serves about a thousand ops/s);
// --memcached-only skips the boot figures.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildNativeImage, NodeAllocator, QemuBackend, resolveApp, silentLogger, startHosted, VM_FAILURE_TIMEOUT_MS, vmFrontendOptions } from '@ebbrt/hosted';
import { median } from '../lib.mjs';
import { memcaslap, need, options, peakRssMiB, round, serveMemcached, SERVER_THREADS } from './memcached.mjs';

const BOOTS = 3;

const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

export async function run(ctx) {
  need('memcaslap');
  const memcachedOnly = ctx.args.includes('--memcached-only');
  const o = options(
    ctx.args.filter((a) => a !== '--memcached-only'),
    ctx.quick,
    { ops: 20_000 },
  );
  const boots = memcachedOnly ? { cases: {}, ratios: {} } : await bootFigures(ctx);
  const served = await memcachedFigures(ctx, o);
  return { cases: { ...boots.cases, ...served.cases }, ratios: { ...boots.ratios, ...served.ratios } };
}

async function bootFigures(ctx) {
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
      for (const [backendName, cores] of [
        ['process', 1],
        ['qemu', 1],
        ['process', 2],
        ['qemu', 2],
      ]) {
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

/** The network modes to measure: `tap` needs root; a --quick smoke run boots one VM only. */
function modes(ctx) {
  if (ctx.quick) return ['user'];
  if (process.getuid?.() === 0) return ['user', 'tap'];
  ctx.log('network mode tap skipped: it needs root (tap devices, a bridge)');
  return ['user'];
}

async function memcachedFigures(ctx, o) {
  const app = resolveApp('memcached').native;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ebbrt-bench-vm-memcached-'));
  const backend = new QemuBackend({ imageDir: dir, warn: (m) => ctx.log(m) });
  const image = await buildNativeImage(app, dir, { force: true });
  const accel = await backend.accel(image.kernel);
  const hosted = await startHosted({
    secret: 'bench-vm-memcached-secret',
    ...vmFrontendOptions(),
    logger: silentLogger,
  });
  const allocator = new NodeAllocator(hosted);
  allocator.registerBackend(backend);
  const vms = modes(ctx).map((mode) => `vm_${mode}`);
  const servers = {};
  /** Per VM: its rounds and the process native's rounds interleaved with them. */
  const samples = Object.fromEntries(vms.map((name) => [name, { vm: [], process: [] }]));
  const rss = {};
  ctx.log(
    `memcaslap -T ${o.threads} -c ${o.concurrency} -X ${o.valueSize} -v ${o.verify / 100}, ${o.rounds} rounds of ${o.ops} operations per server; each one native × ${SERVER_THREADS} cores`,
  );
  try {
    servers.process = await serveMemcached('process', hosted, allocator);
    await memcaslap(servers.process.address, o, Math.ceil(o.ops / 4));
    // One VM at a time: two TCG guests on a shared 2-core machine starve each other (and their handshakes time out).
    for (const name of vms) {
      const mode = name.slice(3);
      const vm = (servers[name] = await serveMemcached(name, hosted, allocator, { backend: 'qemu', network: mode }));
      ctx.log(`VM native (${accel}, network ${mode}) serves memcached at ${vm.address}, ${Math.round(vm.bootToServingMs)} ms after it was asked for`);
      await memcaslap(vm.address, o, Math.ceil(o.ops / 4));
      for (let i = 0; i < o.rounds; i++) {
        // Alternate who goes first, so drift in machine load hits both alike.
        for (const which of i % 2 === 0 ? ['process', 'vm'] : ['vm', 'process']) {
          const r = await round(which === 'vm' ? vm : servers.process, o);
          samples[name][which].push(r);
          ctx.log(
            `${name} round ${i + 1} ${which === 'vm' ? name : 'process'}: ${r.tps} ops/s, p99 ≤ ${r.p99} µs, ${r.hits} hits / ${r.misses} misses, CPU ${(r.userUsPerOp + r.systemUsPerOp).toFixed(2)} µs/op`,
          );
        }
        const [p, v] = [samples[name].process[i], samples[name].vm[i]];
        if (p.hits !== v.hits || p.misses !== v.misses)
          throw new Error(`${name} round ${i + 1}: hit counts differ: process ${p.hits}/${p.misses}, VM ${v.hits}/${v.misses}`);
      }
      rss[name] = peakRssMiB(vm.pid);
      await vm.stop();
    }
  } finally {
    if (servers.process) rss.process = peakRssMiB(servers.process.pid);
    for (const server of Object.values(servers)) await server.stop().catch(() => undefined);
    allocator.killAll();
    await hosted.close();
    await rm(dir, { recursive: true, force: true });
  }
  const value = (n) => Number(n.toFixed(3));
  const cases = {};
  const ratios = {};
  const record = (name, rounds, unitOwner) => {
    const of = (field) => rounds.map((s) => value(s[field]));
    cases[`memcached_${name}_tps`] = { value: median(of('tps')), unit: 'ops/s', samples: of('tps') };
    cases[`memcached_${name}_p99_us`] = { value: median(of('p99')), unit: 'µs (log2 bucket upper edge)', samples: of('p99') };
    const cpu = rounds.map((s) => value(s.userUsPerOp + s.systemUsPerOp));
    cases[`memcached_${name}_cpu_us_per_op`] = { value: median(cpu), unit: `µs CPU per operation (${unitOwner})`, samples: cpu };
  };
  for (const name of vms) {
    const { vm, process: proc } = samples[name];
    record(name, vm, 'QEMU process, guest included');
    record(`process_next_to_${name}`, proc, 'native process');
    cases[`memcached_${name}_peak_rss_mib`] = { value: value(rss[name]), unit: 'MiB (QEMU process)' };
    cases[`memcached_${name}_boot_to_serving_ms`] = { value: value(servers[name].bootToServingMs), unit: 'ms, one boot (allocate to the listening line)' };
    ratios[`vm_vs_process_memcached_${name.slice(3)}`] = Number(median(vm.map((s, i) => s.tps / proc[i].tps)).toFixed(3));
  }
  cases.memcached_process_peak_rss_mib = { value: value(rss.process), unit: 'MiB (native process)' };
  cases.memcached_process_boot_to_serving_ms = { value: value(servers.process.bootToServingMs), unit: 'ms, one boot (allocate to the listening line)' };
  cases.memcached_vm_accel_kvm = { value: accel === 'kvm' ? 1 : 0, unit: '1 = the VMs ran under KVM, 0 = under TCG emulation' };
  return { cases, ratios };
}
