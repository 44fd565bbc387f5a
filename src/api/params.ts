import { namespaceSchema } from '../domain/descriptor-schema.js';
import { ApiError, badRequest } from './errors.js';
import type { AppContext } from './middleware.js';
import { authorizeNamespace } from '../auth/middleware.js';
import { noteAudit } from './audit-trail.js';

/** A single-valued query parameter; repeating it is a client error. */
export function queryParam(ctx: AppContext, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw badRequest(`query parameter "${name}" must be given once`);
  return value;
}

export function requireQueryParam(ctx: AppContext, name: string): string {
  const value = queryParam(ctx, name);
  if (value === undefined || value === '') throw badRequest(`query parameter "${name}" is required`);
  return value;
}

/** Labelled once: Joi's label() copies the schema, which on every request was a measurable cost. */
const namespaceParamSchema = namespaceSchema.label('namespace');

/**
 * The mandatory `namespace` query parameter, validated as a Kubernetes namespace name, that the
 * caller may use (else 403, before anything is read: nothing leaks about other namespaces). Every
 * namespaced route gets its authorisation here; the namespace is also noted for the audit entry.
 */
export function requireNamespace(ctx: AppContext): string {
  const ns = queryParam(ctx, 'namespace');
  if (ns === undefined || ns === '') throw badRequest('query parameter "namespace" is required');
  const { error } = namespaceParamSchema.validate(ns);
  if (error) throw badRequest(`query parameter ${error.message}`);
  authorizeNamespace(ctx, ns);
  noteAudit(ctx, { namespace: ns });
  return ns;
}

const TRUE = new Set(['1', 't', 'true', 'yes']);
const FALSE = new Set(['0', 'f', 'false', 'no']);

export function booleanParam(ctx: AppContext, name: string, defaultValue: boolean): boolean {
  const raw = queryParam(ctx, name);
  if (raw === undefined || raw === '') return defaultValue;
  const v = raw.toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw badRequest(`query parameter "${name}" must be true or false`);
}

export function positiveIntParam(ctx: AppContext, name: string, max: number): number | undefined {
  const raw = queryParam(ctx, name);
  if (raw === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw badRequest(`query parameter "${name}" must be an integer from 1 to ${max}`);
  }
  return Number(raw);
}

/** Ids are server-generated UUIDs; anything else cannot exist, so it is simply not found. */
const ID = /^[A-Za-z0-9-]{1,128}$/;

export function idParam(ctx: AppContext, what: string): string {
  const id = (ctx as unknown as { params: Record<string, string> }).params['id'] ?? '';
  if (!ID.test(id)) throw new ApiError(404, 'not_found', `${what} ${JSON.stringify(id)} not found`);
  return id;
}

/** The body as a JSON object, or a 400 saying what was wrong with it. */
export function objectBody(ctx: AppContext): Record<string, unknown> {
  const body = ctx.request.body as unknown;
  if (body === undefined || body === null) throw badRequest('request body must be a JSON object');
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Parses `If-Match: "123"` into the etcd revision it names. */
export function ifMatchRevision(ctx: AppContext): string | undefined {
  const header = ctx.get('If-Match').trim();
  if (header === '' || header === '*') return undefined;
  const m = /^(?:W\/)?"([0-9]{1,20})"$/.exec(header);
  if (!m) throw new ApiError(412, 'precondition_failed', 'If-Match must be an ETag returned by this API, e.g. "42"');
  return m[1];
}

export const etagOf = (revision: string) => `"${revision}"`;
