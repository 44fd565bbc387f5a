import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { FINAL_STATUSES, type DeploymentEvent, type DeploymentRecord, type DeploymentStatus, type PodHealth } from '../domain/deployment.js';
import type { CutoverApi } from './api.js';
import { backoffMs, query, type CutoverClient } from './client.js';
import { CliError, errorFromResponse, networkErrorCode } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { formatDuration } from './format.js';

/**
 * Follows one deployment until it is done: over the log websocket (`format=json`), resuming with
 * `from=<last seq>` after every drop so no line is lost or repeated, and polling
 * `/deployments/{id}/events?after=SEQ` when the websocket keeps failing (a proxy without upgrade
 * support, say). While the deployment health-checks, its per-pod health data is polled too.
 */

export interface FollowState {
  status?: DeploymentStatus | undefined;
  step?: string | undefined;
  /** Highest event sequence number delivered. */
  lastSeq: number;
  /** The record was deleted before it reached a final status. */
  deleted: boolean;
}

export interface FollowOptions {
  api: CutoverApi;
  client: CutoverClient;
  namespace: string;
  deploymentId: string;
  /** Deliver only events after this sequence number (default 0: the whole log). */
  fromSeq?: number;
  /** When following is over; checked when the stream closes and after every poll. Default: a final status. */
  isDone?: (state: FollowState, events: readonly DeploymentEvent[]) => boolean;
  /** Every event exactly once, in order. */
  onEvent: (event: DeploymentEvent) => void;
  /** Where the deployment stands when a stream opens (not an event: no seq). */
  onSnapshot?: (status: DeploymentStatus, step: string, time: string) => void;
  onHealth?: (pods: PodHealth[]) => void;
  onNotice: (text: string) => void;
  /** For the timeout message, e.g. "10m". */
  timeoutLabel: string;
  pollIntervalMs?: number;
  healthIntervalMs?: number;
  /** Consecutive websocket failures (without a frame) before polling instead. */
  websocketFailuresBeforePolling?: number;
  /** While polling, try the websocket again after this many polls. */
  pollsBeforeWebsocketRetry?: number;
  now?: () => number;
}

export interface FollowResult {
  state: FollowState;
  /** The record at the end (undefined if it was deleted). */
  record: DeploymentRecord | undefined;
  /** Every event delivered, in order. */
  events: DeploymentEvent[];
  reconnects: number;
  polled: boolean;
}

type StreamEnd =
  | { kind: 'closed'; code: number; reason: string; frames: number }
  | { kind: 'refused'; status: number; body: unknown; headers: Headers }
  | { kind: 'failed'; error: unknown; frames: number }
  | { kind: 'deadline' };

const defaultIsDone = (s: FollowState) => s.deleted || (s.status !== undefined && FINAL_STATUSES.has(s.status));
/** Refusals that no retry will change. */
const PERMANENT_REFUSALS = new Set([400, 401, 403, 404, 405, 429]);

