import type { JSX } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { Confirm, Loading, Problem, StatusBadge } from '../components/common';
import { DiffView } from '../components/diff-view';
import { HealthTable } from '../components/health-table';
import { api, ApiProblem, q } from '../lib/api';
import { descriptorText } from '../lib/diff';
import { duration, shortTime } from '../lib/format';
import { overviewStore } from '../lib/overview-store';
import { Link, navigate, paths } from '../lib/router';
import type { AuditEntry, DeploymentRecord, Descriptor, PodHealth } from '../lib/types';

interface AppData {
  records: DeploymentRecord[];
  descriptors: Descriptor[];
  audit: AuditEntry[];
  health: PodHealth[];
}

type Action =
  | { kind: 'deploy'; descriptor: Descriptor }
  | { kind: 'redeploy'; record: DeploymentRecord }
  | { kind: 'instant-rollback'; record: DeploymentRecord; live: DeploymentRecord }
  | { kind: 'cancel'; record: DeploymentRecord }
  | { kind: 'undeploy'; record: DeploymentRecord };

/** A deployment that can still be cancelled: in progress, its traffic switch not begun. */
const cancellable = (r: DeploymentRecord) => r.status === 'DEPLOYING' && r.step !== 'switching-traffic' && r.step !== 'rolling-back';

