import type { Gate } from '../domain/types.js';
import { linkSignals, sleep } from '../lib/deadline.js';
import { gateLabel, type GatePhase, type GateRequest } from '../gates/types.js';
import type { RunContext } from './context.js';

export type GatesVerdict = { pass: true } | { pass: false; gate: string; reason: string };

const PHASE_NAME: Record<GatePhase, string> = { 'pre-switch': 'Pre-switch gate', 'post-switch': 'Post-switch check' };

/**
 * Asks every gate of one phase, concurrently, through the engine's GateCaller; resolves when all
 * passed or at the first failure (the others are then stopped). A gate fails on a definite
 * `"pass": false` at once, or when none of its 1 + `retries` attempts gave a verdict (no answer,
 * timeout, non-2xx, malformed answer): a gate that cannot be asked does not let a deployment
 * through. Each attempt and verdict goes to the deployment's log. Rejects only when `signal` aborts.
 */
export async function askGates(ctx: RunContext, phase: GatePhase, gates: Gate[], facts: Omit<GateRequest, 'phase' | 'attempt'>, signal: AbortSignal): Promise<GatesVerdict> {
  if (gates.length === 0) return { pass: true };
  const firstFailure = new AbortController();
  const scope = linkSignals(signal, firstFailure.signal);
  let failed: GatesVerdict | undefined;
  try {
    await Promise.all(gates.map(async (gate) => {
      const verdict = await askOne(ctx, phase, gate, facts, scope.signal).catch((err: unknown) => {
        if (failed && !signal.aborted) return { pass: true } as const; // stopped because another gate failed
        throw err;
      });
      if (!verdict.pass && !failed) {
        failed = verdict;
        firstFailure.abort();
      }
    }));
  } finally {
    scope.dispose();
  }
  signal.throwIfAborted();
  return failed ?? { pass: true };
}

async function askOne(ctx: RunContext, phase: GatePhase, gate: Gate, facts: Omit<GateRequest, 'phase' | 'attempt'>, signal: AbortSignal): Promise<GatesVerdict> {
  const label = `${PHASE_NAME[phase]} "${gateLabel(gate)}"`;
  const attempts = 1 + gate.retries;
  let delay = ctx.deps.config.gateRetryDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    const a = await ctx.deps.gates.call(gate, { ...facts, phase, attempt }, signal);
    if (a.outcome === 'pass') {
      await ctx.journal.line(`${label}: passed (${a.reason}; ${a.latencyMs} ms)`);
      return { pass: true };
    }
    if (a.outcome === 'fail') {
      await ctx.journal.line(`${label}: failed: ${a.reason}`);
      return { pass: false, gate: gateLabel(gate), reason: a.reason };
    }
    if (attempt >= attempts) {
      const reason = `no verdict after ${attempts} attempt${attempts > 1 ? 's' : ''} (last: ${a.reason})`;
      await ctx.journal.line(`${label}: failed: ${reason}`);
      return { pass: false, gate: gateLabel(gate), reason };
    }
    await ctx.journal.line(`${label}: attempt ${attempt} of ${attempts} gave no verdict (${a.reason}); asking again in ${delay} ms`);
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 10_000);
  }
}
