// Traefik v3 on the test bed (docs/testbed.md §Traefik): real HTTP through Traefik's web entryPoint on
// loopback, with a Host header, to fake pods in the pod network namespace. Ingress (class `traefik`),
// HTTPRoute (attached to the bed's Gateway), a backend switch and how long it takes to reach traffic,
// a real Traefik Middleware (CRD from Traefik's module), and which EndpointSlice conditions each
// provider routes to.
// Run: npm test -- test/integration/traefik.test.ts
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiextensionsV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, NetworkingV1Api, type KubeConfig,
  type V1EndpointConditions, type V1Ingress,
} from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import {
  createTestNamespace, loadKubeConfig, useTestbed, waitFor, waitForFakePods, waitForReadyPods, type TestNamespace, type Testbed,
} from '../testbed/harness.js';
import { status } from '../testbed/testbed.js';

const BED_TIMEOUT_MS = 45 * 60_000; // a cold run builds Kubernetes first
const SWITCHES = 5;
const GW = { group: 'gateway.networking.k8s.io', version: 'v1' };
const TRAEFIK_API = { group: 'traefik.io', version: 'v1alpha1' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The fake pod's JSON (pod, version, namespace, ip), when it answered. */
  pod?: { pod: string; version: string | null; namespace: string; ip: string };
  text: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

describe('Traefik on the test bed', { timeout: BED_TIMEOUT_MS + 5 * 60_000 }, () => {
  let bed: Testbed;
  let kc: KubeConfig;
  let ns: TestNamespace;
  let core: CoreV1Api;
  let net: NetworkingV1Api;
  let custom: CustomObjectsApi;
  // Own connection pool, closed at the end, so no keep-alive socket holds the test process open.
  const http = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });

  /** GET through Traefik's web entryPoint, as `curl -H 'Host: <host>' http://127.0.0.1:<port><path>`. */
  const viaTraefik = async (host: string, path = '/'): Promise<Answer> => {
    const res = await request(`${bed.traefik.url}${path}`, { dispatcher: http, headers: { host } });
    const text = await res.body.text();
    let pod: Answer['pod'];
    try { pod = res.headers['x-fake-pod'] ? JSON.parse(text) as Answer['pod'] : undefined; } catch { pod = undefined; }
    return { status: res.statusCode, headers: res.headers, ...(pod ? { pod } : {}), text };
  };

  /** Polls (every 5 ms) until `ok`; returns the answer and how long it took. */
  const waitForAnswer = async (host: string, what: string, ok: (a: Answer) => boolean, timeoutMs = 15_000) => {
    const t0 = performance.now();
    const answer = await waitFor(`${host} through Traefik: ${what}`, async () => {
      const a = await viaTraefik(host);
      return ok(a) ? { done: true as const, value: a } : { done: false as const, reason: `HTTP ${a.status} ${a.text.slice(0, 120)}` };
    }, { timeoutMs, intervalMs: 5 });
    return { answer, ms: performance.now() - t0 };
  };

  const fromVersion = (version: string) => (a: Answer) => a.status === 200 && a.pod?.version === version && a.pod.namespace === ns.name;

  const ingressFor = (name: string, host: string, service: string, annotations: Record<string, string> = {}): V1Ingress => ({
    metadata: { name, annotations },
    spec: {
      ingressClassName: bed.traefik.ingressClass,
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }],
    },
  });

  const httpRouteFor = (name: string, host: string, service: string) => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute',
    metadata: { name },
    spec: { parentRefs: [bed.traefik.parentRef], hostnames: [host], rules: [{ backendRefs: [{ name: service, port: 80 }] }] },
  });

  const createWorkload = async (version: string, replicas: number) => {
    const labels = { app: 'web', version };
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: `web-${version}` },
        spec: {
          replicas,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ name: 'http', containerPort: 8080 }], env: [{ name: 'FAKE_HEALTH', value: 'healthy' }] }] },
          },
        },
      },
    });
    // The Service's port is named `http`: Traefik matches EndpointSlice ports to Service ports by name.
    await core.createNamespacedService({
      namespace: ns.name,
      body: { metadata: { name: version }, spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] } },
    });
    const pods = await waitForReadyPods(kc, ns.name, `app=web,version=${version}`, replicas);
    const ips = pods.map((p) => p.status?.podIP ?? '');
    await waitForFakePods(bed.fakePodsSocket, ips);
    await waitFor(`ready endpoints of Service ${version}`, async () => {
      const slices = await kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: ns.name, labelSelector: `kubernetes.io/service-name=${version}` });
      const ready = slices.items.flatMap((s) => s.endpoints.filter((e) => e.conditions?.ready === true)).length;
      return ready === replicas ? { done: true as const, value: ready } : { done: false as const, reason: `${ready} ready endpoints` };
    }, { timeoutMs: 30_000, intervalMs: 50 });
    return ips;
  };

  let blueIps: string[] = [];

  before(async () => {
    bed = await useTestbed();
    kc = loadKubeConfig(bed.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    net = kc.makeApiClient(NetworkingV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    ns = await createTestNamespace(kc, 'traefik');
    blueIps = await createWorkload('blue', 2);
    await createWorkload('green', 2);
  }, { timeout: BED_TIMEOUT_MS });

  after(async () => {
    await ns?.delete();
    await http.close();
    await bed?.release();
  });

  it('runs Traefik on loopback, healthy, with the bed\'s IngressClass, GatewayClass and a Programmed Gateway', async (t) => {
    assert.match(bed.traefik.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ping = await request(`${bed.traefik.apiUrl}/ping`, { dispatcher: http });
    assert.equal(ping.statusCode, 200);
    assert.equal((await ping.body.text()).trim(), 'OK');
    const ic = await net.readIngressClass({ name: bed.traefik.ingressClass });
    assert.equal(ic.spec?.controller, 'traefik.io/ingress-controller');
    assert.notEqual(ic.metadata?.annotations?.['ingressclass.kubernetes.io/is-default-class'], 'true', 'not the default class');
    const gc = await custom.getClusterCustomObject({ ...GW, plural: 'gatewayclasses', name: bed.traefik.gatewayClass }) as
      { spec: { controllerName: string }; status?: { conditions?: { type: string; status: string }[] } };
    assert.equal(gc.spec.controllerName, 'traefik.io/gateway-controller');
    assert.equal(gc.status?.conditions?.find((c) => c.type === 'Accepted')?.status, 'True');
    const gw = await custom.getNamespacedCustomObject({ ...GW, plural: 'gateways', namespace: bed.traefik.gateway.namespace, name: bed.traefik.gateway.name }) as
      { spec: { listeners: { name: string; port: number }[] }; status?: { conditions?: { type: string; status: string }[] } };
    assert.equal(gw.spec.listeners[0]?.port, Number(new URL(bed.traefik.url).port), 'listener port = web entryPoint port');
    assert.equal(gw.status?.conditions?.find((c) => c.type === 'Programmed')?.status, 'True');
    // Figures for docs/testbed.md: RSS now, and how long the last `up` took to add Traefik.
    const st = await status();
    const row = st.components.find((c) => c.name === 'traefik');
    assert.equal(row?.health, true);
    t.diagnostic(`traefik pid ${row?.pid}, RSS ${row?.rssMiB} MiB; last add by up: ${JSON.stringify(st.state?.traefik?.timings)} ms`);
  });

  it('routes an Ingress of class traefik by Host header to a pod: 200 from the app', async (t) => {
    await net.createNamespacedIngress({ namespace: ns.name, body: ingressFor('web', 'a.example.test', 'blue') });
    const { answer, ms } = await waitForAnswer('a.example.test', 'a blue pod answers', fromVersion('blue'));
    assert.equal(answer.status, 200);
    assert.ok(blueIps.includes(answer.pod?.ip ?? ''), `answered by ${answer.pod?.ip}, a blue pod`);
    assert.equal(answer.headers['x-fake-pod'], `${ns.name}/${answer.pod?.pod}`);
    t.diagnostic(`Ingress created -> first 200 through Traefik: ${ms.toFixed(0)} ms`);
    // An unknown host is not routed.
    assert.equal((await viaTraefik('nobody.example.test')).status, 404);
  });

  it('routes an HTTPRoute attached to the bed\'s Gateway: 200 from the app, route Accepted', async (t) => {
    await custom.createNamespacedCustomObject({ ...GW, plural: 'httproutes', namespace: ns.name, body: httpRouteFor('web', 'b.example.test', 'blue') });
    const { answer, ms } = await waitForAnswer('b.example.test', 'a blue pod answers', fromVersion('blue'));
    assert.equal(answer.status, 200);
    t.diagnostic(`HTTPRoute created -> first 200 through Traefik: ${ms.toFixed(0)} ms`);
    await waitFor('HTTPRoute status: Accepted and ResolvedRefs by the bed\'s Gateway', async () => {
      const r = await custom.getNamespacedCustomObject({ ...GW, plural: 'httproutes', namespace: ns.name, name: 'web' }) as
        { status?: { parents?: { parentRef: { name: string }; controllerName: string; conditions: { type: string; status: string }[] }[] } };
      const parent = r.status?.parents?.find((p) => p.parentRef.name === bed.traefik.gateway.name);
      const ok = parent?.controllerName === 'traefik.io/gateway-controller' &&
        ['Accepted', 'ResolvedRefs'].every((type) => parent.conditions.some((c) => c.type === type && c.status === 'True'));
      return ok ? { done: true as const, value: undefined } : { done: false as const, reason: JSON.stringify(r.status ?? null) };
    }, { timeoutMs: 15_000, intervalMs: 100 });
  });

  /** Switches a pointer between blue and green SWITCHES times; per switch: the write returned -> the new version answers. */
  const measureSwitches = async (host: string, write: (to: string) => Promise<void>) => {
    const latencies: number[] = [];
    let to = 'blue';
    for (let i = 0; i < SWITCHES; i++) {
      to = to === 'blue' ? 'green' : 'blue';
      await write(to);
      const { ms } = await waitForAnswer(host, `${to} answers after the switch`, fromVersion(to), 10_000);
      latencies.push(ms);
      // Once switched, it stays switched (Traefik swaps its whole configuration at once).
      for (let k = 0; k < 10; k++) assert.equal((await viaTraefik(host)).pod?.version, to, `request ${k} after switch ${i}`);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    return { latencies, p50: percentile(sorted, 50), max: sorted[sorted.length - 1] ?? NaN };
  };

  it('switching the Ingress backend to another Service changes who answers (propagation measured)', async (t) => {
    const r = await measureSwitches('a.example.test', async (to) => {
      const ing = await net.readNamespacedIngress({ name: 'web', namespace: ns.name });
      ing.spec!.rules![0]!.http!.paths[0]!.backend.service!.name = to;
      await net.replaceNamespacedIngress({ name: 'web', namespace: ns.name, body: ing });
    });
    t.diagnostic(`Ingress switch -> new backend answers: p50 ${r.p50.toFixed(0)} ms, max ${r.max.toFixed(0)} ms (${r.latencies.map((x) => x.toFixed(0)).join(', ')})`);
  });

  it('switching the HTTPRoute backendRef changes who answers (propagation measured)', async (t) => {
    const r = await measureSwitches('b.example.test', async (to) => {
      const route = await custom.getNamespacedCustomObject({ ...GW, plural: 'httproutes', namespace: ns.name, name: 'web' }) as
        { spec: { rules: { backendRefs: { name: string }[] }[] } };
      route.spec.rules[0]!.backendRefs[0]!.name = to;
      await custom.replaceNamespacedCustomObject({ ...GW, plural: 'httproutes', namespace: ns.name, name: 'web', body: route });
    });
    t.diagnostic(`HTTPRoute switch -> new backend answers: p50 ${r.p50.toFixed(0)} ms, max ${r.max.toFixed(0)} ms (${r.latencies.map((x) => x.toFixed(0)).join(', ')})`);
  });

  it('applies a real Traefik Middleware (traefik.io CRD) referenced from an Ingress: headers middleware adds a response header', async () => {
    // The bed's CRD is Traefik's own (full schema), not a stand-in.
    const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: 'middlewares.traefik.io' });
    const spec = crd.spec.versions.find((v) => v.name === 'v1alpha1')?.schema?.openAPIV3Schema?.properties?.spec;
    assert.ok(spec?.properties?.headers && spec.properties.redirectRegex && spec.properties.compress, 'Middleware CRD with Traefik\'s schema');
    await custom.createNamespacedCustomObject({
      ...TRAEFIK_API, plural: 'middlewares', namespace: ns.name,
      body: { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', metadata: { name: 'add-header' }, spec: { headers: { customResponseHeaders: { 'X-Cutover-Test': 'via-middleware' } } } },
    });
    // Traefik's schema is enforced: an unknown middleware field is refused by the API server.
    await assert.rejects(custom.createNamespacedCustomObject({
      ...TRAEFIK_API, plural: 'middlewares', namespace: ns.name,
      body: { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', metadata: { name: 'bad' }, spec: { headers: { customResponseHeaders: 'not-a-map' } } },
    }));
    await net.createNamespacedIngress({
      namespace: ns.name,
      body: ingressFor('with-middleware', 'c.example.test', 'blue', { 'traefik.ingress.kubernetes.io/router.middlewares': `${ns.name}-add-header@kubernetescrd` }),
    });
    const { answer } = await waitForAnswer('c.example.test', 'header X-Cutover-Test from the Middleware',
      (a) => fromVersion('blue')(a) && a.headers['x-cutover-test'] === 'via-middleware');
    assert.equal(answer.headers['x-cutover-test'], 'via-middleware');
    // The same app without the middleware has no such header.
    assert.equal((await viaTraefik('a.example.test')).headers['x-cutover-test'], undefined);
  });

  it('readiness: which EndpointSlice conditions the Ingress and the Gateway providers route to', async (t) => {
    // A Service without selector and an EndpointSlice we write ourselves, pointing at a (serving) blue pod.
    await core.createNamespacedService({
      namespace: ns.name,
      body: { metadata: { name: 'manual' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
    });
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const slice = (conditions: V1EndpointConditions) => ({
      metadata: { name: 'manual-1', labels: { 'kubernetes.io/service-name': 'manual', 'endpointslice.kubernetes.io/managed-by': 'traefik-test.cutover.dev' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [{ addresses: [blueIps[0]!], conditions }],
    });
    await discovery.createNamespacedEndpointSlice({ namespace: ns.name, body: slice({ ready: true }) });
    await net.createNamespacedIngress({ namespace: ns.name, body: ingressFor('manual', 'd.example.test', 'manual') });
    await custom.createNamespacedCustomObject({ ...GW, plural: 'httproutes', namespace: ns.name, body: httpRouteFor('manual', 'e.example.test', 'manual') });
    await waitForAnswer('d.example.test', 'ready endpoint via Ingress', fromVersion('blue'));
    await waitForAnswer('e.example.test', 'ready endpoint via HTTPRoute', fromVersion('blue'));

    const cases: [string, V1EndpointConditions][] = [
      ['ready:false (serving unset)', { ready: false }],
      ['ready:false serving:false', { ready: false, serving: false }],
      ['ready:false serving:true terminating:true', { ready: false, serving: true, terminating: true }],
      ['ready:false serving:true', { ready: false, serving: true }],
      ['all unset', {}],
      ['ready:true', { ready: true }],
    ];
    const observed: Record<string, { ingress: number; gateway: number }> = {};
    for (const [label, conditions] of cases) {
      const current = await discovery.readNamespacedEndpointSlice({ name: 'manual-1', namespace: ns.name });
      await discovery.replaceNamespacedEndpointSlice({
        name: 'manual-1', namespace: ns.name, body: { ...slice(conditions), metadata: { ...slice(conditions).metadata, resourceVersion: current.metadata!.resourceVersion! } },
      });
      // Propagation takes well under a second (previous tests); sample after 2 s, 5 requests each.
      await new Promise((r) => setTimeout(r, 2_000));
      const sample = async (host: string) => {
        const statuses = new Set<number>();
        for (let i = 0; i < 5; i++) statuses.add((await viaTraefik(host)).status);
        assert.equal(statuses.size, 1, `${host} (${label}): stable answer, got ${[...statuses].join(',')}`);
        return [...statuses][0]!;
      };
      observed[label] = { ingress: await sample('d.example.test'), gateway: await sample('e.example.test') };
      t.diagnostic(`endpoint ${label}: Ingress -> HTTP ${observed[label].ingress}, HTTPRoute -> HTTP ${observed[label].gateway}`);
    }
    // What docs/testbed.md states (Traefik 3.7.15): the Ingress provider also routes to endpoints whose
    // `serving` is unset even when `ready` is false, and drops `serving: false`; the Gateway provider
    // routes to `ready: true` endpoints only.
    assert.equal(observed['ready:false (serving unset)']?.ingress, 200);
    assert.notEqual(observed['ready:false (serving unset)']?.gateway, 200);
    assert.notEqual(observed['ready:false serving:false']?.ingress, 200);
    assert.notEqual(observed['ready:false serving:false']?.gateway, 200);
    assert.deepEqual(observed['ready:true'], { ingress: 200, gateway: 200 });
  });
});
