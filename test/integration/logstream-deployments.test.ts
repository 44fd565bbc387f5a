import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TestCutover } from '../support/cutover.js';
import { DeployClient, fakeAppDescriptor, type AppSpec } from '../support/deploy.js';
import { request } from '../support/http.js';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { RecordingClient, logLines, streamUrl } from './logstream-support.js';

/**
 * The log websocket while real deployments run on the test bed: what a pipeline tailing a
 * deployment sees must be exactly GET /deployments/{id}/logs, ending with the outcome.
 */
describe('log websocket during real deployments', { concurrency: 3 }, () => {
  let bed: BedFixture;
  let cutover: TestCutover;
  let api: DeployClient;
  const clients: RecordingClient[] = [];
  const namespace = (prefix: string) => bed.namespace(prefix);

  before(async () => {
    // A drain long enough to watch a replaced version's socket stay open through it.
    bed = await startBedFixture({ CUTOVER_DRAIN_SECONDS: '3', CUTOVER_INGRESS_CLASS: 'cutover-test' });
    ({ cutover, api } = bed);
  });

  after(async () => {
    for (const c of clients) c.close();
    await bed?.close();
  });

  /** Starts a deployment and connects a text and a json socket to it at once. */
  async function deployWatched(ns: string, spec: AppSpec) {
    const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, spec));
    const id = (await api.startDeployment(ns, descriptorId)).body.id as string;
    const text = await RecordingClient.open(streamUrl(cutover.url, ns, id));
    const json = await RecordingClient.open(streamUrl(cutover.url, ns, id, { format: 'json' }));
    clients.push(text, json);
    return { id, text, json };
  }

  async function assertStreamedEverything(ns: string, id: string, text: RecordingClient, json: RecordingClient, outcome: string) {
    for (const c of [text, json]) assert.deepEqual(await c.waitForClose(120_000), { code: 1000, reason: outcome });
    const record = await api.get(ns, id);
    assert.equal(record.status, outcome);
    assert.deepEqual(text.frames, logLines(await api.logs(ns, id)), 'the text socket got exactly GET /logs, in order');

    const frames = json.json();
    assert.equal(frames[0].current, true);
    assert.equal(frames[0].status, 'DEPLOYING', 'the socket was open while the deployment ran (live, not only backlog)');
    const events = (await request(`${cutover.url}/deployments/${id}/events?namespace=${ns}`)).body as Array<{ seq: number; type: string; status?: string }>;
    const streamed = frames.slice(1);
    assert.deepEqual(streamed.map((f) => f.seq), events.map((e) => e.seq), 'the json socket got every event exactly once, in order');
    assert.deepEqual(streamed.filter((f) => f.type === 'status').at(-1), { type: 'status', seq: events.at(-1)!.seq, time: streamed.at(-1).time, status: outcome, step: record.step });
  }

  it('streams a successful deployment: backlog, live lines, the final lines, then 1000 DEPLOYED', async () => {
    const ns = await namespace('ws-ok');
    const { id, text, json } = await deployWatched(ns, {});
    await assertStreamedEverything(ns, id, text, json, 'DEPLOYED');
    assert.match(text.frames.at(-1)!, /deployment successful$/);
  });

  it('streams a failed deployment including its cleanup lines, then 1000 FAILURE; a late socket gets the backlog and a close', async () => {
    const ns = await namespace('ws-fail');
    const { id, text, json } = await deployWatched(ns, { health: 'probe-false', healthCheckTimeout: 8 });
    await assertStreamedEverything(ns, id, text, json, 'FAILURE');
    const failedAt = text.frames.findIndex((f) => / Deployment failed: /.test(f));
    assert.ok(failedAt >= 0 && failedAt < text.frames.length - 1, 'the cleanup lines, written with FAILURE after "Deployment failed", arrive before the close');

    const late = await RecordingClient.open(streamUrl(cutover.url, ns, id));
    clients.push(late);
    assert.deepEqual(await late.waitForClose(), { code: 1000, reason: 'FAILURE' });
    assert.deepEqual(late.frames, text.frames);
  });

  it('keeps a replaced version\'s socket open through its drain until it is UNDEPLOYED', async () => {
    const ns = await namespace('ws-drain');
    const first = await api.deploy(ns, {});
    assert.equal(first.status, 'DEPLOYED', first.failureReason);
    const second = await deployWatched(ns, {});
    await api.waitForStatus(ns, first.id, new Set(['UNDEPLOYING']), 60_000);
    const old = await RecordingClient.open(streamUrl(cutover.url, ns, first.id));
    clients.push(old);
    assert.deepEqual(await old.waitForClose(60_000), { code: 1000, reason: 'UNDEPLOYED' });
    assert.deepEqual(old.frames, logLines(await api.logs(ns, first.id)));
    assert.match(old.frames.at(-1)!, /undeployed \(replaced by /);
    await assertStreamedEverything(ns, second.id, second.text, second.json, 'DEPLOYED');
  });
});