/** One app: release history, descriptor diff, current descriptor, live pods' health, URLs, audit; and its actions. */
export function AppPage(props: { ns: string; app: string }): JSX.Element {
  const { ns, app } = props;
  const [data, setData] = useState<AppData>();
  const [problem, setProblem] = useState<ApiProblem>();
  const [action, setAction] = useState<Action>();
  const [busy, setBusy] = useState(false);
  const [actionProblem, setActionProblem] = useState<ApiProblem>();
  const [notice, setNotice] = useState<string>();

  const load = useCallback(async () => {
    try {
      const base = `namespace=${q(ns)}`;
      const [records, descriptors, audit] = await Promise.all([
        api<DeploymentRecord[]>('GET', `/deployments/?${base}&appname=${q(app)}`),
        api<Descriptor[]>('GET', `/descriptors/?${base}&appname=${q(app)}`),
        api<AuditEntry[]>('GET', `/audit?${base}&app=${q(app)}&limit=50`),
      ]);
      const live = records.body.find((r) => r.status === 'DEPLOYED');
      const health = live ? (await api<PodHealth[]>('GET', `/deployments/${q(live.id)}/healthcheckdata?${base}`)).body : [];
      setData({ records: records.body, descriptors: descriptors.body, audit: audit.body, health });
      setProblem(undefined);
    } catch (err) {
      if (err instanceof ApiProblem) setProblem(err);
      else throw err;
    }
  }, [ns, app]);

  useEffect(() => {
    setData(undefined);
    void load();
    // Reload when the live overview says this app changed (a deployment started, moved on or ended).
    let timer: number | undefined;
    const off = overviewStore.onAppChange((s) => {
      if (s.namespace !== ns || s.appName !== app) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void load(), 200);
    });
    return () => {
      off();
      window.clearTimeout(timer);
    };
  }, [ns, app, load]);

  const requesters = useMemo(() => {
    const m = new Map<string, string>();
    for (const e of data?.audit ?? []) {
      const id = e.target?.deploymentId;
      if (id && e.outcome === 'success' && e.method !== 'DELETE' && !m.has(id)) m.set(id, e.actor.identity);
    }
    return m;
  }, [data]);

  const run = async () => {
    if (!action) return;
    setBusy(true);
    setActionProblem(undefined);
    try {
      const base = `namespace=${q(ns)}`;
      if (action.kind === 'deploy') {
        const res = await api<DeploymentRecord>('POST', `/deployments/?${base}&descriptorId=${q(action.descriptor.id)}`);
        navigate(paths.deployment(ns, res.body.id));
      } else if (action.kind === 'redeploy') {
        const res = await api<DeploymentRecord>('PUT', `/deployments/${q(action.record.id)}?${base}`);
        navigate(paths.deployment(ns, res.body.id));
      } else if (action.kind === 'instant-rollback') {
        const res = await api<{ deployment: DeploymentRecord }>('POST', `/deployments/${q(action.live.id)}/rollback?${base}`);
        navigate(paths.deployment(ns, res.body.deployment.id));
      } else if (action.kind === 'cancel') {
        const res = await api<{ message: string }>('POST', `/deployments/${q(action.record.id)}/cancel?${base}`);
        setNotice(`Cancel of version ${action.record.version}: ${res.body.message}.`);
        setAction(undefined);
        void load();
      } else {
        const res = await api<{ message: string }>('DELETE', `/deployments/${q(action.record.id)}?${base}`);
        setNotice(`Undeploy of version ${action.record.version}: ${res.body.message}.`);
        setAction(undefined);
        void load();
      }
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setActionProblem(err);
    } finally {
      setBusy(false);
    }
  };

  if (!data) {
    return (
      <main>
        <h1 tabIndex={-1}>{app} <span class="muted">in {ns}</span></h1>
        {problem ? <Problem problem={problem} /> : <Loading what="the app" />}
      </main>
    );
  }

  const live = data.records.find((r) => r.status === 'DEPLOYED');
  // Several clusters (docs/clusters.md): each record says where it runs.
  const multiCluster = new Set(data.records.map((r) => r.cluster ?? 'default')).size > 1;
  const inProgress = data.records.some((r) => r.status === 'DEPLOYING' || r.status === 'UNDEPLOYING');
  const current = data.descriptors[0];
  const urls = [...new Set([live?.descriptor, current].flatMap((d) => (d?.frontend ? [`${d.tlsSecretName ? 'https' : 'http'}://${d.frontend}/`] : [])))];

  return (
    <main>
      <nav class="crumbs" aria-label="Breadcrumb"><Link href={paths.overview()}>Apps</Link> › {ns} › {app}</nav>
      <div class="page-head">
        <h1 tabIndex={-1}>{app} <span class="muted">in {ns}</span></h1>
        <div class="actions">
          {live ? <button type="button" class="danger" onClick={() => setAction({ kind: 'undeploy', record: live })}>Undeploy…</button> : null}
          <Link class="button" href={paths.newDeployment(ns)}>New descriptor…</Link>
        </div>
      </div>
      {problem ? <Problem problem={problem} /> : null}
      {notice ? <p class="notice" role="status">{notice}</p> : null}
      {actionProblem && !action ? <Problem problem={actionProblem} /> : null}

      <dl class="facts">
        <dt>Live version</dt>
        <dd data-testid="live-version">{live ? <Link href={paths.deployment(ns, live.id)}>{live.version}</Link> : 'none (nothing receives traffic)'}</dd>
        <dt>URLs</dt>
        <dd>{urls.length ? urls.map((u) => <a key={u} href={u} target="_blank" rel="noreferrer noopener">{u}</a>) : 'none (no frontend host in the descriptor)'}</dd>
      </dl>

      <section aria-labelledby="history">
        <h2 id="history">Release history</h2>
        {data.records.length === 0 ? <p class="muted">Never deployed.</p> : (
          <div class="scroll-x">
            <table class="history">
              <thead><tr><th scope="col">Version</th>{multiCluster ? <th scope="col">Cluster</th> : null}<th scope="col">Status</th><th scope="col">Started</th><th scope="col">Finished</th><th scope="col">Duration</th><th scope="col">By</th><th scope="col">Failure reason</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {data.records.map((r) => (
                  <tr key={r.id} data-version={r.version} data-status={r.status}>
                    <th scope="row" data-label="Version"><Link href={paths.deployment(ns, r.id)}>{r.version}</Link>{r.id === live?.id || (multiCluster && r.status === 'DEPLOYED') ? <span class="tag">live</span> : null}</th>
                    {multiCluster ? <td data-label="Cluster" data-testid="record-cluster">{r.cluster ?? 'default'}</td> : null}
                    <td data-label="Status"><StatusBadge status={r.status} step={r.step} /></td>
                    <td data-label="Started"><time dateTime={r.created}>{shortTime(r.created)}</time></td>
                    <td data-label="Finished">{r.times.finished ? <time dateTime={r.times.finished}>{shortTime(r.times.finished)}</time> : '–'}</td>
                    <td data-label="Duration">{duration(r.created, r.times.finished)}</td>
                    <td data-label="By">{requesters.get(r.id) ?? '–'}</td>
                    <td data-label="Failure reason" class="reason-cell">{r.failureReason ?? ''}</td>
                    <td>
                      {r.id !== live?.id && !inProgress && (r.status === 'DEPLOYED' || r.status === 'UNDEPLOYED' || r.status === 'FAILURE')
                        ? <button type="button" onClick={() => setAction({ kind: 'redeploy', record: r })}>{live && r.version !== live.version ? `Roll back to ${r.version}…` : `Redeploy ${r.version}…`}</button>
                        : null}
                      {live && live.replaces === r.id && r.status === 'UNDEPLOYING' && r.step === 'draining'
                        ? <button type="button" onClick={() => setAction({ kind: 'instant-rollback', record: r, live })}>{`Roll back to ${r.version} now…`}</button>
                        : null}
                      {cancellable(r)
                        ? <button type="button" onClick={() => setAction({ kind: 'cancel', record: r })}>{`Cancel ${r.version}…`}</button>
                        : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="pods">
        <h2 id="pods">Live pods' health</h2>
        {live ? <HealthTable health={data.health} /> : <p class="muted">No live version.</p>}
      </section>

      <section aria-labelledby="descriptors">
        <h2 id="descriptors">Descriptors</h2>
        {data.descriptors.length === 0 ? <p class="muted">No stored descriptor (deleted); history entries keep their own copy.</p> : (
          <ul class="descriptor-list">
            {data.descriptors.map((d, i) => (
              <li key={d.id}>
                <span>{i === 0 ? <strong>current</strong> : 'older'} · version {d.newVersion === '#' ? 'next number (#)' : d.newVersion} · changed {shortTime(d.lastModified)} · <code>{d.id.slice(0, 8)}</code></span>
                <span class="actions">
                  <Link class="button" href={paths.editDescriptor(ns, d.id)}>Edit…</Link>
                  <button type="button" class="primary" disabled={inProgress} onClick={() => setAction({ kind: 'deploy', descriptor: d })}>Deploy…</button>
                </span>
              </li>
            ))}
          </ul>
        )}
        {current ? (
          <details>
            <summary>Current descriptor</summary>
            <pre class="json" tabIndex={0} aria-label="Current descriptor">{descriptorText(current)}</pre>
          </details>
        ) : null}
      </section>

      <DescriptorDiff records={data.records} descriptors={data.descriptors} />

      <section aria-labelledby="audit">
        <h2 id="audit">Audit</h2>
        {data.audit.length === 0 ? <p class="muted">No recorded actions.</p> : (
          <div class="scroll-x">
            <table class="audit">
              <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Outcome</th></tr></thead>
              <tbody>
                {data.audit.map((e) => (
                  <tr key={e.id}>
                    <td data-label="When"><time dateTime={e.time}>{shortTime(e.time)}</time></td>
                    <td data-label="Who">{e.actor.identity}</td>
                    <td data-label="Action">{e.action}</td>
                    <td data-label="Outcome">{e.outcome === 'success' ? `✔ ${e.status}` : `✖ ${e.status} ${e.error ?? ''}`}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {action ? (
        <Confirm
          title={action.kind === 'deploy' ? 'Start a deployment?' : action.kind === 'redeploy' ? (live && action.record.version !== live.version ? `Roll back to version ${action.record.version}?` : `Redeploy version ${action.record.version}?`)
            : action.kind === 'instant-rollback' ? `Roll back to version ${action.record.version} now?` : action.kind === 'cancel' ? `Cancel version ${action.record.version}?` : `Undeploy ${app}?`}
          confirmLabel={action.kind === 'deploy' ? 'Deploy' : action.kind === 'redeploy' ? (live && action.record.version !== live.version ? 'Roll back' : 'Redeploy')
            : action.kind === 'instant-rollback' ? 'Roll back now' : action.kind === 'cancel' ? 'Cancel the deployment' : 'Undeploy'}
          danger={action.kind === 'undeploy'}
          busy={busy}
          onConfirm={() => void run()}
          onCancel={() => { setAction(undefined); setActionProblem(undefined); }}
        >
          {action.kind === 'deploy' ? (
            <p>cutover deploys descriptor <code>{action.descriptor.id.slice(0, 8)}</code> of <strong>{ns}/{app}</strong> as version {action.descriptor.newVersion === '#' ? 'the next number' : action.descriptor.newVersion}. The new version starts next to {live ? `the live version ${live.version}` : 'nothing (no version is live)'}; traffic switches only once all its pods are ready and healthy{live ? `, then version ${live.version} is removed` : ''}.</p>
          ) : action.kind === 'instant-rollback' ? (
            <p>Version <strong>{action.record.version}</strong> is still running (it drains after the switch to version {action.live.version}). Traffic switches back to it in one write — no new pods — and it becomes the live version again; version {action.live.version} is then removed.</p>
          ) : action.kind === 'cancel' ? (
            <p>The deployment of version <strong>{action.record.version}</strong> stops before its traffic switch, removes what it created and ends FAILURE. {live ? `Version ${live.version} keeps serving, untouched.` : 'No version is live now.'} Once its switch has begun it is too late: undeploy it, or roll back.</p>
          ) : action.kind === 'redeploy' ? (
            <p>cutover deploys the descriptor copy of version <strong>{action.record.version}</strong> of <strong>{ns}/{app}</strong> again, as a new deployment{action.record.descriptor.newVersion === '#' ? ' with the next version number' : ''}. {live ? `Version ${live.version} keeps serving until the new one is ready and healthy, then it is removed.` : 'No version is live now.'}</p>
          ) : (
            <p>Version <strong>{action.record.version}</strong> of <strong>{ns}/{app}</strong> is removed: its pods, Services and Ingress. <strong>The app stops receiving traffic.</strong> The history stays.</p>
          )}
          <Problem problem={actionProblem} />
        </Confirm>
      ) : null}
    </main>
  );
}

/** Side-by-side diff of the descriptor between any two versions (records' copies and stored descriptors). */
function DescriptorDiff(props: { records: DeploymentRecord[]; descriptors: Descriptor[] }): JSX.Element | null {
  const choices = useMemo(() => [
    ...props.records.map((r) => ({ key: `r:${r.id}`, label: `version ${r.version} (${r.status.toLowerCase()}, ${shortTime(r.created)})`, descriptor: r.descriptor })),
    ...props.descriptors.map((d, i) => ({ key: `d:${d.id}`, label: `${i === 0 ? 'current' : 'older'} descriptor ${d.id.slice(0, 8)}`, descriptor: d })),
  ], [props.records, props.descriptors]);
  const [left, setLeft] = useState<string>();
  const [right, setRight] = useState<string>();
  if (choices.length < 2) return null;
  const l = choices.find((c) => c.key === left) ?? choices[1]!;
  const r = choices.find((c) => c.key === right) ?? choices[0]!;
  return (
    <section aria-labelledby="diff">
      <h2 id="diff">Compare descriptors</h2>
      <div class="filters">
        <label>Left<select value={l.key} onChange={(e) => setLeft(e.currentTarget.value)}>{choices.map((c) => <option key={c.key} value={c.key}>{c.label}</option>)}</select></label>
        <label>Right<select value={r.key} onChange={(e) => setRight(e.currentTarget.value)}>{choices.map((c) => <option key={c.key} value={c.key}>{c.label}</option>)}</select></label>
      </div>
      <DiffView left={descriptorText(l.descriptor)} right={descriptorText(r.descriptor)} leftLabel={l.label} rightLabel={r.label} />
    </section>
  );
}
