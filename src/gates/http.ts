import { performance } from 'node:perf_hooks';
import { Agent, request } from '../lib/undici.js';
import { Deadline } from '../lib/deadline.js';
import { describeFailure } from '../healthcheck/direct.js';
import { toReason } from '../healthcheck/evaluate.js';
import type { Gate, GateAttempt, GateCaller, GateRequest } from './types.js';

export const GATE_MAX_BODY_BYTES = 64 * 1024;
export const GATE_USER_AGENT = 'cutover-gate/1';

/**
 * Asks a gate over HTTP: POST of the GateRequest as JSON, at most `gate.timeoutSeconds` for the
 * whole exchange (a strong timer, src/lib/deadline.ts), at most 64 KiB of answer read, no
 * redirects followed. A verdict needs a 2xx answer whose body is a JSON object with a boolean
 * `pass`; anything else is an `error` attempt.
 */
export class HttpGateCaller implements GateCaller {
  readonly #agent = new Agent({ keepAliveTimeout: 4000 });

  async call(gate: Gate, body: GateRequest, signal: AbortSignal): Promise<GateAttempt> {
    signal.throwIfAborted();
    const timeoutMs = gate.timeoutSeconds * 1000;
    const started = performance.now();
    const deadline = Deadline.after(timeoutMs, signal);
    const done = (outcome: GateAttempt['outcome'], reason: string, statusCode?: number): GateAttempt => ({
      outcome, reason: toReason(reason), latencyMs: Math.round(performance.now() - started), ...(statusCode !== undefined ? { statusCode } : {}),
    });
    let statusCode: number | undefined;
    try {
      const res = await request(gate.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': GATE_USER_AGENT },
        body: JSON.stringify(body),
        dispatcher: this.#agent,
        signal: deadline.signal,
      });
      statusCode = res.statusCode;
      const text = await readCapped(res.body, GATE_MAX_BODY_BYTES);
      if (statusCode < 200 || statusCode > 299) return done('error', `HTTP ${statusCode}`, statusCode);
      return verdictOf(text, statusCode, done);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const why = deadline.expired ? `timed out after ${timeoutMs} ms` : describeFailure(err, timeoutMs);
      return done('error', statusCode === undefined ? why : `HTTP ${statusCode}; ${why} while reading the answer`, statusCode);
    } finally {
      deadline.clear();
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

function verdictOf(text: string, statusCode: number, done: (o: GateAttempt['outcome'], r: string, s?: number) => GateAttempt): GateAttempt {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return done('error', 'the answer is not JSON (expected {"pass": true|false, "reason": "…"})', statusCode);
  }
  const pass = (parsed as { pass?: unknown } | null)?.pass;
  if (typeof pass !== 'boolean') return done('error', 'the answer has no boolean "pass" (expected {"pass": true|false, "reason": "…"})', statusCode);
  const reason = (parsed as { reason?: unknown }).reason;
  return done(pass ? 'pass' : 'fail', typeof reason === 'string' && reason.trim() ? reason : pass ? 'passed' : 'failed (no reason given)', statusCode);
}

async function readCapped(body: AsyncIterable<Buffer>, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const room = maxBytes - total;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      break; // leaving the loop destroys the stream
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