export async function followDeployment(o: FollowOptions): Promise<FollowResult> {
  const now = o.now ?? Date.now;
  const deadline = o.client.deadline;
  const isDone = o.isDone ?? defaultIsDone;
  const state: FollowState = { lastSeq: o.fromSeq ?? 0, deleted: false };
  const events: DeploymentEvent[] = [];
  let reconnects = 0;
  let polled = false;
  let unreachableSince: number | undefined;
  let sawHealthChecking = false;

  const deliver = (event: DeploymentEvent) => {
    if (event.seq <= state.lastSeq) return; // already delivered (a resume overlaps, or a poll raced the stream)
    state.lastSeq = event.seq;
    if (event.type === 'status') {
      state.status = event.status;
      state.step = event.step;
      if (event.step === 'health-checking') sawHealthChecking = true;
    }
    events.push(event);
    o.onEvent(event);
  };

  // Per-pod health, polled only while the deployment is in its health-checking step.
  let stopped = false;
  const healthLoop = (async () => {
    if (!o.onHealth) return;
    while (!stopped) {
      await sleepUntil(o.healthIntervalMs ?? 1000, () => stopped);
      if (stopped || state.step !== 'health-checking') continue;
      try {
        o.onHealth(await o.api.healthData(o.namespace, o.deploymentId, { retry: false, attemptTimeoutMs: 5000 }));
      } catch {
        // Best effort: the log says the same in words, and the next poll may work.
      }
    }
  })();

  const giveUp = (): CliError => {
    const where = state.status ? `${state.status}${state.step ? ` (step ${state.step})` : ''}` : 'not seen yet';
    const hint = `the deployment goes on on the server (it has its own deadline); follow it with: cutover logs ${o.deploymentId} -n ${o.namespace} -f`;
    if (unreachableSince !== undefined) {
      return new CliError(ExitCode.unavailable, `cutover unreachable since ${formatDuration(now() - unreachableSince)} ago; gave up after --timeout ${o.timeoutLabel}; deployment ${o.deploymentId} was last ${where}`, { hint });
    }
    return new CliError(ExitCode.timeout, `timed out after ${o.timeoutLabel}: deployment ${o.deploymentId} is still ${where}`, { hint });
  };

  const frameHandler = (text: string) => {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return; // not ours to interpret; the protocol only sends JSON objects in this format
    }
    if (frame['current'] === true) {
      state.status = frame['status'] as DeploymentStatus;
      state.step = frame['step'] as string;
      if (state.step === 'health-checking') sawHealthChecking = true;
      o.onSnapshot?.(state.status, state.step, String(frame['time'] ?? ''));
      return;
    }
    if (typeof frame['seq'] !== 'number') return;
    deliver(frame as unknown as DeploymentEvent);
  };

  const finish = async (): Promise<FollowResult> => {
    stopped = true;
    await healthLoop;
    let record: DeploymentRecord | undefined;
    if (!state.deleted) {
      const res = await o.api.getDeployment(o.namespace, o.deploymentId, { accept: [404] });
      if (res.status === 404) state.deleted = true;
      else record = res.body;
    }
    if (sawHealthChecking && o.onHealth && !state.deleted) {
      try {
        o.onHealth(await o.api.healthData(o.namespace, o.deploymentId, { retry: false, attemptTimeoutMs: 5000 }));
      } catch {
        // the outcome matters more than the last health snapshot
      }
    }
    return { state, record, events, reconnects, polled };
  };

  const failuresBeforePolling = o.websocketFailuresBeforePolling ?? 3;
  let mode: 'websocket' | 'poll' | 'await-change' = 'websocket';
  let websocketFailures = 0;
  let unreachableAttempts = 0;
  let pollsSinceWebsocket = 0;

  try {
    for (;;) {
      if (now() >= deadline) throw giveUp();
      if (mode === 'websocket') {
        const target = `/stream/deployments/${encodeURIComponent(o.deploymentId)}/logs${query({ namespace: o.namespace, format: 'json', from: state.lastSeq })}`;
        const end = await streamOnce(o.client, target, deadline, frameHandler);
        if (end.kind === 'deadline') continue;
        if (end.kind === 'closed' && end.code === 1000) {
          unreachableSince = undefined;
          if (end.reason === 'DELETED') {
            state.deleted = true;
            return await finish();
          }
          if (FINAL_STATUSES.has(end.reason as DeploymentStatus)) {
            state.status = end.reason as DeploymentStatus;
            if (isDone(state, events)) return await finish();
            // Final, but not what we wait for (an undeploy queued behind): poll until it moves.
            mode = 'await-change';
            continue;
          }
        }
        let why: string;
        let unreachable = false;
        if (end.kind === 'refused') {
          if (PERMANENT_REFUSALS.has(end.status)) {
            throw errorFromResponse(end.status, end.body, { action: `following deployment ${o.deploymentId}`, namespace: o.namespace }, end.headers);
          }
          unreachableSince = undefined;
          const code = (end.body as { error?: unknown } | undefined)?.error;
          why = `refused with HTTP ${end.status}${typeof code === 'string' ? ` ${code}` : ''}`;
        } else if (end.kind === 'failed') {
          const code = networkErrorCode(end.error);
          unreachable = code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH';
          if (unreachable) unreachableSince ??= now();
          why = `failed: ${code ?? (end.error as Error)?.message ?? String(end.error)}`;
        } else {
          unreachableSince = undefined;
          why = `closed (${end.code}${end.reason ? ` ${end.reason}` : ''})`;
        }
        const progressed = (end.kind === 'closed' || end.kind === 'failed') && end.frames > 0;
        reconnects++;
        // cutover down (a restart, say) is no reason to give up on the websocket: polling would
        // meet the same closed port. Keep trying it, backing off, until the deadline.
        if (unreachable) unreachableAttempts++;
        else {
          unreachableAttempts = 0;
          websocketFailures = progressed ? 1 : websocketFailures + 1;
        }
        if (websocketFailures >= failuresBeforePolling) {
          o.onNotice(`log stream ${why}; it keeps failing, polling for events after ${state.lastSeq} instead`);
          mode = 'poll';
          pollsSinceWebsocket = 0;
          continue;
        }
        const delay = backoffMs(unreachable ? unreachableAttempts : websocketFailures);
        o.onNotice(`log stream ${why}; resuming after event ${state.lastSeq} in ${formatDuration(delay)}`);
        await sleepUntil(Math.min(delay, Math.max(0, deadline - now())), () => false);
        continue;
      }

      // Polling: the record first, then the events after it, so a final status read here comes
      // with every event up to it.
      polled = true;
      const res = await o.api.getDeployment(o.namespace, o.deploymentId, { accept: [404] });
      unreachableSince = undefined;
      if (res.status === 404) {
        state.deleted = true;
        return await finish();
      }
      const record = res.body;
      const fresh = await o.api.events(o.namespace, o.deploymentId, state.lastSeq);
      // Status events read after the record are at least as new as it, so they win in order.
      state.status = record.status;
      state.step = record.step;
      for (const e of fresh) deliver(e);
      if (isDone(state, events)) return await finish();
      if (mode === 'await-change' && !FINAL_STATUSES.has(record.status)) {
        mode = 'websocket';
        websocketFailures = 0;
        continue;
      }
      if (mode === 'poll' && ++pollsSinceWebsocket >= (o.pollsBeforeWebsocketRetry ?? 10)) {
        // Give the websocket one more chance now and then; one failure brings us back here.
        mode = 'websocket';
        websocketFailures = failuresBeforePolling - 1;
        continue;
      }
      await sleepUntil(Math.min(o.pollIntervalMs ?? 1000, Math.max(0, deadline - now())), () => false);
    }
  } catch (err) {
    stopped = true;
    await healthLoop;
    if (err instanceof CliError && err.exitCode === ExitCode.unavailable && now() >= deadline - 1000) {
      // The client gave up retrying at the deadline: say where the deployment stood.
      throw new CliError(ExitCode.unavailable, `${err.message}; deployment ${o.deploymentId} was last ${state.status ?? 'not seen'}${state.step ? ` (step ${state.step})` : ''}`, {
        hint: `${err.hint ?? ''}${err.hint ? '; ' : ''}the deployment goes on on the server: cutover logs ${o.deploymentId} -n ${o.namespace} -f`,
      });
    }
    throw err;
  }
}

