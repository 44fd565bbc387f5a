import type { DeploymentEvent, DeploymentRecord, PodHealth } from '../domain/deployment.js';
import type { Descriptor } from '../domain/types.js';
import type { DeliveryLogEntry, WebhookInfo } from '../domain/webhooks.js';
import { query, type ApiResponse, type CutoverClient, type RequestOptions } from './client.js';
import { CliError, errorFromResponse } from './errors.js';
import { ExitCode } from './exit-codes.js';

/** The REST calls the CLI makes, typed (README "API overview"). */

/** One environment-wide value (GET /environment). */
export interface EnvironmentValue {
  /** The key as stored (`/deployer/environment/{key}`). */
  key: string;
  /** The variable name containers see (key upper-cased, "-" → "_"). */
  name: string;
  value: string;
}

export interface ValidationAnswer {
  valid: boolean;
  descriptor?: Record<string, unknown>;
  details?: Array<{ path: string; message: string }>;
  message?: string;
}

export interface CancelAnswer {
  status: 'cancelling';
  message: string;
  deployment: DeploymentRecord;
}

/** POST /deployments/{id}/rollback: `deployment` is the record to follow (the restored one, or the new one). */
export interface RollbackAnswer {
  status: 'rolling-back' | 'redeploying';
  mode: 'instant' | 'redeploy';
  message: string;
  rollbackTo: { deploymentId: string; version: string };
  deployment: DeploymentRecord;
}

export interface UndeployAnswer {
  status: 'queued' | 'deleted' | 'nothing';
  message: string;
  deployment: DeploymentRecord;
}

const app = (ns: string, name: string) => `${ns}/${name}`;

function expectArray<T>(res: ApiResponse<unknown>, action: string): T[] {
  if (!Array.isArray(res.body)) throw new CliError(ExitCode.internal, `${action}: cutover answered something other than a JSON list`);
  return res.body as T[];
}

export class CutoverApi {
  constructor(readonly client: CutoverClient) {}

  async listDescriptors(ns: string, appName: string): Promise<Descriptor[]> {
    const action = `listing the descriptors of ${app(ns, appName)}`;
    return expectArray<Descriptor>(await this.client.get(`/descriptors/${query({ namespace: ns, appname: appName })}`, { action, namespace: ns }), action);
  }

  /** The descriptor and its ETag (for If-Match). */
  async getDescriptor(ns: string, id: string): Promise<{ descriptor: Descriptor; etag: string | undefined }> {
    const res = await this.client.get<Descriptor>(`/descriptors/${encodeURIComponent(id)}/${query({ namespace: ns })}`, { action: `reading descriptor ${id}`, namespace: ns });
    return { descriptor: res.body, etag: res.headers.get('etag') ?? undefined };
  }

  /** 200 valid (with defaults applied and values normalised) or 400 with every problem. */
  async validateDescriptor(descriptor: Record<string, unknown>, label: string): Promise<ValidationAnswer> {
    const res = await this.client.request<ValidationAnswer>('POST', '/descriptors/validate', {
      json: descriptor, idempotent: true, accept: [400], context: { action: `validating ${label}` },
    });
    if (res.status === 400 && !(res.body && typeof res.body === 'object' && 'valid' in res.body)) {
      // A 400 that is not a validation answer (e.g. malformed JSON): report it as such.
      const body = res.body as { message?: string } | undefined;
      return { valid: false, message: body?.message ?? res.text, details: [] };
    }
    return res.body;
  }

  async createDescriptor(ns: string, descriptor: Record<string, unknown>, recover: RequestOptions<Descriptor>['recover']): Promise<{ descriptor: Descriptor; location: string | undefined }> {
    const res = await this.client.request<Descriptor>('POST', `/descriptors/${query({ namespace: ns })}`, {
      json: descriptor, context: { action: `creating a descriptor for ${app(ns, String(descriptor['appName']))}`, namespace: ns }, ...(recover ? { recover } : {}),
    });
    return { descriptor: res.body, location: res.headers.get('location') ?? undefined };
  }

