/**
 * The part of `npm run demo` that shows cutover at work: a sample app deployed twice (v1, then
 * v2) through the REST API, each deployment's log streamed live over the websocket, then real
 * HTTP through the stable Service's endpoints — and, when the test bed runs Traefik, through the
 * gateway with the app's Host — to show which version answers.
 */
import { request } from 'undici';
import WebSocket from 'ws';
import { CoreV1Api, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';

const NAMESPACE = 'demo';
const APP = 'hello';

const descriptor = {
  namespace: NAMESPACE, appName: APP, newVersion: '#', replicas: 2,
  frontend: 'hello.demo.test', useHealthCheck: true, healthCheckType: 'probe', healthCheckPath: 'health', healthCheckPort: 8080,
  drainSeconds: 5,
  podspec: { containers: [{ name: 'web', image: 'example.invalid/hello:1', ports: [{ containerPort: 8080, name: 'http' }] }] },
};

type Say = (line: string) => void;

async function api<T>(base: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: T; location: string | null }> {
  const res = await fetch(`${base}${path}`, { ...init, headers: { 'content-type': 'application/json', ...(init.headers ?? {}) } });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, location: res.headers.get('location') };
}

async function ensureNamespace(kc: KubeConfig, say: Say): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.readNamespace({ name: NAMESPACE });
  } catch {
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    say(`created namespace ${NAMESPACE}`);
  }
  for (let i = 0; i < 100; i++) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: NAMESPACE });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Streams the deployment's log until the websocket closes with the final status. */
function follow(base: string, id: string, print: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/stream/deployments/${id}/logs?namespace=${NAMESPACE}`);
    ws.on('message', (data) => print(`  │ ${data.toString()}`));
    ws.on('close', (_code, reason) => resolve(reason.toString()));
    ws.on('error', reject);
  });
}

async function whoAnswers(kc: KubeConfig): Promise<string[]> {
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  for (let attempt = 0; attempt < 50; attempt++) {
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: NAMESPACE, labelSelector: `kubernetes.io/service-name=${APP}` });
    const ips = slices.items.flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses));
    const answers = await Promise.all(ips.map(async (ip) => {
      const res = await fetch(`http://${ip}:8080/`).catch(() => undefined);
      const body = res ? ((await res.json().catch(() => ({}))) as { pod?: string; version?: string }) : {};
      return `${ip} → pod ${body.pod ?? '?'} version ${body.version ?? '?'}`;
    }));
    if (answers.length > 0) return answers;
    await new Promise((r) => setTimeout(r, 200));
  }
  return [];
}

/** Four requests through the gateway with the app's Host: which pods and versions answer. */
async function throughGateway(gatewayUrl: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await request(gatewayUrl, { headers: { host: descriptor.frontend }, headersTimeout: 2000, bodyTimeout: 2000 }).catch((err: Error) => err);
    if (res instanceof Error) {
      out.push(`no answer: ${res.message}`);
      continue;
    }
    const body = (await res.body.json().catch(() => ({}))) as { pod?: string; version?: string };
    out.push(`HTTP ${res.statusCode} from pod ${body.pod ?? '?'} version ${body.version ?? '?'} (X-Cutover-Version: ${res.headers['x-cutover-version'] ?? '-'})`);
  }
  return out;
}

export async function runDemo(base: string, kc: KubeConfig, say: Say, gatewayUrl?: string): Promise<void> {
  await ensureNamespace(kc, say);
  const created = await api<{ id: string }>(base, `/descriptors/?namespace=${NAMESPACE}`, { method: 'POST', body: JSON.stringify(descriptor) });
  if (created.status !== 201) throw new Error(`creating the demo descriptor failed: ${created.status} ${JSON.stringify(created.body)}`);
  say(`stored descriptor ${created.body.id} (app ${APP}, 2 replicas, probe health check on :8080/health)`);
  for (const round of [1, 2]) {
    const started = await api<{ id: string; version: string }>(base, `/deployments/?namespace=${NAMESPACE}&descriptorId=${created.body.id}`, { method: 'POST' });
    if (started.status !== 202) throw new Error(`starting deployment ${round} failed: ${started.status} ${JSON.stringify(started.body)}`);
    say(`deployment ${round}: version ${started.body.version} (${started.location}); live log:`);
    const outcome = await follow(base, started.body.id, (line) => process.stdout.write(`${line}\n`));
    say(`deployment ${round} ended ${outcome}`);
    if (outcome !== 'DEPLOYED') return;
    for (const line of await whoAnswers(kc)) say(`  traffic via Service ${APP}: ${line}`);
    if (gatewayUrl) for (const line of await throughGateway(gatewayUrl)) say(`  traffic via Traefik (Host ${descriptor.frontend}): ${line}`);
  }
}
