import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../support/etcd.js';
import { CutoverProcess } from '../support/process.js';
import { unreachableKubeconfig } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { waitFor } from '../support/wait.js';

describe('cutover as a process', () => {
  let etcd: TestEtcd;
  const env = () => ({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint,
    CUTOVER_ETCD_PREFIX: `/proc-${randomUUID().slice(0, 8)}/`,
    CUTOVER_SHUTDOWN_GRACE_SECONDS: '10',
    CUTOVER_KUBECONFIG: unreachableKubeconfig(),
  });

  before(async () => {
    etcd = await TestEtcd.create();
  });
  after(async () => {
    await etcd?.destroy();
  });

  it('on SIGTERM stops accepting, finishes the in-flight request, and exits 0', async () => {
    const proc = await CutoverProcess.start(env());
    try {
      const body = JSON.stringify(sampleDescriptor({ appName: 'inflight' }));
      const half = Math.floor(body.length / 2);
      // Expect: 100-continue proves the server has parsed the headers: the request is in flight.
      const req = http.request(`${proc.url}/descriptors/?namespace=life`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue' },
      });
      const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
      });
      await new Promise<void>((resolve) => req.once('continue', () => resolve()));
      req.write(body.slice(0, half));

      proc.signal('SIGTERM');
      await waitFor('the shutdown log line', () => proc.logLines().some((l) => l['msg'] === 'shutting down'));
      await assert.rejects(fetch(`${proc.url}/healthz`), 'new connections are refused during shutdown');

      req.end(body.slice(half));
      const res = await response;
      assert.equal(res.status, 201, res.text);
      assert.equal(await proc.exited(), 0);
      assert.ok(proc.logLines().some((l) => l['msg'] === 'cutover stopped'));
    } finally {
      await proc.stop();
    }
  });

  it('keeps everything it wrote across a restart of cutover', async () => {
    const e = env();
    const first = await CutoverProcess.start(e);
    let id: string;
    try {
      const created = await request(`${first.url}/descriptors/?namespace=restart`, { method: 'POST', json: sampleDescriptor() });
      assert.equal(created.status, 201);
      id = created.body.id;
    } finally {
      assert.equal(await first.stop(), 0);
    }
    const second = await CutoverProcess.start(e);
    try {
      const got = await request(`${second.url}/descriptors/${id}/?namespace=restart`);
      assert.equal(got.status, 200);
      assert.equal(got.body.id, id);
    } finally {
      await second.stop();
    }
  });
});
