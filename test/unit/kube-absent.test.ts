import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSilentLogger } from '../../src/log.js';
import { KubeClient } from '../../src/kube/client.js';
import { KubeError } from '../../src/kube/errors.js';
import { KubernetesCluster } from '../../src/deployer/kubernetes.js';

/**
 * Most of a deployment's reads look for objects that are not there (the Ingress and HTTPRoute of
 * an app without a frontend, the names a new version must not find): such a 404 is an answer,
 * not a failure — it is neither thrown nor counted in cutover_kubernetes_errors_total.
 */
describe('a read of an object that does not exist', () => {
  let server: Server;
  let client: KubeClient;
  const urls: string[] = [];
  const notFound = JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'ingresses "web" not found', code: 404 });

  before(async () => {
    server = createServer((req, res) => {
      urls.push(req.url ?? '');
      if (req.url?.includes('/endpointslices')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}');
      else if (req.url?.includes('/ingresses/web')) res.writeHead(404, { 'content-type': 'application/json' }).end(notFound);
      else if (req.url?.includes('/services/web')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"metadata":{"name":"web"}}');
      else res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: 'no', code: 403 }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new KubeClient({ name: 'test', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });

  after(async () => {
    await client.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('is undefined from KubeClient.jsonOrAbsent, while json() still throws the 404', async () => {
    assert.equal(await client.jsonOrAbsent('GET', '/apis/networking.k8s.io/v1/namespaces/ns/ingresses/web'), undefined);
    assert.deepEqual(await client.jsonOrAbsent('GET', '/api/v1/namespaces/ns/services/web'), { metadata: { name: 'web' } });
    await assert.rejects(client.json('GET', '/apis/networking.k8s.io/v1/namespaces/ns/ingresses/web'), (err: KubeError) => err.status === 404 && err.reason === 'NotFound');
    await assert.rejects(client.jsonOrAbsent('GET', '/api/v1/namespaces/ns/secrets/x'), (err: KubeError) => err.status === 403, 'only a 404 means absent');
  });

  it('is undefined from KubernetesCluster.get and is not reported as a failed call', async () => {
    const failures: string[] = [];
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 1000, retryBudgetMs: 1000, log: createSilentLogger(), onError: (operation, err) => failures.push(`${operation} ${err.status}`) });
    assert.equal(await cluster.get('Ingress', 'ns', 'web'), undefined);
    assert.equal((await cluster.get('Service', 'ns', 'web'))?.metadata?.name, 'web');
    assert.deepEqual(failures, []);
    await assert.rejects(cluster.get('Secret', 'ns', 'x'), (err: KubeError) => err.status === 403);
    assert.deepEqual(failures, ['get Secret 403'], 'a real failure is still reported');
  });

  it('a cached list asks the API server\'s cache as it is (resourceVersion=0); a list by default is a consistent read', async () => {
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 1000, retryBudgetMs: 1000, log: createSilentLogger() });
    urls.length = 0;
    await cluster.readyEndpoints('ns', 'web', undefined, 'cached');
    await cluster.readyEndpoints('ns', 'web');
    assert.equal(urls.length, 2);
    assert.equal(new URL(urls[0]!, 'http://x').searchParams.get('resourceVersion'), '0');
    assert.equal(new URL(urls[1]!, 'http://x').searchParams.has('resourceVersion'), false);
  });

  it('a list no older than a resourceVersion asks the cache from there (resourceVersionMatch=NotOlderThan)', async () => {
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 1000, retryBudgetMs: 1000, log: createSilentLogger() });
    urls.length = 0;
    await cluster.readyEndpoints('ns', 'web', undefined, { notOlderThan: '4711' });
    const query = new URL(urls[0]!, 'http://x').searchParams;
    assert.equal(query.get('resourceVersion'), '4711');
    assert.equal(query.get('resourceVersionMatch'), 'NotOlderThan');
  });
});
