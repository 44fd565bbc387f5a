import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import { auditTrail, noteAudit } from '../../src/api/audit-trail.js';
import { jsonErrors, requestId, type AppState } from '../../src/api/middleware.js';
import { requireNamespace } from '../../src/api/params.js';
import { badRequest } from '../../src/api/errors.js';
import { createMemoryLogger } from '../../src/log.js';
import type { AuditStore, NewAuditEntry } from '../../src/store/audit.js';

/** A minimal app: the audit middleware around a route, with a fixed caller and a store stand-in. */
async function serve(store: Pick<AuditStore, 'append'>) {
  const { logger, records } = createMemoryLogger('debug');
  const app = new Koa<AppState>();
  const router = new Router<AppState>();
  router.post('/things', (ctx) => {
    requireNamespace(ctx);
    noteAudit(ctx, { app: 'thing' });
    if (ctx.query['fail']) throw badRequest('no');
    ctx.status = 201;
    ctx.body = { ok: true };
  });
  app.use(requestId(logger));
  app.use(auditTrail({ store: store as AuditStore }));
  app.use(jsonErrors());
  app.use(async (ctx, next) => {
    ctx.state.caller = { identity: 'tester', method: 'jwt', namespaces: new Set(['ns']) };
    await next();
  });
  app.use(router.routes());
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, records, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('audit trail middleware', () => {
  it('records the final status of a call, failures included', async () => {
    const written: NewAuditEntry[] = [];
    const s = await serve({ append: async (e) => { written.push(e); return { ...e, id: 'x', time: 't' }; } });
    try {
      assert.equal((await fetch(`${s.base}/things?namespace=ns`, { method: 'POST' })).status, 201);
      assert.equal((await fetch(`${s.base}/things?namespace=ns&fail=1`, { method: 'POST' })).status, 400);
      assert.equal((await fetch(`${s.base}/things?namespace=other`, { method: 'POST' })).status, 403);
      assert.deepEqual(written.map((e) => [e.action, e.namespace, e.app, e.status, e.outcome, e.error]), [
        ['POST /things', 'ns', 'thing', 201, 'success', undefined],
        ['POST /things', 'ns', 'thing', 400, 'failure', 'bad_request'],
      ], 'the 403 is not recorded');
      assert.deepEqual(written[0]!.actor, { identity: 'tester', auth: 'jwt' });
    } finally {
      await s.close();
    }
  });

  it('keeps the answer when the entry cannot be stored, and logs the whole entry instead', async () => {
    let failures = 0;
    const s = await serve({ append: async () => { failures++; throw new Error('etcd unavailable'); } });
    try {
      const res = await fetch(`${s.base}/things?namespace=ns`, { method: 'POST' });
      assert.equal(res.status, 201, 'the operation happened; its answer is not replaced by an error');
      assert.equal(failures, 1);
      const logged = s.records.find((r) => r['msg'] === 'audit entry could not be stored; it is logged here instead');
      assert.ok(logged);
      assert.equal(logged['level'], 50);
      assert.equal((logged['audit'] as NewAuditEntry).namespace, 'ns');
      assert.equal((logged['audit'] as NewAuditEntry).status, 201);
    } finally {
      await s.close();
    }
  });
});
