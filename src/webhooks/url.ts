/**
 * Webhook URL rules (docs/webhooks.md, docs/security.md "Webhooks"): absolute http or https URLs,
 * no user name or password in them (secrets belong in the signing secret), no fragment, at most
 * 2048 characters; and, when CUTOVER_WEBHOOK_ALLOWED_HOSTS is set, a host it allows. Checked when a
 * subscription is created and again before every delivery (the setting may have changed since).
 */
export class WebhookUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookUrlError';
  }
}

export const MAX_URL_LENGTH = 2048;

/**
 * The allow-list: exact host names or IP literals ("hooks.example.com", "10.0.0.5", "[::1]"), or
 * "*.example.com" for any subdomain of example.com (not example.com itself). Empty: any host.
 */
export class AllowedHosts {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(readonly patterns: readonly string[]) {
    for (const p of patterns.map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)) {
      if (p.startsWith('*.')) this.suffixes.push(p.slice(1));
      else this.exact.add(p);
    }
  }

  get restricted(): boolean {
    return this.exact.size > 0 || this.suffixes.length > 0;
  }

  allows(hostname: string): boolean {
    if (!this.restricted) return true;
    const host = hostname.toLowerCase().replace(/\.$/, '');
    return this.exact.has(host) || this.suffixes.some((s) => host.endsWith(s) && host.length > s.length);
  }
}

/** The URL in canonical form, or WebhookUrlError saying what is wrong with it. */
export function validateWebhookUrl(input: unknown, allowed: AllowedHosts): string {
  if (typeof input !== 'string' || input.trim() === '') throw new WebhookUrlError('url is required: the http:// or https:// address events are POSTed to');
  const text = input.trim();
  if (text.length > MAX_URL_LENGTH) throw new WebhookUrlError(`url is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookUrlError('url is not an absolute URL (e.g. https://hooks.example.com/cutover)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookUrlError(`url must use http or https, not ${url.protocol.replace(/:$/, '')}`);
  if (url.username !== '' || url.password !== '') throw new WebhookUrlError('url must not contain a user name or password: the receiver verifies the signature instead (docs/webhooks.md)');
  if (url.hash !== '') throw new WebhookUrlError('url must not have a fragment (#…): it is never sent');
  if (url.hostname === '') throw new WebhookUrlError('url has no host');
  if (!allowed.allows(url.hostname)) {
    throw new WebhookUrlError(`host ${url.hostname} is not allowed for webhooks (CUTOVER_WEBHOOK_ALLOWED_HOSTS: ${allowed.patterns.join(', ')})`);
  }
  return url.toString();
}
