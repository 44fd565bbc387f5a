// The `traefik` ingress profile (docs/deployments.md "Ingress profiles") proven by real requests through
// the test bed's Traefik v3, once for an app routed by an Ingress and once for an app routed by an
// HTTPRoute attached to the bed's Gateway: sticky sessions, compression, extra response headers and the
// www redirect. Where the HTTPRoute cannot carry a feature, the test asserts what happens instead.
// Run: CUTOVER_TESTBED_DIR=... npm test -- test/integration/traefik-profile.test.ts
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { waitFor } from '../support/wait.js';
import { useTestbed, type TestbedTraefik } from '../testbed/harness.js';

const REPLICAS = 3;
const HEADERS = [{ Header: 'X-Frame-Options', Value: 'DENY' }, { Header: 'X-Profile-Test', Value: 'traefik profile' }];
const STICKY_ANNOTATION = 'traefik.ingress.kubernetes.io/service.sticky.cookie';
const TRAEFIK_API = { group: 'traefik.io', version: 'v1alpha1' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The raw body (still compressed when the answer is). */
  raw: Buffer;
  /** The fake pod's JSON, when the (uncompressed) body is one. */
  pod?: { pod: string; version: string | null; namespace: string; ip: string };
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

describe('the traefik ingress profile through Traefik: Ingress and HTTPRoute', { concurrency: 2, timeout: 10 * 60_000 }, () => {
  let bed: BedFixture;
  let traefik: TestbedTraefik;
  // Own connection pool, closed at the end, so no keep-alive socket holds the test process open.
  const http = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });

  before(async () => {
    const probe = await useTestbed();
    traefik = probe.traefik;
    await probe.release();
    bed = await startBedFixture({
      CUTOVER_INGRESS_PROFILE: 'traefik', CUTOVER_INGRESS_CLASS: traefik.ingressClass,
      CUTOVER_GATEWAY: `${traefik.gateway.namespace}/${traefik.gateway.name}/${traefik.gateway.sectionName}`,
      CUTOVER_VERSION_HEADER: 'X-Cutover-Version', CUTOVER_TRAFFIC_PROBE_URL: traefik.url,
    }, { observe: true });
  });

  after(async () => {
    await http.close();
    await bed?.close();
  });

  /** One request through Traefik's web entryPoint with a Host header (fetch() may not set Host; undici's request may). */
  async function via(host: string, options: { path?: string; method?: 'GET' | 'POST'; headers?: Record<string, string> } = {}): Promise<Answer> {
    const res = await request(`${traefik.url}${options.path ?? '/'}`, {
      dispatcher: http, method: options.method ?? 'GET', headers: { host, ...(options.headers ?? {}) },
    });
    const raw = Buffer.from(await res.body.arrayBuffer());
    let pod: Answer['pod'];
    if (res.headers['content-encoding'] === undefined) {
      try { pod = JSON.parse(raw.toString('utf8')) as Answer['pod']; } catch { pod = undefined; }
    }
    return { status: res.statusCode, headers: res.headers, raw, ...(pod ? { pod } : {}) };
  }

  /** `name=value` of the Set-Cookie header (attributes dropped), if any. */
  function cookieOf(a: Answer): string | undefined {
    const set = a.headers['set-cookie'];
    const first = Array.isArray(set) ? set[0] : set;
    return first?.split(';')[0];
  }

  for (const routing of ['ingress', 'httproute'] as const) {
    describe(`routing "${routing}"`, { concurrency: 1 }, () => {
      let ns: string;
      let host: string;
      let deployment: any;
      const spec = () => ({
        replicas: REPLICAS, frontend: host, routing,
        useStickySessions: true, useCompression: true, additionHttpHeaders: HEADERS, redirectWww: true,
      });

      before(async () => {
        ns = await bed.namespace(`profile-${routing === 'ingress' ? 'ing' : 'route'}`);
        host = `${ns}.example.test`;
        deployment = await bed.api.deploy(ns, spec());
        assert.equal(deployment.status, 'DEPLOYED', deployment.failureReason);
        // Traffic has moved (the traffic probe through Traefik, and for the route its status) before any request.
        await waitFor('the deployment to have converged', async () => (await bed.api.get(ns, deployment.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
        await waitFor(`all ${REPLICAS} pods to answer through Traefik`, async () => {
          const pods = new Set<string>();
          for (let i = 0; i < 4 * REPLICAS; i++) {
            const a = await via(host);
            if (a.status !== 200 || a.pod?.namespace !== ns) return false;
            pods.add(a.pod.pod);
          }
          return pods.size === REPLICAS;
        }, { timeoutMs: 20_000, intervalMs: 100 });
      });

      it('what cutover created for the features', async () => {
        const custom = bed.kc.makeApiClient(CustomObjectsApi);
        const middlewares = ((await custom.listNamespacedCustomObject({ ...TRAEFIK_API, namespace: ns, plural: 'middlewares' })) as any).items
          .map((m: any) => m.metadata.name).sort();
        // The sticky annotation goes on the Services whatever the routing (workload.ts, stable-service.ts).
        for (const svc of ['shop', 'shop-1']) {
          assert.equal((await bed.cluster.service(ns, svc))?.metadata?.annotations?.[STICKY_ANNOTATION], 'true', `Service ${svc}`);
        }
        const logs = await bed.api.logs(ns, deployment.id);
        if (routing === 'ingress') {
          assert.deepEqual(middlewares, ['shop-1-version', 'shop-compress', 'shop-headers', 'shop-www-redirect']);
          const ing = await bed.cluster.ingress(ns, 'shop');
          assert.equal(ing?.metadata?.annotations?.['traefik.ingress.kubernetes.io/router.middlewares'],
            `${ns}-shop-compress@kubernetescrd,${ns}-shop-headers@kubernetescrd,${ns}-shop-1-version@kubernetescrd`);
          const www = await bed.cluster.ingress(ns, 'shop-www-redirect');
          assert.equal(www?.metadata?.annotations?.['traefik.ingress.kubernetes.io/router.middlewares'], `${ns}-shop-www-redirect@kubernetescrd`);
          assert.match(logs, /sticky sessions: Traefik cookie affinity on the Services/);
        } else {
          // Only the compression Middleware (the route's own): headers and the redirect are standard HTTPRoute filters.
          assert.deepEqual(middlewares, ['shop-route-compress']);
          const get = (name: string) => custom.getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes', name }) as Promise<any>;
          const main = await get('shop');
          assert.deepEqual(main.spec.rules[0].filters, [
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [
              { name: 'X-Frame-Options', value: 'DENY' }, { name: 'X-Profile-Test', value: 'traefik profile' }, { name: 'X-Cutover-Version', value: '1' },
            ] } },
            { type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'shop-route-compress' } },
          ]);
          const www = await get('shop-www-redirect');
          assert.deepEqual(www.spec.rules[0].filters, [{ type: 'RequestRedirect', requestRedirect: { hostname: host, statusCode: 301 } }]);
          assert.deepEqual(await bed.cluster.ingresses(ns), [], 'routing httproute: no Ingress');
          assert.match(logs, /compression: Traefik Middleware shop-route-compress through an ExtensionRef filter/);
        }
      });

      if (routing === 'ingress') {
        it('sticky sessions: the answer sets a cookie; sending it back sticks to one pod; without it requests spread', async () => {
          // Without a cookie, Traefik's round robin spreads requests, and every answer offers a cookie for the pod that answered.
          const cookieOfPod = new Map<string, string>();
          const seen: string[] = [];
          for (let i = 0; i < 4 * REPLICAS; i++) {
            const a = await via(host);
            assert.equal(a.status, 200);
            const cookie = cookieOf(a);
            assert.ok(cookie, `answer ${i} sets a cookie: ${JSON.stringify(a.headers)}`);
            assert.match(String(a.headers['set-cookie']), /^_[0-9a-f]{5}=[0-9a-f]{16}; Path=\//, 'Traefik\'s default cookie: "_" + 5 hex digits of the sha1 of its service name, the server\'s hash as value, path /');
            seen.push(a.pod!.pod);
            const known = cookieOfPod.get(a.pod!.pod);
            if (known) assert.equal(cookie, known, 'one cookie value per pod');
            else cookieOfPod.set(a.pod!.pod, cookie);
          }
          assert.equal(new Set(seen).size, REPLICAS, `without the cookie requests spread over all pods: ${seen.join(' ')}`);
          // With the cookie, every request goes to the pod it names, and no new cookie is set.
          for (const [pod, cookie] of cookieOfPod) {
            for (let i = 0; i < 2 * REPLICAS; i++) {
              const a = await via(host, { headers: { cookie } });
              assert.equal(a.status, 200);
              assert.equal(a.pod?.pod, pod, `the cookie ${cookie} sticks to ${pod}`);
              assert.equal(a.headers['set-cookie'], undefined, 'a valid cookie is not set again');
            }
          }
        });
      } else {
        it('sticky sessions: not applied to an HTTPRoute — no cookie, requests spread over the pods', async () => {
          // Traefik's kubernetesgateway provider reads only traefik.io/service.nativelb (and nodeportlb) from a
          // Service; the sticky annotation is for the kubernetesingress provider, and the standard channel has no
          // sessionPersistence. So the annotation cutover wrote (asserted above) changes nothing here.
          const seen: string[] = [];
          for (let i = 0; i < 4 * REPLICAS; i++) {
            const a = await via(host, { headers: { cookie: '_0123ab=anything' } });
            assert.equal(a.status, 200);
            assert.equal(a.headers['set-cookie'], undefined, 'no affinity cookie');
            seen.push(a.pod!.pod);
          }
          assert.equal(new Set(seen).size, REPLICAS, `requests spread over all pods: ${seen.join(' ')}`);
        });

        it('sticky sessions: the deployment log says they are not applied to the HTTPRoute', async () => {
          const logs = await bed.api.logs(ns, deployment.id);
          assert.doesNotMatch(logs, /sticky sessions: Traefik cookie affinity on the Services/);
          assert.match(logs, /sticky sessions: not applied to the HTTPRoute/);
        });
      }

      it('extra response headers: the descriptor\'s additionHttpHeaders (and the version header) are in every answer', async () => {
        for (let i = 0; i < REPLICAS; i++) {
          const a = await via(host);
          assert.equal(a.status, 200);
          assert.equal(a.headers['x-frame-options'], 'DENY');
          assert.equal(a.headers['x-profile-test'], 'traefik profile');
          assert.equal(a.headers['x-cutover-version'], '1');
          assert.equal(a.pod?.namespace, ns);
        }
      });

      it('www redirect: Host www.<frontend> answers 301 to the bare host, keeping path and query', async () => {
        const a = await via(`www.${host}`, { path: '/a/b?c=1' });
        assert.equal(a.status, 301, a.raw.toString());
        assert.equal(a.headers.location, `http://${host}/a/b?c=1`);
        assert.equal(a.headers['x-fake-pod'], undefined, 'answered by Traefik, not by a pod');
        // Other methods: Traefik's redirectRegex (permanent) answers 308 to anything but GET; the HTTPRoute's
        // RequestRedirect answers the statusCode it names (301) to every method.
        const post = await via(`www.${host}`, { path: '/form', method: 'POST' });
        assert.equal(post.status, routing === 'ingress' ? 308 : 301);
        assert.equal(post.headers.location, `http://${host}/form`);
        // The bare host is not redirected.
        assert.equal((await via(host)).status, 200);
      });

      it('compression: a large answer comes gzipped to a client that accepts gzip; a small one, and one to a client that does not, come plain', async () => {
        const path = '/?pad=4000'; // the fake pods lengthen their JSON answer (docs/testbed.md)
        const gz = await via(host, { path, headers: { 'accept-encoding': 'gzip' } });
        assert.equal(gz.status, 200);
        assert.equal(gz.headers['content-encoding'], 'gzip');
        assert.ok(gz.raw.length < 1000, `compressed: ${gz.raw.length} bytes`);
        const json = JSON.parse(gunzipSync(gz.raw).toString('utf8')) as NonNullable<Answer['pod']> & { pad: string };
        assert.equal(json.namespace, ns);
        assert.equal(json.version, '1');
        assert.equal(json.pad.length, 4000);
        assert.match(one(gz.headers.vary) ?? '', /accept-encoding/i);
        assert.equal(gz.headers['x-profile-test'], 'traefik profile', 'compression keeps the other headers');
        // A client that does not accept gzip gets the same answer plain.
        const plain = await via(host, { path });
        assert.equal(plain.headers['content-encoding'], undefined);
        assert.equal(plain.raw.length > 4000, true);
        // Traefik leaves answers under its 1024-byte minimum alone.
        const small = await via(host, { headers: { 'accept-encoding': 'gzip' } });
        assert.ok(small.raw.length < 1024, `the fake pod answers ${small.raw.length} bytes`);
        assert.equal(small.headers['content-encoding'], undefined);
        assert.equal(small.pod?.namespace, ns);
      });

      it('a second deployment keeps every feature, and no request fails during its switch', async () => {
        // Requests all the time while version 2 is deployed and traffic moves.
        const failures: string[] = [];
        const versions = new Set<string>();
        let stop = false;
        let sent = 0;
        const loop = (async () => {
          while (!stop) {
            sent++;
            try {
              const a = await via(host);
              if (a.status !== 200 || !a.pod) failures.push(`${new Date().toISOString()} HTTP ${a.status} ${a.raw.toString().slice(0, 80)}`);
              else versions.add(a.pod.version ?? 'null');
            } catch (err) {
              failures.push(`${new Date().toISOString()} ${(err as Error).message}`);
            }
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        let v2: any;
        try {
          v2 = await bed.api.deploy(ns, spec());
          // Regression: with routing "httproute" the Ingress target's switch used to remove the Middleware the
          // route references (both targets named it {app}-compress); now each target owns its own objects.
          assert.doesNotMatch(await bed.api.logs(ns, v2.id), /removed [^\n]*Middleware shop-(route-)?compress/, 'no compression Middleware is removed');
          assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
          await waitFor('version 2 to have converged', async () => (await bed.api.get(ns, v2.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
          await bed.cluster.waitForWorkloads(ns, 'shop', ['shop-2']);
        } finally {
          stop = true;
          await loop;
        }
        assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed during the redeploy`);
        assert.deepEqual([...versions].sort(), ['1', '2']);

        // cutover's Middlewares: the version tag of version 1 is gone, the rest stay, owned by version 2.
        const custom = bed.kc.makeApiClient(CustomObjectsApi);
        const names = async () => ((await custom.listNamespacedCustomObject({ ...TRAEFIK_API, namespace: ns, plural: 'middlewares' })) as any).items
          .map((m: any) => m.metadata.name).sort();
        await waitFor('the version 1 tag to be removed', async () => !(await names()).includes('shop-1-version'), { timeoutMs: 20_000 });
        assert.deepEqual(await names(), routing === 'ingress' ? ['shop-2-version', 'shop-compress', 'shop-headers', 'shop-www-redirect'] : ['shop-route-compress']);
        const mw = await custom.getNamespacedCustomObject({ ...TRAEFIK_API, namespace: ns, plural: 'middlewares', name: routing === 'ingress' ? 'shop-compress' : 'shop-route-compress' }) as any;
        assert.deepEqual(mw.spec, { compress: {} });
        assert.equal(mw.metadata.deletionTimestamp, undefined, 'the Middleware is not being deleted');
        assert.equal(mw.metadata.annotations['cutover.io/deployment-id'], v2.id);

        const a = await via(host);
        assert.equal(a.status, 200);
        assert.equal(a.pod?.version, '2');
        assert.equal(a.headers['x-cutover-version'], '2');
        assert.equal(a.headers['x-frame-options'], 'DENY');
        assert.equal(a.headers['x-profile-test'], 'traefik profile');
        assert.equal((await via(host, { path: '/?pad=4000', headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'gzip');
        if (routing === 'ingress') {
          const cookie = cookieOf(a);
          assert.ok(cookie, 'version 2 sets its own cookie');
          const pods = new Set<string>();
          for (let i = 0; i < 2 * REPLICAS; i++) pods.add((await via(host, { headers: { cookie } })).pod!.pod);
          assert.deepEqual([...pods], [a.pod!.pod]);
        } else {
          assert.equal(a.headers['set-cookie'], undefined);
        }
        const www = await via(`www.${host}`);
        assert.equal(www.status, 301);
        assert.equal(www.headers.location, `http://${host}/`);
      });
    });
  }
});
