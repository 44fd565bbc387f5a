import { randomBytes } from 'node:crypto';
import { decryptSecret, encryptSecret, type KeyEncryptionKey } from '../auth/api-keys.js';
import { DNS1123_LABEL, MAX_LABEL_LENGTH, normaliseAppName } from '../domain/names.js';
import { WEBHOOK_EVENT_KINDS, WEBHOOK_ID_PATTERN, type WebhookEventKind } from '../domain/webhooks.js';
import type { DeliveryLogEntry, WebhookStore, WebhookSubscription } from '../store/webhooks.js';
import type { WebhookInfo } from '../domain/webhooks.js';
import { validateWebhookUrl, WebhookUrlError, type AllowedHosts } from './url.js';

/** A request to subscribe that cannot be accepted as it is (HTTP 400). */
export class WebhookInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookInputError';
  }
}

/** No key-encryption key is configured, so no secret can be stored (HTTP 409). */
export class WebhooksUnavailableError extends Error {}

export interface NewWebhookInput {
  url: unknown;
  apps?: unknown;
  events?: unknown;
  description?: unknown;
}

/** A subscription as listed and shown: everything but the encrypted secret. */
export type { WebhookInfo };

export function webhookInfo(record: WebhookSubscription): WebhookInfo {
  const { secret: _secret, ...info } = record;
  return info;
}

/** At most this many subscriptions per namespace: each event is one outbox write per subscription. */
export const MAX_SUBSCRIPTIONS_PER_NAMESPACE = 50;

/**
 * Managing subscriptions (REST API and, through it, the CLI). The signing secret is generated
 * here, returned once, and stored only encrypted with the key-encryption key of API keys, the
 * subscription id as additional authenticated data.
 */
export class WebhookAdmin {
  constructor(
    private readonly store: WebhookStore,
    private readonly keks: readonly KeyEncryptionKey[] | undefined,
    private readonly allowedHosts: AllowedHosts,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(namespace: string, input: NewWebhookInput, createdBy: string): Promise<{ webhook: WebhookInfo; secret: string }> {
    let url: string;
    try {
      url = validateWebhookUrl(input.url, this.allowedHosts);
    } catch (err) {
      if (err instanceof WebhookUrlError) throw new WebhookInputError(err.message);
      throw err;
    }
    const apps = parseApps(input.apps);
    const events = parseEvents(input.events);
    if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 200 || /[\r\n\0]/.test(input.description))) {
      throw new WebhookInputError('description must be one line of at most 200 characters');
    }
    const kek = this.keks?.[0];
    if (!kek) throw new WebhooksUnavailableError('webhook secrets are stored encrypted, and no key-encryption key is configured: set CUTOVER_KEY_ENCRYPTION_KEY_FILE (docs/security.md)');
    if ((await this.store.list(namespace)).length >= MAX_SUBSCRIPTIONS_PER_NAMESPACE) {
      throw new WebhookInputError(`namespace ${namespace} has ${MAX_SUBSCRIPTIONS_PER_NAMESPACE} webhooks already; remove one first`);
    }
    const id = `wh_${randomBytes(8).toString('hex')}`;
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    const record: WebhookSubscription = {
      id, namespace, url,
      ...(apps ? { apps } : {}),
      ...(events ? { events } : {}),
      ...(typeof input.description === 'string' && input.description !== '' ? { description: input.description } : {}),
      created: this.now().toISOString(), createdBy,
      secret: encryptSecret(kek, id, secret),
    };
    await this.store.create(record);
    return { webhook: webhookInfo(record), secret };
  }

  async list(namespace: string): Promise<WebhookInfo[]> {
    return (await this.store.list(namespace)).map(webhookInfo);
  }

  async get(namespace: string, id: string): Promise<WebhookInfo | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return undefined;
    const found = await this.store.get(namespace, id);
    return found ? webhookInfo(found) : undefined;
  }

  /** False when there is no such subscription. Its pending deliveries and its log go with it. */
  async remove(namespace: string, id: string): Promise<boolean> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return false;
    return this.store.remove(namespace, id);
  }

  /** The delivery log (pending first), or undefined when there is no such subscription. */
  async deliveries(namespace: string, id: string, limit: number): Promise<DeliveryLogEntry[] | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id) || !(await this.store.get(namespace, id))) return undefined;
    return this.store.deliveries(namespace, id, limit);
  }
}

/** The plain signing secret of a subscription; throws when no configured key-encryption key opens it. */
export function webhookSecret(keks: readonly KeyEncryptionKey[] | undefined, subscription: WebhookSubscription): string {
  try {
    return decryptSecret(keks ?? [], subscription.id, subscription.secret);
  } catch (err) {
    throw new Error((err as Error).message.replace(/^API key/, 'webhook'));
  }
}

function parseApps(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : undefined;
  if (!items || items.some((a) => typeof a !== 'string')) throw new WebhookInputError('apps must be a list of app names (or a comma-separated string)');
  const apps = [...new Set((items as string[]).map((a) => a.trim()).filter((a) => a !== '').map(normaliseAppName))].sort();
  const bad = apps.filter((a) => !DNS1123_LABEL.test(a) || a.length > MAX_LABEL_LENGTH);
  if (bad.length > 0) throw new WebhookInputError(`not valid app names: ${bad.map((b) => JSON.stringify(b.slice(0, 64))).join(', ')}`);
  return apps.length > 0 ? apps : undefined;
}

function parseEvents(value: unknown): WebhookEventKind[] | undefined {
  if (value === undefined || value === null) return undefined;
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : undefined;
  if (!items || items.some((e) => typeof e !== 'string')) throw new WebhookInputError(`events must be a list of event kinds: ${WEBHOOK_EVENT_KINDS.join(', ')}`);
  const events = [...new Set((items as string[]).map((e) => e.trim()).filter((e) => e !== ''))];
  const bad = events.filter((e) => !(WEBHOOK_EVENT_KINDS as readonly string[]).includes(e));
  if (bad.length > 0) throw new WebhookInputError(`unknown event kinds: ${bad.map((b) => JSON.stringify(b.slice(0, 64))).join(', ')} (known: ${WEBHOOK_EVENT_KINDS.join(', ')})`);
  return events.length > 0 ? WEBHOOK_EVENT_KINDS.filter((k) => events.includes(k)) : undefined;
}
