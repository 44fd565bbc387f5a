import type { JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { Confirm, Loading, Problem, StatusBadge } from '../components/common';
import { HealthTable } from '../components/health-table';
import { LogView } from '../components/log-view';
import { api, ApiProblem, q, session } from '../lib/api';
import { duration, shortTime } from '../lib/format';
import { backoffMs, isFinalClose, LogBuffer } from '../lib/log-buffer';
import { Link, navigate, paths } from '../lib/router';
import type { DeploymentRecord, DeploymentStatus, PodHealth, StreamFrame } from '../lib/types';

type StreamState =
  | { kind: 'connecting' }
  | { kind: 'live' }
  | { kind: 'lost'; retryInMs: number; code: number }
  | { kind: 'ended'; reason: string };

interface TimelineEntry {
  seq: number;
  time: string;
  status: DeploymentStatus;
  step: string;
}

/**
 * One deployment: status, step timeline, live log over the websocket (json format, resumed with
 * `from=<last seq>` after a drop), failure reason, per-pod health, and undeploy/redeploy.
 */
export function DeploymentPage(props: { ns: string; id: string }): JSX.Element {
  const { ns, id } = props;
  const [record, setRecord] = useState<DeploymentRecord>();
  const [problem, setProblem] = useState<ApiProblem>();
  const [health, setHealth] = useState<PodHealth[]>([]);
  const [stream, setStream] = useState<StreamState>({ kind: 'connecting' });
  const [, setRendered] = useState(0);
  const [reconnects, setReconnects] = useState(0);
  const [status, setStatus] = useState<{ status: DeploymentStatus; step: string }>();
  const [action, setAction] = useState<'undeploy' | 'redeploy'>();
  const [busy, setBusy] = useState(false);
  const [actionProblem, setActionProblem] = useState<ApiProblem>();
  const [notice, setNotice] = useState<string>();
  const buffer = useRef(new LogBuffer());
  const timeline = useRef<TimelineEntry[]>([]);

  const base = `namespace=${q(ns)}`;
  const loadRecord = useCallback(async () => {
    const res = await api<DeploymentRecord>('GET', `/deployments/${q(id)}?${base}`);
    setRecord(res.body);
    setProblem(undefined);
    return res.body;
  }, [ns, id]);
  const loadHealth = useCallback(async () => {
    try {
      setHealth((await api<PodHealth[]>('GET', `/deployments/${q(id)}/healthcheckdata?${base}`)).body);
    } catch {
      // health is secondary; the record's problem (if any) is shown already
    }
  }, [ns, id]);

  useEffect(() => {
    buffer.current = new LogBuffer();
    timeline.current = [];
    setRecord(undefined);
    setStatus(undefined);
    let socket: WebSocket | undefined;
    let stopped = false;
    let attempt = 0;
    let retryTimer: number | undefined;
    let frame = 0;
    // Many frames arrive at once (a long backlog): render at most once per animation frame.
    const scheduleRender = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setRendered((n) => n + 1);
      });
    };

    const open = async () => {
      // Read the record first: a refused websocket only says "1006", the REST answer says why.
      try {
        await loadRecord();
      } catch (err) {
        if (!(err instanceof ApiProblem)) throw err;
        setProblem(err);
        if (err.status === 0 || err.status >= 500) return retry(1006);
        setStream({ kind: 'ended', reason: 'not available' });
        return;
      }
      if (stopped) return;
      void loadHealth();
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const token = session.token;
      const url = `${scheme}://${location.host}/stream/deployments/${q(id)}/logs?${base}&format=json&from=${buffer.current.lastSeq}`;
      // Browsers cannot send an Authorization header on a websocket: the token rides as a subprotocol (never echoed).
      const ws = new WebSocket(url, ['cutover.logs.v1', ...(token ? [`cutover.bearer.${token}`] : [])]);
      socket = ws;
      setStream({ kind: 'connecting' });
      ws.onopen = () => {
        attempt = 0;
        setStream({ kind: 'live' });
      };
      ws.onmessage = (e) => {
        const f = JSON.parse(String(e.data)) as StreamFrame;
        if (f.type === 'status') {
          setStatus({ status: f.status, step: f.step });
          if ('seq' in f && buffer.current.accept(f.seq)) {
            timeline.current.push({ seq: f.seq, time: f.time, status: f.status, step: f.step });
            void loadHealth();
          }
        } else {
          buffer.current.accept(f.seq, { time: f.time, message: f.message });
        }
        scheduleRender();
      };
      ws.onclose = (e) => {
        if (stopped || socket !== ws) return;
        if (isFinalClose(e.code, e.reason)) {
          setStream({ kind: 'ended', reason: e.reason });
          void loadRecord().catch(() => undefined);
          void loadHealth();
          return;
        }
        retry(e.code);
      };
    };
    const retry = (code: number) => {
      if (stopped) return;
      const wait = backoffMs(attempt++);
      setStream({ kind: 'lost', retryInMs: wait, code });
      setReconnects((n) => n + 1);
      retryTimer = window.setTimeout(() => void open(), wait);
    };
    void open();
    // While pods come up, their health answers change without a status event.
    const healthTimer = window.setInterval(() => {
      if (document.visibilityState === 'visible') void loadHealth();
    }, 3000);
    return () => {
      stopped = true;
      window.clearTimeout(retryTimer);
      window.clearInterval(healthTimer);
      cancelAnimationFrame(frame);
      socket?.close(1000);
    };
  }, [ns, id]);

  const run = async () => {
    if (!action || !record) return;
    setBusy(true);
    setActionProblem(undefined);
    try {
      if (action === 'redeploy') {
        const res = await api<DeploymentRecord>('PUT', `/deployments/${q(id)}?${base}`);
        setAction(undefined);
        navigate(paths.deployment(ns, res.body.id));
      } else {
        const res = await api<{ message: string }>('DELETE', `/deployments/${q(id)}?${base}`);
        setAction(undefined);
        setNotice(`Undeploy: ${res.body.message}.`);
        void loadRecord();
      }
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setActionProblem(err);
    } finally {
      setBusy(false);
    }
  };

  if (!record) {
    return (
      <main>
        <h1 tabIndex={-1}>Deployment <code>{id.slice(0, 8)}</code></h1>
        {problem ? <Problem problem={problem} /> : <Loading what="the deployment" />}
      </main>
    );
  }
  const shown = status ?? { status: record.status, step: record.step };
  const final = shown.status === 'DEPLOYED' || shown.status === 'FAILURE' || shown.status === 'UNDEPLOYED';
  const lines = buffer.current.lines;
  return (
    <main>
      <nav class="crumbs" aria-label="Breadcrumb"><Link href={paths.overview()}>Apps</Link> › {ns} › <Link href={paths.app(ns, record.appName)}>{record.appName}</Link> › version {record.version}</nav>
      <div class="page-head">
        <h1 tabIndex={-1}>{record.appName} version {record.version}</h1>
        <div class="actions">
          {final ? <button type="button" onClick={() => setAction('redeploy')}>Redeploy…</button> : null}
          {shown.status === 'DEPLOYED' ? <button type="button" class="danger" onClick={() => setAction('undeploy')}>Undeploy…</button> : null}
        </div>
      </div>
      {problem ? <Problem problem={problem} /> : null}
      {notice ? <p class="notice" role="status">{notice}</p> : null}
      {actionProblem && !action ? <Problem problem={actionProblem} /> : null}
      <dl class="facts">
        <dt>Status</dt>
        <dd data-testid="deployment-status" data-status={shown.status}><StatusBadge status={shown.status} step={shown.step} /></dd>
        {record.cluster ? <><dt>Cluster</dt><dd data-testid="deployment-cluster">{record.cluster}{record.release ? <span class="muted"> · release <code>{record.release.slice(0, 8)}</code></span> : null}</dd></> : null}
        <dt>Replaces</dt>
        <dd>{record.OldVersion ? `version ${record.OldVersion}` : 'nothing (first version)'}</dd>
        <dt>Started</dt>
        <dd><time dateTime={record.created}>{shortTime(record.created)}</time>{record.times.finished ? ` · took ${duration(record.created, record.times.finished)}` : ''}</dd>
        {record.injectedEnvironment?.length ? <><dt>Injected variables</dt><dd>{record.injectedEnvironment.join(', ')}</dd></> : null}
      </dl>
      {record.failureReason ? (
        <div class="failure" role="alert" data-testid="failure-reason">
          <strong><span aria-hidden="true">✖ </span>Why it failed:</strong> {record.failureReason}
          {record.OldVersion ? <div class="muted">Version {record.OldVersion}, live before, keeps serving; the log below says what was cleaned up.</div> : null}
        </div>
      ) : null}

      <section aria-labelledby="timeline">
        <h2 id="timeline">Steps</h2>
        <ol class="timeline">
          {timeline.current.map((t, i) => {
            const prev = timeline.current[i - 1];
            return (
              <li key={t.seq} data-step={t.step}>
                <time dateTime={t.time}>{shortTime(t.time)}</time> <span class="step-name">{t.step}</span>
                {prev ? <span class="muted"> (+{duration(prev.time, t.time)})</span> : null}
              </li>
            );
          })}
          {timeline.current.length === 0 ? <li class="muted">Waiting for the first step…</li> : null}
        </ol>
      </section>

      <section aria-labelledby="log">
        <div class="page-head">
          <h2 id="log">Log</h2>
          <span class={`connection ${stream.kind}`} role="status" aria-live="polite" data-testid="log-connection" data-state={stream.kind} data-reconnects={reconnects}>
            {stream.kind === 'connecting' ? 'Connecting…'
              : stream.kind === 'live' ? '● Live'
                : stream.kind === 'lost' ? `Connection lost (code ${stream.code}); reconnecting in ${Math.round(stream.retryInMs / 100) / 10} s, resuming after event ${buffer.current.lastSeq}`
                  : stream.reason === 'not available' ? 'Not available' : `Complete (${stream.reason})`}
          </span>
        </div>
        <p class="muted" data-testid="log-stats" data-lines={lines.length} data-last-seq={buffer.current.lastSeq} data-gaps={buffer.current.gaps}>{lines.length} lines</p>
        <LogView lines={lines} count={lines.length} label={`Log of ${record.appName} version ${record.version}`} />
      </section>

      <section aria-labelledby="pods">
        <h2 id="pods">Pods' health</h2>
        <HealthTable health={health} />
      </section>

      {action ? (
        <Confirm
          title={action === 'undeploy' ? `Undeploy ${record.appName} version ${record.version}?` : `Redeploy version ${record.version}?`}
          confirmLabel={action === 'undeploy' ? 'Undeploy' : 'Redeploy'}
          danger={action === 'undeploy'}
          busy={busy}
          onConfirm={() => void run()}
          onCancel={() => { setAction(undefined); setActionProblem(undefined); }}
        >
          {action === 'undeploy'
            ? <p>Version <strong>{record.version}</strong> of <strong>{ns}/{record.appName}</strong> is removed: its pods, Services and Ingress. <strong>The app stops receiving traffic.</strong></p>
            : <p>cutover deploys this deployment's descriptor copy of <strong>{ns}/{record.appName}</strong> again, as a new deployment of version {record.version}. The live version keeps serving until the new one is healthy.</p>}
          <Problem problem={actionProblem} />
        </Confirm>
      ) : null}
    </main>
  );
}
