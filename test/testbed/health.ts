// Health endpoints of the control-plane components (all on 127.0.0.1).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Pki } from './pki.js';

export interface HttpResult {
  status: number;
  body: string;
}

export interface TlsOptions {
  /** Verify the server against this CA and present the admin client certificate. */
  pki?: Pki;
  /** KCM and the scheduler serve with an in-memory self-signed certificate: nothing to verify against. */
  insecure?: boolean;
}

export function httpGet(url: string, tls: TlsOptions = {}, timeoutMs = 2_000): Promise<HttpResult> {
  const u = new URL(url);
  const options = {
    method: 'GET',
    timeout: timeoutMs,
    ...(u.protocol === 'https:'
      ? tls.pki
        ? { ca: readFileSync(tls.pki.caCert), cert: readFileSync(tls.pki.adminCert), key: readFileSync(tls.pki.adminKey) }
        : { rejectUnauthorized: !tls.insecure }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** "true" when healthy, otherwise a short reason. */
export async function healthy(url: string, tls: TlsOptions = {}, expectBody?: RegExp): Promise<string | true> {
  try {
    const r = await httpGet(url, tls);
    if (r.status !== 200) return `HTTP ${r.status}: ${r.body.trim().slice(0, 200)}`;
    if (expectBody && !expectBody.test(r.body)) return `unexpected body: ${r.body.trim().slice(0, 200)}`;
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}