  /** PUT with If-Match; 412 is returned (not thrown) so the caller can re-read and compare. */
  async updateDescriptor(ns: string, id: string, descriptor: Record<string, unknown>, etag: string | undefined): Promise<ApiResponse<unknown>> {
    return this.client.request('PUT', `/descriptors/${encodeURIComponent(id)}/${query({ namespace: ns })}`, {
      json: descriptor, headers: etag ? { 'If-Match': etag } : {}, accept: [412],
      context: { action: `updating descriptor ${id} of ${app(ns, String(descriptor['appName']))}`, namespace: ns },
    });
  }

  async listDeployments(ns: string, appName: string, limit?: number): Promise<DeploymentRecord[]> {
    const action = `listing the deployments of ${app(ns, appName)}`;
    return expectArray<DeploymentRecord>(await this.client.get(`/deployments/${query({ namespace: ns, appname: appName, limit })}`, { action, namespace: ns }), action);
  }

  async getDeployment(ns: string, id: string, extra: Partial<RequestOptions<DeploymentRecord>> = {}): Promise<ApiResponse<DeploymentRecord>> {
    return this.client.get<DeploymentRecord>(`/deployments/${encodeURIComponent(id)}/${query({ namespace: ns })}`, { action: `reading deployment ${id}`, namespace: ns }, extra);
  }

  async startDeployment(ns: string, descriptorId: string, appName: string, recover: RequestOptions<DeploymentRecord>['recover'], target: { cluster?: string | undefined; environment?: string | undefined } = {}): Promise<{ record: DeploymentRecord; location: string | undefined }> {
    const res = await this.client.request<DeploymentRecord>('POST', `/deployments/${query({ namespace: ns, descriptorId, cluster: target.cluster, environment: target.environment })}`, {
      context: { action: `deploying ${app(ns, appName)}`, namespace: ns }, ...(recover ? { recover } : {}),
    });
    return { record: res.body, location: res.headers.get('location') ?? undefined };
  }

  /** PUT /deployments/{id}: a new deployment of that record's descriptor copy. */
  async redeploy(ns: string, id: string, appName: string, recover: RequestOptions<DeploymentRecord>['recover']): Promise<{ record: DeploymentRecord; location: string | undefined }> {
    const res = await this.client.request<DeploymentRecord>('PUT', `/deployments/${encodeURIComponent(id)}/${query({ namespace: ns })}`, {
      idempotent: false, context: { action: `redeploying ${id} of ${app(ns, appName)}`, namespace: ns }, ...(recover ? { recover } : {}),
    });
    return { record: res.body, location: res.headers.get('location') ?? undefined };
  }

  async undeploy(ns: string, id: string, appName: string): Promise<UndeployAnswer> {
    const res = await this.client.request<UndeployAnswer>('DELETE', `/deployments/${encodeURIComponent(id)}/${query({ namespace: ns })}`, {
      context: { action: `undeploying ${app(ns, appName)} (deployment ${id})`, namespace: ns },
    });
    return res.body;
  }

  async rollback(ns: string, id: string, appName: string): Promise<RollbackAnswer> {
    const res = await this.client.request<RollbackAnswer>('POST', `/deployments/${encodeURIComponent(id)}/rollback${query({ namespace: ns })}`, {
      context: { action: `rolling back ${app(ns, appName)} (deployment ${id})`, namespace: ns },
    });
    return res.body;
  }

  async cancel(ns: string, id: string, appName: string): Promise<CancelAnswer> {
    const res = await this.client.request<CancelAnswer>('POST', `/deployments/${encodeURIComponent(id)}/cancel${query({ namespace: ns })}`, {
      context: { action: `cancelling ${app(ns, appName)} (deployment ${id})`, namespace: ns },
    });
    return res.body;
  }

