import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { authEnv, authSecrets, bearer, createKey, hsToken } from '../support/security.js';
import { signRequest } from '../../src/auth/signing.js';
import { EngineStandIn, RecordingClient, streamUrl, type SimulatedDeployment } from './logstream-support.js';

/**
 * The log websocket with authentication on: it must refuse before upgrading, with the REST API's
 * rules. These tests fail until the upgrade handler (src/api/websocket/log-stream.ts) calls
 * `Authenticator.authenticateRequest(req, undefined)` and `assertNamespaceAllowed(caller, ns)`
 * (src/auth/) before `handleUpgrade`.
 */
const NOT_WIRED = 'the upgrade was not refused: wire Authenticator.authenticateRequest + assertNamespaceAllowed into src/api/websocket/log-stream.ts before handleUpgrade';

describe('security: the log websocket', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let engine: EngineStandIn;
  let deployment: SimulatedDeployment;
  let teamA: string;
  let teamB: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000' }));
    engine = EngineStandIn.create(etcd.endpoint, cutover.config.etcdPrefix);
    deployment = await engine.createDeployment('team-a');
    teamA = await hsToken(secrets.jwtSecret, { sub: 'alice', namespaces: ['team-a'] });
    teamB = await hsToken(secrets.jwtSecret, { sub: 'bob', namespaces: ['team-b'] });
  });

  after(async () => {
    await engine?.close();
    await cutover?.stop();
    await etcd?.destroy();
  });

  const url = () => streamUrl(cutover.url, 'team-a', deployment.id);
  const path = () => url().replace(/^ws:\/\/[^/]+/, '');

  /** The HTTP refusal of an upgrade, or a failure naming what is missing when the socket opened. */
  async function refusal(headers: Record<string, string>): Promise<{ status: number; body: any; headers: Record<string, string | string[] | undefined> }> {
    const client = new RecordingClient(url(), headers);
    try {
      await client.opened;
    } catch {
      // refused: inspected below
    }
    client.close();
    if (!client.refusal) assert.fail(NOT_WIRED);
    return { status: client.refusal.status, body: client.refusal.body ? JSON.parse(client.refusal.body) : undefined, headers: client.refusal.headers };
  }

  it('refuses an upgrade without credentials with 401 and WWW-Authenticate, before upgrading', async () => {
    const res = await refusal({});
    assert.equal(res.status, 401);
    assert.equal(res.body.error, 'unauthorized');
    assert.match(String(res.headers['www-authenticate'] ?? ''), /Bearer realm="cutover"/);
  });

  it('refuses a bad token with 401', async () => {
    const res = await refusal(bearer('not.a.token'));
    assert.equal(res.status, 401);
  });

  it('refuses a caller of another namespace with 403', async () => {
    const res = await refusal(bearer(teamB));
    assert.equal(res.status, 403);
    assert.equal(res.body.error, 'forbidden');
  });

  it('opens for a caller of the namespace (bearer token)', async () => {
    const client = await RecordingClient.open(url(), bearer(teamA));
    await client.waitForFrames(1);
    client.close();
  });

  it('opens for a browser that offers its token as a subprotocol, selecting the real protocol only', async () => {
    const { default: WebSocket } = await import('ws');
    const ws = new WebSocket(url(), ['cutover.logs.v1', `cutover.bearer.${teamA}`]);
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data) => resolve(data.toString()));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    });
    assert.equal(ws.protocol, 'cutover.logs.v1', 'the token entry is never echoed');
    assert.ok(first.length > 0);
    ws.close();
    const withoutToken = new WebSocket(url(), ['cutover.logs.v1', 'cutover.bearer.not-a-jwt']);
    withoutToken.on('error', () => {}); // the refused handshake also surfaces as an error
    const status = await new Promise<number>((resolve) => {
      withoutToken.once('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      withoutToken.once('open', () => resolve(101));
    });
    assert.equal(status, 401);
  });

  it('opens for a signed upgrade request, and refuses its replay', async () => {
    const admin = await hsToken(secrets.jwtSecret, { namespaces: '*' });
    const key = await createKey(cutover.url, admin, 'team-a', ['team-a']);
    const headers = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: path() });
    const client = await RecordingClient.open(url(), headers);
    client.close();
    const replay = await refusal(headers);
    assert.equal(replay.status, 401);
    assert.match(replay.body.message, /already used/);
  });
});
