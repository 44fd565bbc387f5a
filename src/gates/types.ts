import type { Gate } from '../domain/types.js';

export type { Gate };

/** When a gate is asked: before the switch (it may stop it), or after it (it may undo it). */
export type GatePhase = 'pre-switch' | 'post-switch';

/** What cutover sends a gate (POST, JSON): enough for a receiver to look at the right version. */
export interface GateRequest {
  phase: GatePhase;
  namespace: string;
  appName: string;
  deploymentId: string;
  version: string;
  /** The version this deployment replaces (traffic goes back to it on a failed post-switch check); "" when none. */
  previousVersion: string;
  frontend?: string;
  /** 1 for the first attempt. */
  attempt: number;
}

/**
 * One attempt's outcome. `pass`/`fail` are the receiver's verdict; `error` means there was no
 * usable verdict (no answer, a timeout, a non-2xx status, a body that is not
 * `{"pass": true|false}`) and the attempt may be retried.
 */
export interface GateAttempt {
  outcome: 'pass' | 'fail' | 'error';
  /** The receiver's reason, or what went wrong. One line. */
  reason: string;
  statusCode?: number;
  latencyMs: number;
}

/** Calls a gate once. Never rejects for the receiver's problems (they are `error` attempts); rejects only with the signal's reason. */
export interface GateCaller {
  call(gate: Gate, request: GateRequest, signal: AbortSignal): Promise<GateAttempt>;
}

/** How a gate is named in logs: its name, else its URL's host and path (never the query, which may hold a token). */
export function gateLabel(gate: Gate): string {
  if (gate.name) return gate.name;
  try {
    const u = new URL(gate.url);
    return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'gate';
  }
}
