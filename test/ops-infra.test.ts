/**
 * infra/containers and infra/k8s cannot run here (no Docker engine, no
 * Kubernetes), so they are checked by parsing: valid YAML, the objects the
 * README describes, consistent names between them, cluster files that pass
 * ebbrt's own validation, and image paths that exist in the built repository.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { validateCluster } from '@ebbrt/hosted';
import { ROOT } from './kit/index.js';

const CONTAINERS = path.join(ROOT, 'infra/containers');
const K8S = path.join(ROOT, 'infra/k8s');

type Doc = Record<string, any>;
const docs = (file: string): Doc[] =>
  YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    expect(d.errors, `${file}: ${d.errors.join('; ')}`).toEqual([]);
    return d.toJS() as Doc;
  });

/** Instructions of a Containerfile: [instruction, arguments] per line, continuations joined. */
function instructions(file: string): [string, string][] {
  const text = readFileSync(file, 'utf8').replace(/\\\n\s*/g, ' ');
  return text
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const [word, ...rest] = l.trim().split(/\s+/);
      return [word.toUpperCase(), rest.join(' ')];
    });
}

const envOf = (container: Doc) => Object.fromEntries((container.env as Doc[]).map((e) => [e.name, e.value ?? e.valueFrom]));

describe('container images', () => {
  test.each(['native', 'frontend'])('%s.Containerfile: two stages, files it copies exist, entrypoint is the script', (name) => {
    const steps = instructions(path.join(CONTAINERS, `${name}.Containerfile`));
    expect(steps.filter(([i]) => i === 'FROM').map(([, a]) => a)).toEqual(['node:20-bookworm-slim AS build', 'node:20-bookworm-slim']);
    for (const [, args] of steps.filter(([i, a]) => i === 'COPY' && !a.startsWith('--from'))) {
      const sources = args.split(' ').slice(0, -1);
      for (const source of sources) expect(existsSync(path.join(ROOT, source)), `${name}: COPY ${source}`).toBe(true);
    }
    const entrypoint = JSON.parse(steps.find(([i]) => i === 'ENTRYPOINT')![1]) as string[];
    expect(entrypoint).toEqual(['/usr/local/bin/ebbrt-entrypoint', name]);
    expect(statSync(path.join(CONTAINERS, 'entrypoint.sh')).mode & 0o111).not.toBe(0);
    // The build runs the repository's own build; the paths the image then uses are what it produces.
    expect(steps.find(([i]) => i === 'RUN')![1]).toMatch(/npm ci .*&& npm run build/);
  });

  test('the paths the images and the entrypoint use exist after npm run build', () => {
    const script = readFileSync(path.join(CONTAINERS, 'entrypoint.sh'), 'utf8');
    const native = instructions(path.join(CONTAINERS, 'native.Containerfile'));
    const used = [...script.matchAll(/\/app\/(\S+\.js)/g), ...native.flatMap(([, a]) => [...a.matchAll(/\/app\/(\S+\.js)/g)])].map((m) => m[1]);
    expect(used).toContain('packages/native/dist/node.js');
    expect(used).toContain('packages/hosted/dist/cli.js');
    for (const file of used) expect(existsSync(path.join(ROOT, file)), file).toBe(true);
  });

  test("the containerised frontend's cluster file is valid with the variables the entrypoint sets", () => {
    const spec = validateCluster(YAML.parse(readFileSync(path.join(CONTAINERS, 'cluster.yaml'), 'utf8')), path.join(CONTAINERS, 'cluster.yaml'), {
      POD_IP: '172.18.0.3',
      EBBRT_SECRET: 'a-secret-from-the-env',
      EBBRT_STORE: 'redis://redis:6379/0',
    });
    expect(spec).toMatchObject({
      listen: { host: '172.18.0.3', port: 7400 },
      admin: { host: '0.0.0.0', port: 7401 },
      secretSource: 'env',
      store: 'redis://redis:6379/0',
    });
    expect(spec.groups.map((g) => g.count)).toEqual([0]);
  });

  test('compose.yaml: Redis, a frontend on it, natives joining the frontend with the shared secret', () => {
    const [compose] = docs(path.join(CONTAINERS, 'compose.yaml'));
    expect(Object.keys(compose.services).sort()).toEqual(['frontend', 'native', 'redis']);
    const { frontend, native, redis } = compose.services;
    expect(redis.image).toMatch(/^redis:/);
    for (const service of [frontend, native]) {
      expect(existsSync(path.resolve(CONTAINERS, service.build.context, service.build.dockerfile))).toBe(true);
      expect(service.environment.EBBRT_SECRET).toMatch(/^\$\{EBBRT_SECRET:\?/);
    }
    expect(frontend.environment.EBBRT_STORE).toBe('redis://redis:6379/0');
    expect(native.environment.EBBRT_FRONTEND).toBe('frontend:7400');
    expect(frontend.ports).toEqual(['127.0.0.1:7401:7401']);
    expect(native.deploy.replicas).toBeGreaterThanOrEqual(2);
  });
});

describe('Kubernetes manifests', () => {
  const all = ['namespace.yaml', 'redis.yaml', 'frontend.yaml', 'natives.yaml'].flatMap((f) => docs(path.join(K8S, f)));
  const find = (kind: string, name: string) => all.find((d) => d.kind === kind && d.metadata.name === name)!;

  test('kustomization lists every manifest; every object is in namespace ebbrt', () => {
    const [kustomization] = docs(path.join(K8S, 'kustomization.yaml'));
    for (const file of kustomization.resources as string[]) expect(existsSync(path.join(K8S, file)), file).toBe(true);
    expect(kustomization.resources).toHaveLength(4);
    // The secret is generated from a git-ignored file, never shipped.
    expect(kustomization.secretGenerator).toEqual([{ name: 'ebbrt-secret', namespace: 'ebbrt', files: ['secret=cluster-secret'] }]);
    expect(existsSync(path.join(K8S, 'cluster-secret'))).toBe(false);
    expect(readFileSync(path.join(K8S, '.gitignore'), 'utf8')).toContain('cluster-secret');
    for (const d of all.filter((x) => x.kind !== 'Namespace')) expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe('ebbrt');
    expect(all.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/ebbrt-cluster',
        'Deployment/ebbrt-frontend',
        'Deployment/ebbrt-redis',
        'Namespace/ebbrt',
        'Service/ebbrt-frontend',
        'Service/ebbrt-native',
        'Service/ebbrt-redis',
        'StatefulSet/ebbrt-native',
      ].sort(),
    );
  });

  test('services select the pods of their workloads', () => {
    for (const [service, workload] of [
      ['ebbrt-frontend', find('Deployment', 'ebbrt-frontend')],
      ['ebbrt-redis', find('Deployment', 'ebbrt-redis')],
      ['ebbrt-native', find('StatefulSet', 'ebbrt-native')],
    ] as const) {
      expect(workload.spec.template.metadata.labels).toMatchObject(find('Service', service).spec.selector);
      expect(workload.spec.selector.matchLabels).toEqual(find('Service', service).spec.selector);
    }
    expect(find('StatefulSet', 'ebbrt-native').spec.serviceName).toBe('ebbrt-native');
  });

  test('the frontend: its cluster file is valid, it binds the pod IP, reads the secret from the mounted Secret, uses Redis, admin on loopback', () => {
    const deployment = find('Deployment', 'ebbrt-frontend');
    expect(deployment.spec.replicas).toBe(1);
    const container = deployment.spec.template.spec.containers[0];
    const env = envOf(container);
    expect(env.POD_IP).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(Object.keys(env)).not.toContain('EBBRT_SECRET');
    expect(container.volumeMounts).toContainEqual({ name: 'cluster', mountPath: '/etc/ebbrt' });
    expect(container.volumeMounts).toContainEqual({ name: 'secret', mountPath: '/run/ebbrt/secret', readOnly: true });
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'secret', secret: { secretName: 'ebbrt-secret', defaultMode: 0o400 } });
    const cluster = find('ConfigMap', 'ebbrt-cluster').data['cluster.yaml'] as string;
    const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-k8s-'));
    writeFileSync(path.join(dir, 'secret'), 'from-the-secret-0123');
    const spec = validateCluster(YAML.parse(cluster.replace('/run/ebbrt/secret/secret', path.join(dir, 'secret'))), '/etc/ebbrt/cluster.yaml', {
      POD_IP: '10.244.1.7',
    });
    rmSync(dir, { recursive: true });
    expect(spec).toMatchObject({
      listen: { host: '10.244.1.7', port: 7400 },
      admin: { host: '127.0.0.1', port: 7401 },
      secretSource: 'file',
      store: `redis://${find('Service', 'ebbrt-redis').metadata.name}:6379/0`,
    });
    const ports = Object.fromEntries((container.ports as Doc[]).map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ messenger: spec.listen.port });
    expect(find('Service', 'ebbrt-frontend').spec.ports.map((p: Doc) => p.targetPort)).toEqual(['messenger']);
    expect(container.readinessProbe.exec.command.join(' ')).toContain(`http://127.0.0.1:${spec.admin.port}/api/state`);
  });

  test('natives: a StatefulSet whose pods join the frontend Service with the secret from the Secret and announce their pod IP', () => {
    const set = find('StatefulSet', 'ebbrt-native');
    const env = envOf(set.spec.template.spec.containers[0]);
    const messenger = find('Service', 'ebbrt-frontend').spec.ports.find((p: Doc) => p.name === 'messenger').port;
    expect(env.EBBRT_FRONTEND).toBe(`ebbrt-frontend:${messenger}`);
    expect(env.EBBRT_SECRET_FILE).toBe('/run/ebbrt/secret/secret');
    expect(set.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'secret', mountPath: '/run/ebbrt/secret', readOnly: true });
    expect(env.POD_IP).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(existsSync(path.join(ROOT, env.EBBRT_APP.replace(/^\/app\//, '')))).toBe(true);
    expect(Number(env.EBBRT_CORES)).toBeGreaterThanOrEqual(1);
    expect(set.spec.replicas).toBeGreaterThanOrEqual(2);
  });
});
