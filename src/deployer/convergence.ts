import { Agent, request } from '../lib/undici.js';
import type { Descriptor } from '../domain/types.js';
import { Deadline, sleep } from '../lib/deadline.js';
import { trafficContext, type RunContext } from './context.js';
import { WorkInterrupted } from './errors.js';
import type { Convergence } from './traffic/index.js';

/**
 * "The switch completes when traffic has moved, not when the write is accepted." After a switch,
 * each traffic target says whether its controller has applied it (the stable Service: its
 * EndpointSlices list only the new pods; an HTTPRoute: the controller accepted its generation with
 * the references resolved), and — when CUTOVER_TRAFFIC_PROBE_URL and CUTOVER_VERSION_HEADER are
 * set — requests sent through the gateway with the app's Host must come back from the new version
 * three times in a row. Converged is when all of that holds: the record becomes DEPLOYED and the
 * replaced version's drain counts from then. Bounded by CUTOVER_CONVERGENCE_TIMEOUT_SECONDS (and
 * the deployment's deadline): past it, the deployment still ends DEPLOYED — its writes were
 * accepted — and the log says what never confirmed.
 */
export interface ConvergenceResult {
  convergedAt: number;
  /** What each check took from the switch, or why it could not tell. */
  lines: string[];
  complete: boolean;
}

const PROBE_STREAK = 3;
const FIRST_LOOK_MS = 10;

export async function awaitConvergence(ctx: RunContext, d: Descriptor, version: string, switchedAt: number, signal: AbortSignal): Promise<ConvergenceResult> {
  const { deps } = ctx;
  const bound = Deadline.after(deps.config.convergenceTimeoutSeconds * 1000, signal);
  const traffic = trafficContext(ctx, d, version, ctx.journal.record.id, bound.signal, async () => {});
  const since = (t: number) => `${Math.max(0, t - switchedAt)} ms`;
  const lines: string[] = [];
  const pending = new Map(deps.traffic.map((t) => [t.name, t]));
  const probe = deps.config.trafficProbeUrl && traffic.routing.versionHeader && d.frontend
    ? new TrafficProbe(deps.config.trafficProbeUrl, d.frontend, traffic.routing.versionHeader, version) : undefined;
  let lastDetail = '';
  // The first look comes after the controllers had a moment (right after the write nothing has
  // moved yet), then every few ms, backing off slowly up to 250 ms.
  let delay = FIRST_LOOK_MS;
  try {
    await sleep(FIRST_LOOK_MS, bound.signal);
    while (pending.size > 0 || (probe && !probe.done)) {
      for (const [name, target] of pending) {
        let state: Convergence;
        try {
          state = await target.converged(traffic);
        } catch (err) {
          if (bound.signal.aborted) throw err;
          state = { state: 'pending', detail: (err as Error).message }; // a failed read proves nothing either way: ask again
        }
        if (state.state === 'pending') {
          lastDetail = `${name}: ${state.detail}`;
          continue;
        }
        pending.delete(name);
        if (state.state === 'converged') lines.push(`${name}: applied after ${since(Date.now())}`);
      }
      if (probe && !probe.done && await probe.check(bound.signal)) lines.push(`requests through the gateway reach version ${version} after ${since(Date.now())}`);
      if (pending.size === 0 && (!probe || probe.done)) break;
      await sleep(delay, bound.signal);
      delay = Math.min(Math.round(delay * 1.5), 250);
    }
    return { convergedAt: Date.now(), lines, complete: true };
  } catch (err) {
    if (ctx.ownership.signal.aborted) throw new WorkInterrupted('stopped while waiting for traffic to move');
    // Past the switch there is no going back on a timeout: the writes were accepted, so the
    // deployment ends DEPLOYED and the log says what never confirmed.
    const missing = [...pending.keys(), ...(probe && !probe.done ? [`the traffic probe (${probe.lastSeen})`] : [])];
    const why = bound.expired ? `within ${deps.config.convergenceTimeoutSeconds} s` : signal.aborted ? 'before the deployment\'s deadline' : `(${(err as Error).message})`;
    lines.push(`not confirmed ${why}: ${missing.join(', ')}${lastDetail ? ` — ${lastDetail}` : ''}; the replaced version drains anyway`);
    return { convergedAt: Date.now(), lines, complete: false };
  } finally {
    bound.clear();
    await probe?.close();
  }
}

/** Requests through the gateway with the app's Host: which version answers (by the version header)? */
class TrafficProbe {
  private streak = 0;
  done = false;
  lastSeen = 'no answer yet';
  private readonly agent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 5000 });

  constructor(private readonly url: string, private readonly host: string, private readonly header: string, private readonly version: string) {}

  async check(signal: AbortSignal): Promise<boolean> {
    try {
      const res = await request(this.url, { dispatcher: this.agent, headers: { host: this.host }, signal, headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      const seen = res.headers[this.header.toLowerCase()];
      this.lastSeen = `HTTP ${res.statusCode}, ${this.header}: ${seen ?? 'absent'}`;
      this.streak = seen === this.version ? this.streak + 1 : 0;
    } catch (err) {
      if (signal.aborted) throw err;
      this.lastSeen = (err as Error).message;
      this.streak = 0;
    }
    this.done = this.streak >= PROBE_STREAK;
    return this.done;
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }
}