/** Sleeps `ms`, waking early (every 100 ms check) when `stop()` turns true. */
async function sleepUntil(ms: number, stop: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !stop()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, end - Date.now())));
  }
}

/** One websocket connection: frames to `onFrame`, resolves with how it ended. */
function streamOnce(client: CutoverClient, target: string, deadline: number, onFrame: (text: string) => void): Promise<StreamEnd> {
  return new Promise((resolve) => {
    const url = client.websocketUrl(target);
    const headers = client.authHeaders('GET', url);
    let frames = 0;
    let settled = false;
    let lastError: unknown;
    const settle = (end: StreamEnd) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(end);
    };
    const ws = new WebSocket(url, { headers: { ...headers, 'User-Agent': 'cutover-cli' }, handshakeTimeout: 10_000, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
    const timer = setTimeout(() => {
      ws.terminate();
      settle({ kind: 'deadline' });
    }, Math.max(0, deadline - Date.now()));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      frames++;
      onFrame(Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8'));
    });
    ws.on('unexpected-response', (req, res: IncomingMessage) => {
      // A refusal before the upgrade: an ordinary HTTP answer with the API's JSON error body.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 65_536) chunks.push(c);
      });
      const done = () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // plain text body
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        settle({ kind: 'refused', status: res.statusCode ?? 0, body, headers: h });
        req.destroy();
      };
      res.on('end', done);
      res.on('error', done);
    });
    ws.on('error', (err) => {
      lastError = err;
    });
    ws.on('close', (code, reason) => {
      if (lastError !== undefined && code === 1006) settle({ kind: 'failed', error: lastError, frames });
      else settle({ kind: 'closed', code, reason: reason.toString('utf8'), frames });
    });
  });
}
