import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { Descriptor, DescriptorInput } from '../../domain/types.js';
import { normaliseAppName } from '../../domain/names.js';
import { RevisionConflictError } from '../../domain/errors.js';
import type { DescriptorStore } from '../../store/descriptors.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import type { AppState } from '../middleware.js';
import {
  booleanParam, etagOf, idParam, ifMatchRevision, objectBody, queryParam, requireNamespace, requireQueryParam,
} from '../params.js';
import { validateDescriptor, type ValidationProblem } from '../../domain/descriptor-schema.js';
import { appNameForAudit, noteAudit } from '../audit-trail.js';

export interface DescriptorRoutesDeps {
  descriptors: DescriptorStore;
  now: () => Date;
}

export const descriptorLocation = (id: string, ns: string) => `/descriptors/${id}/?namespace=${encodeURIComponent(ns)}`;

function validationFailed(problems: ValidationProblem[]): ApiError {
  return new ApiError(400, 'validation_failed', `invalid descriptor: ${problems.map((p) => p.message).join('; ')}`, problems);
}

/** Orders fields for readability (identity first, podspec last) — JSON readers do not care. */
function toStoredDescriptor(input: DescriptorInput, id: string, ns: string, created: string, lastModified: string): Descriptor {
  const { id: _id, created: _c, lastModified: _m, namespace: _ns, appName, newVersion, podspec, ...rest } = input;
  return { id, namespace: ns, appName, newVersion, created, lastModified, ...rest, podspec } as Descriptor;
}

/** The body's namespace, when given, must equal the query parameter (it is taken from there otherwise). */
function checkBodyNamespace(body: Record<string, unknown>, ns: string): void {
  if (body['namespace'] !== undefined && body['namespace'] !== ns) {
    throw badRequest(`descriptor namespace ${JSON.stringify(body['namespace'])} does not match query parameter namespace "${ns}"`);
  }
}

export function descriptorRoutes(deps: DescriptorRoutesDeps): Router<AppState> {
  const router = new Router<AppState>();

  router.post('/descriptors/validate', (ctx) => {
    const result = validateDescriptor(objectBody(ctx));
    if (!result.ok) {
      ctx.status = 400;
      ctx.body = { valid: false, error: 'validation_failed', message: 'invalid descriptor', details: result.problems };
      return;
    }
    ctx.body = { valid: true, descriptor: result.value };
  });

  router.post('/descriptors', async (ctx) => {
    const ns = requireNamespace(ctx);
    const body = objectBody(ctx);
    checkBodyNamespace(body, ns);
    noteAudit(ctx, { app: appNameForAudit(body['appName']) });
    if (body['id'] !== undefined) throw badRequest('"id" must not be set when creating a descriptor; the server assigns it');
    const result = validateDescriptor({ ...body, namespace: ns });
    if (!result.ok) throw validationFailed(result.problems);
    const now = deps.now().toISOString();
    const id = randomUUID();
    noteAudit(ctx, { descriptorId: id });
    const stored = await deps.descriptors.create(toStoredDescriptor(result.value, id, ns, now, now));
    ctx.status = 201;
    ctx.set('Location', descriptorLocation(id, ns));
    ctx.set('ETag', etagOf(stored.revision));
    ctx.body = stored.value;
  });

  router.get('/descriptors', async (ctx) => {
    const ns = requireNamespace(ctx);
    const app = queryParam(ctx, 'appname');
    const list = await deps.descriptors.list(ns, app === undefined || app === '' ? undefined : normaliseAppName(app));
    ctx.body = list.map((d) => d.value);
  });

  router.get('/descriptors/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'descriptor');
    const found = await deps.descriptors.get(ns, id);
    if (!found) throw notFound(`descriptor ${id} not found in namespace ${ns}`);
    ctx.set('ETag', etagOf(found.revision));
    ctx.body = found.value;
  });

  router.put('/descriptors/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'descriptor');
    const ifMatch = ifMatchRevision(ctx);
    const body = objectBody(ctx);
    checkBodyNamespace(body, ns);
    if (body['id'] !== undefined && body['id'] !== id) {
      throw badRequest(`descriptor id ${JSON.stringify(body['id'])} does not match the id in the path "${id}"`);
    }
    const result = validateDescriptor({ ...body, namespace: ns, id });
    noteAudit(ctx, { descriptorId: id });
    const existing = await deps.descriptors.get(ns, id);
    if (!existing) throw notFound(`descriptor ${id} not found in namespace ${ns}`);
    noteAudit(ctx, { app: existing.value.appName });
    if (!result.ok) throw validationFailed(result.problems);
    if (result.value.appName !== existing.value.appName) {
      throw badRequest(`appName cannot change (stored: "${existing.value.appName}", sent: "${result.value.appName}"); create a new descriptor instead`);
    }
    if (ifMatch !== undefined && ifMatch !== existing.revision) {
      throw new ApiError(412, 'precondition_failed', `descriptor ${id} has changed since revision ${ifMatch} (now ${existing.revision}); read it again`);
    }
    const updated = toStoredDescriptor(result.value, id, ns, existing.value.created, deps.now().toISOString());
    try {
      const stored = await deps.descriptors.update(updated, ifMatch ?? existing.revision);
      ctx.set('ETag', etagOf(stored.revision));
      ctx.status = 204;
    } catch (err) {
      if (err instanceof RevisionConflictError && ifMatch !== undefined) {
        throw new ApiError(412, 'precondition_failed', `descriptor ${id} has changed since revision ${ifMatch}; read it again`);
      }
      throw err;
    }
  });

  router.delete('/descriptors/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'descriptor');
    const ifMatch = ifMatchRevision(ctx);
    noteAudit(ctx, { descriptorId: id });
    const existing = await deps.descriptors.get(ns, id);
    if (!existing) throw notFound(`descriptor ${id} not found in namespace ${ns}`);
    noteAudit(ctx, { app: existing.value.appName });
    if (ifMatch !== undefined && ifMatch !== existing.revision) {
      throw new ApiError(412, 'precondition_failed', `descriptor ${id} has changed since revision ${ifMatch}; read it again`);
    }
    try {
      await deps.descriptors.delete(ns, id, ifMatch ?? existing.revision);
    } catch (err) {
      if (err instanceof RevisionConflictError && ifMatch !== undefined) {
        throw new ApiError(412, 'precondition_failed', `descriptor ${id} has changed since revision ${ifMatch}; read it again`);
      }
      throw err;
    }
    ctx.status = 204;
  });

  // Bulk delete of an app's descriptors, keeping the newest by default (contract §3).
  router.delete('/descriptors', async (ctx) => {
    const ns = requireNamespace(ctx);
    const app = normaliseAppName(requireQueryParam(ctx, 'appname'));
    noteAudit(ctx, { app });
    const keepLatest = booleanParam(ctx, 'keepLatest', true);
    const list = await deps.descriptors.list(ns, app);
    if (list.length === 0) throw notFound(`no descriptors for app "${app}" in namespace ${ns}`);
    const doomed = keepLatest ? list.slice(1) : list;
    await deps.descriptors.deleteMany(ns, doomed.map((d) => ({ id: d.value.id, revision: d.revision })));
    ctx.status = 204;
  });

  return router;
}
