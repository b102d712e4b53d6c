/**
 * The qemu backend for real: natives booted as QEMU virtual machines (TCG on
 * this machine, whose /dev/kvm does not run guests), their images built once
 * in `beforeAll` and reused (the builder skips unchanged images). Each VM
 * boot takes ~10-15 s under TCG; the whole file about 2 minutes. The apps
 * run on VM natives too: the offload example's native mode renders there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { NodeUnavailableError, QemuBackend, probeKvm, resolveApp, VM_FAILURE_TIMEOUT_MS, type VmImage } from '@ebbrt/hosted';
import { HelloKey } from '@ebbrt/ebb-protocol/internal';
import { VmProbe } from './fixtures/vm/ebbs.js';
import { renderDocument } from '@ebbrt/examples/offload/markdown.js';
import { sampleDocument } from '@ebbrt/examples/offload/sample.js';
import { CLI, FIXTURES, lines, runCli, settle, spawnNode, startFrontend, TEST_SECRET, until } from './kit/index.js';
import { skipFor, vmMissing } from './kit/requirements.js';

const VM_APP = path.join(FIXTURES, 'vm/native.js');
const ADDRESS = String.raw`127\.0\.0\.1:(\d+)`;

const SKIP = skipFor('qemu tests', vmMissing());

describe.skipIf(SKIP)('qemu backend (natives as VMs)', () => {
  const backend = new QemuBackend();
  let vmImage: VmImage;

  beforeAll(async () => {
    // One image per app, in the cache the CLI's backend uses too: later runs find them up to date.
    [vmImage] = await Promise.all([VM_APP, resolveApp('helloworld').native, resolveApp('counter').native].map((app) => backend.image(app)));
  }, 120_000);

  test('the KVM probe answers within a few seconds; auto falls back to TCG with a warning where KVM runs no guest', async () => {
    const probe = await probeKvm(vmImage.kernel, { timeoutMs: 3000 });
    expect(probe.ms).toBeLessThan(6000);
    const warnings: string[] = [];
    const auto = new QemuBackend({ warn: (message) => warnings.push(message) });
    const started = performance.now();
    const accel = await auto.accel(vmImage.kernel);
    expect(performance.now() - started).toBeLessThan(6000);
    if (probe.works) {
      expect(accel).toBe('kvm');
      expect(warnings).toEqual([]);
    } else {
      expect(accel).toBe('tcg');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/TCG/);
      await expect(new QemuBackend({ accel: 'kvm' }).accel(vmImage.kernel)).rejects.toMatchObject({ code: 'KVM_UNAVAILABLE' });
    }
  });

  test('a missing QEMU binary is QEMU_NOT_FOUND, from the KVM probe and from the launch', async () => {
    const spec = {
      app: VM_APP,
      cores: 1,
      frontend: '127.0.0.1:1',
      joinToken: 'ab'.repeat(32),
      allocationId: 'no-qemu',
      env: {},
      args: [],
      stdio: 'pipe' as const,
    };
    for (const accel of ['auto', 'tcg'] as const) {
      const error = await new QemuBackend({ qemu: '/nonexistent/qemu-system-x86_64', imageDir: vmImage.dir, accel }).launch(spec).catch((e: unknown) => e);
      expect(error, accel).toMatchObject({ code: 'QEMU_NOT_FOUND' });
      expect((error as Error).message).toMatch(/apt-get install qemu-system-x86/);
    }
  });

  test('ebbrt image build: prints the size (at most 80 MB compressed) and rebuilds only when an input changed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ebbrt-image-test-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    // An app folder outside the workspace: the bundler still finds @ebbrt/* through the runtime's node_modules.
    const app = path.join(dir, 'app');
    await cp(path.join(FIXTURES, 'vm'), app, { recursive: true });
    const out = path.join(dir, 'image');
    const build = () => runCli(['image', 'build', app, '--out', out], { timeoutMs: 60_000 });
    const summary = /^image (.+): kernel [\d.]+ MB \+ initramfs [\d.]+ MB = ([\d.]+) MB compressed \(.*; (built in [\d.]+ s|up to date)\)$/;

    const first = await build();
    expect(first.code, first.stderr).toBe(0);
    const m = summary.exec(first.stdout.trim());
    expect(m, first.stdout).not.toBeNull();
    expect(m![1]).toBe(out);
    expect(Number(m![2])).toBeLessThanOrEqual(80);
    expect(m![3]).toMatch(/^built/);
    expect(existsSync(path.join(out, 'initramfs.cpio.gz')) && existsSync(path.join(out, 'vmlinuz'))).toBe(true);

    const again = await build();
    expect(summary.exec(again.stdout.trim())?.[3]).toBe('up to date');

    await appendFile(path.join(app, 'native.js'), 'export const changed = 1;\n');
    const changed = await build();
    expect(summary.exec(changed.stdout.trim())?.[3]).toMatch(/^built/);
  }, 90_000);

  test("ebbrt run helloworld --backend qemu --nodes 1: the greeting from the VM's forwarded address, exit 0 within 60 s", async () => {
    const r = await runCli(['run', 'helloworld', '--backend', 'qemu', '--nodes', '1'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(1);
    const greeting = new RegExp(`^${ADDRESS}: Hello World$`).exec(out[0]);
    expect(greeting, out[0]).not.toBeNull();
    // The address the node joined with (its host port forward) is the one it greets from.
    expect(r.stderr).toMatch(new RegExp(`node 2 joined from 127\\.0\\.0\\.1:${greeting![1]} \\(2 cores\\)`));
  }, 70_000);

  test('ebbrt run counter --backend qemu --nodes 1 --cores 2: the exact total from a 2-core VM', async () => {
    const r = await runCli(['run', 'counter', '--backend', 'qemu', '--nodes', '1', '--cores', '2'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(new RegExp(`^node 2 \\(${ADDRESS}\\): 20000 = 2 cores × 10000$`)),
      'total 20000 = 1 nodes × 2 cores × 10000',
    ]);
  }, 70_000);

  test("offload --mode native on a 2-core VM native: every render equals the local renderer's, both cores render", async () => {
    const proc = spawnNode(CLI, ['run', 'offload', '--backend', 'qemu', '--nodes', '1', '--cores', '2', '--', '--mode', 'native', '--port', '0'], {
      timeoutMs: 240_000,
    });
    onTestFinished(() => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(-proc.child.pid!, 'SIGKILL');
    });
    const serving = () => /offload: serving (http:\/\/\S+)/.exec(proc.stdout());
    await until(() => serving() !== null || proc.child.exitCode !== null, 180_000, 'offload on a VM native to serve');
    const url = serving()?.[1];
    expect(url, `${proc.stdout()}\n${proc.stderr()}`).toBeDefined();
    const docs = Array.from({ length: 16 }, (_, i) => new TextEncoder().encode(sampleDocument(2 + (i % 4), i + 1)));
    const replies = await Promise.all(
      docs.map(async (doc) => {
        const response = await fetch(`${url}/render`, { method: 'POST', body: doc, headers: { 'content-type': 'text/markdown' } });
        return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
      }),
    );
    replies.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      expect(reply.body.equals(Buffer.from(renderDocument(docs[i])))).toBe(true);
    });
    const status = (await (await fetch(`${url}/status`)).json()) as { mode: string; natives: { nodeId: number }[]; cores: { core: number; calls: number }[] };
    expect(status.mode).toBe('native');
    expect(status.cores.map((c) => c.core)).toEqual([0, 1]);
    for (const core of status.cores) expect(core.calls).toBeGreaterThan(0);
    expect(proc.stderr()).toMatch(/joined/);
    proc.child.kill('SIGINT');
    expect((await proc.result).code).toBe(130);
  }, 300_000);

  test("mixed cluster: a process native and a VM native call each other; the VM joined with a join token from fw_cfg, none on QEMU's command line; it stops with a clean power-off", async () => {
    const fe = await startFrontend({ failureTimeoutMs: VM_FAILURE_TIMEOUT_MS });
    const [proc] = await fe.allocate(1, VM_APP, { backend: 'process' });
    const [vm] = await fe.allocate(1, VM_APP, { backend: 'qemu', cores: 2 });
    const rt = fe.hosted.runtime;
    expect(vm.backend).toBe('qemu');
    expect(fe.hosted.members.get(vm.nodeId)?.conn.hello?.key).toBe(HelloKey.joinToken);
    const qemuArgs = readFileSync(`/proc/${vm.pid}/cmdline`, 'utf8').split('\0');
    expect(qemuArgs).toContain('-fw_cfg');
    expect(qemuArgs.join(' ')).not.toContain(TEST_SECRET);
    expect(qemuArgs.join(' ')).not.toMatch(/[0-9a-f]{64}|ebbrt\.secret/i);
    for (const core of [0, 1]) expect(await rt.remote(VmProbe, vm.nodeId, core).whoami()).toEqual({ nodeId: vm.nodeId, core, address: vm.address, inVm: true });
    expect(await rt.remote(VmProbe, proc.nodeId).whoami()).toMatchObject({ nodeId: proc.nodeId, inVm: false });
    // VM → process (the VM reaches the host's loopback at 10.0.2.2) and process → VM (through the port forward).
    expect(await rt.remote(VmProbe, vm.nodeId).ask(proc.nodeId)).toMatchObject({ nodeId: proc.nodeId, address: proc.address, inVm: false });
    expect(await rt.remote(VmProbe, proc.nodeId).ask(vm.nodeId)).toMatchObject({ nodeId: vm.nodeId, address: vm.address, inVm: true });

    const stopping = performance.now();
    // A goodbye: the runtime exits, the init powers off, QEMU exits 0 (a kill would be SIGKILL).
    expect(await vm.stop(10_000)).toBe(0);
    expect(performance.now() - stopping).toBeLessThan(10_000);
    expect(fe.hosted.members.has(vm.nodeId)).toBe(false);
    expect(await rt.remote(VmProbe, proc.nodeId).whoami()).toMatchObject({ nodeId: proc.nodeId });
  }, 90_000);

  test('killing QEMU rejects every in-flight call with NodeUnavailableError', async () => {
    const fe = await startFrontend({ failureTimeoutMs: VM_FAILURE_TIMEOUT_MS });
    const [vm] = await fe.allocate(1, VM_APP, { backend: 'qemu', cores: 2 });
    const rt = fe.hosted.runtime;
    await Promise.all([0, 1].map((core) => rt.remote(VmProbe, vm.nodeId, core).whoami()));
    const calls = Array.from({ length: 20 }, (_, i) => settle(rt.remote(VmProbe, vm.nodeId, i % 2).sleep(20_000)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const killedAt = performance.now();
    vm.kill();
    for (const result of await Promise.all(calls)) {
      expect(result.error).toBeInstanceOf(NodeUnavailableError);
      expect((result.error as NodeUnavailableError).code).toBe('NODE_UNAVAILABLE');
      expect(result.at - killedAt).toBeLessThan(2000);
    }
    expect(await vm.exited).toBe('SIGKILL');
    // The JOIN connection (through QEMU's user network) closed with QEMU: the node is gone from the membership.
    await until(() => !fe.hosted.members.has(vm.nodeId), 2000, 'the VM node left');
    expect(performance.now() - killedAt).toBeLessThan(2000);
  }, 90_000);

  test("a VM that does not join in time fails with the console's last lines, and is killed", async () => {
    const fe = await startFrontend({ failureTimeoutMs: VM_FAILURE_TIMEOUT_MS });
    const error = await fe.allocate(1, VM_APP, { backend: 'qemu', joinTimeoutMs: 4000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NodeUnavailableError);
    const message = (error as Error).message;
    expect(message).toMatch(/did not join within 4000 ms; its last output:/);
    // Kernel messages reached the console: the error shows how far the boot got.
    expect(message).toMatch(/\n\[\s*\d+\.\d+\] \S/);
    const log = /\[console log: (.+)\]/.exec(message)?.[1];
    expect(log && existsSync(log), message).toBe(true);
    // QEMU was killed: its QMP socket, removed when it exits, is gone.
    await until(() => !existsSync(path.join(path.dirname(log!), 'qmp.sock')), 3000, 'QEMU exit');
  }, 30_000);
});