  async events(ns: string, id: string, after: number, extra: Partial<RequestOptions<DeploymentEvent[]>> = {}): Promise<DeploymentEvent[]> {
    const action = `reading the events of deployment ${id}`;
    const res = await this.client.get<DeploymentEvent[]>(`/deployments/${encodeURIComponent(id)}/events${query({ namespace: ns, after: after > 0 ? after : undefined })}`, { action, namespace: ns }, extra);
    return expectArray<DeploymentEvent>(res, action);
  }

  async logText(ns: string, id: string): Promise<string> {
    const res = await this.client.get<string>(`/deployments/${encodeURIComponent(id)}/logs${query({ namespace: ns })}`, { action: `reading the log of deployment ${id}`, namespace: ns });
    return typeof res.body === 'string' ? res.body : res.text;
  }

  async healthData(ns: string, id: string, extra: Partial<RequestOptions<PodHealth[]>> = {}): Promise<PodHealth[]> {
    const action = `reading the health data of deployment ${id}`;
    return expectArray<PodHealth>(await this.client.get(`/deployments/${encodeURIComponent(id)}/healthcheckdata${query({ namespace: ns })}`, { action, namespace: ns }, extra), action);
  }

  async listEnvironment(): Promise<EnvironmentValue[]> {
    const action = 'listing the environment values';
    return expectArray<EnvironmentValue>(await this.client.get('/environment', { action, adminOnly: true }), action);
  }

  async setEnvironment(key: string, value: string): Promise<void> {
    await this.client.request('PUT', `/environment/${encodeURIComponent(key)}`, { json: { value }, context: { action: `setting environment value ${key}`, adminOnly: true } });
  }

  /** False when there was no such value (404). */
  async unsetEnvironment(key: string): Promise<boolean> {
    const action = `removing environment value ${key}`;
    const res = await this.client.request('DELETE', `/environment/${encodeURIComponent(key)}`, { accept: [404], context: { action, adminOnly: true } });
    if (res.status === 404 && isMissingRoute(res.body)) throw errorFromResponse(404, res.body, { action });
    return res.status !== 404;
  }
}

export interface CreatedWebhook {
  webhook: WebhookInfo;
  secret: string;
  note: string;
}

/** Webhook subscriptions of a namespace (docs/webhooks.md). */
export class WebhookApi {
  constructor(readonly client: CutoverClient) {}

  async list(ns: string): Promise<WebhookInfo[]> {
    const action = `listing the webhooks of namespace ${ns}`;
    return expectArray<WebhookInfo>(await this.client.get(`/webhooks${query({ namespace: ns })}`, { action, namespace: ns }), action);
  }

  async create(ns: string, input: { url: string; apps?: string[]; events?: string[]; description?: string }): Promise<CreatedWebhook> {
    const res = await this.client.request<CreatedWebhook>('POST', `/webhooks${query({ namespace: ns })}`, {
      json: input, context: { action: `adding a webhook to namespace ${ns}`, namespace: ns },
    });
    return res.body;
  }

  /** False when there was no such webhook (404). */
  async remove(ns: string, id: string): Promise<boolean> {
    const action = `removing webhook ${id} of namespace ${ns}`;
    const res = await this.client.request('DELETE', `/webhooks/${encodeURIComponent(id)}${query({ namespace: ns })}`, { accept: [404], context: { action, namespace: ns } });
    if (res.status === 404 && isMissingRoute(res.body)) throw errorFromResponse(404, res.body, { action });
    return res.status !== 404;
  }

  async deliveries(ns: string, id: string, limit?: number): Promise<DeliveryLogEntry[]> {
    const action = `reading the deliveries of webhook ${id}`;
    return expectArray<DeliveryLogEntry>(await this.client.get(`/webhooks/${encodeURIComponent(id)}/deliveries${query({ namespace: ns, limit })}`, { action, namespace: ns }), action);
  }
}

/** A 404 for the route itself (a cutover without that endpoint), not for the thing asked for. */
export function isMissingRoute(body: unknown): boolean {
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' && message.startsWith('no route for ');
}
