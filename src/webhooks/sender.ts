import { Agent, request } from '../lib/undici.js';
import type { WebhookSender } from './dispatcher.js';

/**
 * POSTs events with undici: no redirects followed (a redirect could lead to an address the
 * allow-list does not allow), the answer's body read and dropped (at most 64 KiB kept of it).
 */
export class HttpWebhookSender implements WebhookSender {
  readonly #agent: Agent;

  constructor(timeoutMs: number) {
    this.#agent = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  async send(req: { url: string; headers: Record<string, string>; body: string; signal: AbortSignal }): Promise<{ status: number }> {
    const res = await request(req.url, { method: 'POST', headers: req.headers, body: req.body, signal: req.signal, dispatcher: this.#agent });
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    return { status: res.statusCode };
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
