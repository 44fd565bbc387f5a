import type { JSX } from 'preact';
import { useMemo } from 'preact/hooks';
import { Problem, StatusBadge, STATUS_FILTERS } from '../components/common';
import { ago, shortTime } from '../lib/format';
import { useOverview } from '../lib/overview-store';
import { Link, navigate, paths, useLocation } from '../lib/router';
import type { AppSummary } from '../lib/types';

/** Every app the caller may see, grouped by namespace, filtered by namespace, name and status; live. */
export function OverviewPage(): JSX.Element {
  const state = useOverview();
  const { query } = useLocation();
  const nsFilter = query.get('namespace') ?? '';
  const appFilter = (query.get('app') ?? '').trim().toLowerCase();
  const statusFilter = query.get('status') ?? '';

  // Filters live in the address, so a filtered view can be bookmarked and shared.
  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(location.search);
    if (value) next.set(name, value);
    else next.delete(name);
    const qs = next.toString();
    navigate(`/ui/${qs ? `?${qs}` : ''}`, { replace: true });
  };

  const groups = useMemo(() => {
    const byNs = new Map<string, AppSummary[]>();
    for (const ns of state.namespaces) byNs.set(ns, []);
    for (const app of state.apps.values()) {
      if (!byNs.has(app.namespace)) byNs.set(app.namespace, []);
      byNs.get(app.namespace)!.push(app);
    }
    return [...byNs.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .filter(([ns]) => !nsFilter || ns === nsFilter)
      .map(([ns, apps]) => ({
        ns,
        total: apps.length,
        apps: apps
          .filter((a) => !appFilter || a.appName.includes(appFilter))
          .filter((a) => !statusFilter || (a.latest?.status ?? 'NONE') === statusFilter)
          .sort((a, b) => a.appName.localeCompare(b.appName)),
      }));
  }, [state.version, nsFilter, appFilter, statusFilter]);

  const shown = groups.reduce((n, g) => n + g.apps.length, 0);
  const loaded = state.caller !== undefined;
  return (
    <main>
      <div class="page-head">
        <h1 tabIndex={-1}>Apps</h1>
        <Link class="button primary" href={paths.newDeployment(nsFilter || undefined)}>Deploy a descriptor…</Link>
      </div>
      {!loaded && state.problem ? <Problem problem={state.problem} /> : null}
      <form class="filters" role="search" aria-label="Filter apps" onSubmit={(e) => e.preventDefault()}>
        <label>
          Namespace
          <select value={nsFilter} onChange={(e) => setFilter('namespace', e.currentTarget.value)}>
            <option value="">All namespaces</option>
            {state.namespaces.map((ns) => <option value={ns} key={ns}>{ns}</option>)}
          </select>
        </label>
        <label>
          App name
          <input type="search" value={query.get('app') ?? ''} placeholder="part of a name" onInput={(e) => setFilter('app', e.currentTarget.value)} />
        </label>
        <label>
          Status
          <select value={statusFilter} onChange={(e) => setFilter('status', e.currentTarget.value)}>
            <option value="">Any status</option>
            {STATUS_FILTERS.map((s) => <option value={s.value} key={s.value}>{s.label}</option>)}
          </select>
        </label>
      </form>
      <p class="count" role="status" aria-live="polite" data-testid="app-count">
        {loaded ? `${shown} of ${state.apps.size} apps` : 'Loading apps…'}
      </p>
      {loaded && state.apps.size === 0 && state.namespaces.length === 0
        ? <p>No apps yet. <Link href={paths.newDeployment()}>Deploy a descriptor</Link> to get started.</p> : null}
      {groups.map((g) => (
        <section class="ns-group" key={g.ns} aria-labelledby={`ns-${g.ns}`} data-namespace={g.ns}>
          <h2 id={`ns-${g.ns}`}>{g.ns} <span class="muted">({g.apps.length}{g.apps.length !== g.total ? ` of ${g.total}` : ''})</span></h2>
          {g.apps.length === 0
            ? <p class="muted">{g.total === 0 ? 'No apps in this namespace yet.' : 'No app matches the filters.'}</p>
            : (
              <table class="apps">
                <thead>
                  <tr><th scope="col">App</th><th scope="col">Live version</th><th scope="col">Latest deployment</th><th scope="col">When</th><th scope="col">By</th><th scope="col">URL</th></tr>
                </thead>
                <tbody>
                  {g.apps.map((a) => <AppRow app={a} key={a.appName} />)}
                </tbody>
              </table>
            )}
        </section>
      ))}
    </main>
  );
}

function AppRow({ app }: { app: AppSummary }): JSX.Element {
  const latest = app.latest;
  return (
    <tr data-app={app.appName} data-status={latest?.status ?? 'NONE'}>
      <th scope="row" data-label="App"><Link href={paths.app(app.namespace, app.appName)}>{app.appName}</Link></th>
      <td data-label="Live version">
        {app.clusters
          // Several clusters: the version live in each (docs/clusters.md).
          ? <ul class="cluster-versions" data-testid="cluster-versions">{app.clusters.map((c) => (
            <li key={c.cluster} data-cluster={c.cluster}>
              <span class="muted">{c.cluster}</span> {c.live ? <Link href={paths.deployment(app.namespace, c.live.deploymentId)}>{c.live.version}</Link> : <span class="muted">none</span>}
            </li>
          ))}</ul>
          : app.live ? <Link href={paths.deployment(app.namespace, app.live.deploymentId)}>{app.live.version}</Link> : <span class="muted">none</span>}
      </td>
      <td data-label="Latest">
        {latest
          ? <Link href={paths.deployment(app.namespace, latest.id)} aria-label={`version ${latest.version}: ${latest.status}`}><StatusBadge status={latest.status} step={latest.step} /> <span class="version">v{latest.version}</span></Link>
          : <StatusBadge status={undefined} />}
        {latest?.failureReason ? <div class="reason" title={latest.failureReason}>{latest.failureReason}</div> : null}
      </td>
      <td data-label="When">{latest ? <time dateTime={latest.created} title={shortTime(latest.created)}>{ago(latest.created)}</time> : '–'}</td>
      <td data-label="By">{latest?.requestedBy ?? <span class="muted">–</span>}</td>
      <td data-label="URL">{app.urls.length ? app.urls.map((u) => <a href={u} key={u} rel="noreferrer noopener" target="_blank">{u.replace(/^https?:\/\//, '').replace(/\/$/, '')}</a>) : <span class="muted">–</span>}</td>
    </tr>
  );
}
