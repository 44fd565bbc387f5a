import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { runCli } from '../../src/cli/program.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { bodyDigest, canonicalString, computeSignature } from '../../src/auth/signing.js';

/**
 * `cutover env` against a stand-in for the REST contract the server implements
 * (GET /environment → 200 [{key,name,value}]; PUT /environment/{key} {"value"} → 204;
 * DELETE /environment/{key} → 204 | 404; administrators only), verifying each request's signature
 * as cutover does.
 */
const KEYS: Record<string, { secret: string; admin: boolean }> = { admin: { secret: 'admin-secret', admin: true }, team: { secret: 'team-secret', admin: false } };

describe('cli: env list|set|unset', () => {
  const values = new Map<string, string>();
  const seen: string[] = [];
  let server: http.Server;
  let url: string;
  let routesExist = true;

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const send = (status: number, body?: unknown) => {
          res.writeHead(status, body === undefined ? {} : { 'Content-Type': 'application/json' }).end(body === undefined ? undefined : JSON.stringify(body));
        };
        const keyId = String(req.headers['x-cutover-key-id'] ?? '');
        const key = KEYS[keyId];
        const canonical = canonicalString(req.method!, req.url!, String(req.headers['x-cutover-timestamp']), String(req.headers['x-cutover-nonce']), bodyDigest(raw));
        if (!key || req.headers['x-cutover-signature'] !== `v1=${computeSignature(key.secret, canonical)}`) return send(401, { error: 'unauthorized', message: 'unknown API key or wrong signature' });
        if (!key.admin) return send(403, { error: 'forbidden', message: `apikey:${keyId} is not an administrator (namespaces "*")` });
        seen.push(`${req.method} ${req.url}`);
        if (!routesExist) return send(404, { error: 'not_found', message: `no route for ${req.method} ${req.url!.split('?')[0]}` });
        const m = /^\/environment(?:\/([^/?]+))?$/.exec(req.url!);
        if (!m) return send(404, { error: 'not_found', message: 'no route' });
        const name = m[1] ? decodeURIComponent(m[1]) : undefined;
        if (req.method === 'GET' && !name) {
          return send(200, [...values].sort().map(([k, v]) => ({ key: k, name: k.toUpperCase().replace(/-/g, '_'), value: v })));
        }
        if (req.method === 'PUT' && name) {
          const body = JSON.parse(raw.toString('utf8')) as { value?: unknown };
          if (typeof body.value !== 'string') return send(400, { error: 'bad_request', message: '"value" must be a string' });
          values.set(name, body.value);
          return send(204);
        }
        if (req.method === 'DELETE' && name) return values.delete(name) ? send(204) : send(404, { error: 'not_found', message: `no environment value ${name}` });
        return send(405, { error: 'method_not_allowed', message: 'no' });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function cli(args: string[], keyId = 'admin', stdin = '') {
    let stdout = '';
    let stderr = '';
    const code = await runCli(args, {
      stdout: { write: (s: string) => (stdout += s), isTTY: false },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
      stdin: Readable.from([stdin]),
      env: { CUTOVER_URL: url, CUTOVER_KEY_ID: keyId, CUTOVER_KEY_SECRET: KEYS[keyId]?.secret ?? 'wrong' },
      now: () => new Date(),
    });
    return { code, stdout, stderr };
  }

  it('sets, lists and unsets values with signed requests', async () => {
    assert.equal((await cli(['env', 'set', 'database-host', 'db.internal'])).code, ExitCode.success);
    const fromStdin = await cli(['env', 'set', 'DB_PASSWORD', '-'], 'admin', 's3cr3t value\n');
    assert.equal(fromStdin.code, ExitCode.success);
    assert.match(fromStdin.stdout, /DB_PASSWORD set/);
    assert.equal(values.get('DB_PASSWORD'), 's3cr3t value', 'stdin without its trailing newline');

    const list = await cli(['env', 'list']);
    assert.equal(list.code, ExitCode.success);
    assert.match(list.stdout, /^NAME\s+KEY\s+VALUE$/m);
    assert.match(list.stdout, /^DATABASE_HOST\s+database-host\s+db\.internal$/m);
    const asJson = JSON.parse((await cli(['env', 'list', '--json'])).stdout);
    assert.deepEqual(asJson.environment.map((e: { name: string }) => e.name).sort(), ['DATABASE_HOST', 'DB_PASSWORD']);

    assert.equal((await cli(['env', 'unset', 'database-host'])).code, ExitCode.success);
    assert.equal(values.has('database-host'), false);
    assert.ok(seen.includes('PUT /environment/database-host') && seen.includes('DELETE /environment/database-host'));
  });

  it('exits 7 when unsetting a value that is not set, unless --ignore-not-found', async () => {
    const missing = await cli(['env', 'unset', 'NEVER_SET']);
    assert.equal(missing.code, ExitCode.notFound);
    assert.match(missing.stderr, /no environment value NEVER_SET/);
    assert.equal((await cli(['env', 'unset', 'NEVER_SET', '--ignore-not-found'])).code, ExitCode.success);
  });

  it('refuses names that cannot be variables (exit 3) without a request', async () => {
    const before = seen.length;
    for (const bad of ['1ABC', 'A.B', 'A/B', 'sp ace']) {
      const r = await cli(['env', 'set', bad, 'x']);
      assert.equal(r.code, ExitCode.invalidInput, bad);
    }
    assert.equal(seen.length, before);
  });

  it('exits 4 for a non-administrator key and for a wrong secret, saying why', async () => {
    const team = await cli(['env', 'list'], 'team');
    assert.equal(team.code, ExitCode.auth);
    assert.match(team.stderr, /administrator credentials/);
    const wrong = await cli(['env', 'list'], 'nobody');
    assert.equal(wrong.code, ExitCode.auth);
    assert.match(wrong.stderr, /check --key-id\/--key-secret/);
  });

  it('explains a cutover without the environment endpoints (exit 7)', async () => {
    routesExist = false;
    try {
      const r = await cli(['env', 'list']);
      assert.equal(r.code, ExitCode.notFound);
      assert.match(r.stderr, /no \/environment endpoints/);
      assert.equal((await cli(['env', 'unset', 'X', '--ignore-not-found'])).code, ExitCode.notFound, 'a missing route is not "not set"');
    } finally {
      routesExist = true;
    }
  });
});
