import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Confirm, Loading, Problem } from '../components/common';
import { DescriptorForm, fromFormValues, toFormValues, type FormValues } from '../components/descriptor-form';
import { api, ApiProblem, q, type FieldProblem } from '../lib/api';
import { useOverview } from '../lib/overview-store';
import { Link, navigate, paths } from '../lib/router';
import type { DeploymentRecord, Descriptor } from '../lib/types';

const TEMPLATE: Record<string, unknown> = {
  appName: '', newVersion: '#', replicas: 2, useHealthCheck: true, healthCheckType: 'probe', healthCheckPath: 'health', healthCheckPort: 8080,
  podspec: { containers: [{ name: 'app', image: '', ports: [{ containerPort: 8080, name: 'http' }] }] },
};

/** Problems the API answered, split into field problems and the rest. */
function problemsOf(err: ApiProblem): { fields: FieldProblem[]; general?: ApiProblem } {
  if (err.details.length > 0) return { fields: err.details, general: err };
  return { fields: [], general: err };
}

/** Deploy a descriptor: write one (or load one as JSON), let the API check it, create it and start a deployment. */
export function NewDeploymentPage(props: { namespace?: string }): JSX.Element {
  const overview = useOverview();
  const [namespace, setNamespace] = useState(props.namespace ?? '');
  const [values, setValues] = useState<FormValues>(() => toFormValues(TEMPLATE));
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [problem, setProblem] = useState<ApiProblem>();
  const [checked, setChecked] = useState<string>();
  const [confirming, setConfirming] = useState<Record<string, unknown>>();
  const [busy, setBusy] = useState(false);
  const [importText, setImportText] = useState('');
  const [importProblem, setImportProblem] = useState<string>();

  const validate = async (): Promise<Record<string, unknown> | undefined> => {
    setProblem(undefined);
    setChecked(undefined);
    const { body, problems: local } = fromFormValues(values);
    if (!body) {
      setProblems(local);
      return undefined;
    }
    try {
      const res = await api<{ valid: boolean; descriptor: Record<string, unknown> }>('POST', '/descriptors/validate', { json: { ...body, ...(namespace ? { namespace } : {}) } });
      setProblems([]);
      return res.body.descriptor;
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      const split = problemsOf(err);
      setProblems(split.fields);
      setProblem(split.general);
      return undefined;
    }
  };

  const deploy = async () => {
    const { body } = fromFormValues(values);
    if (!body) return;
    setBusy(true);
    try {
      const created = await api<Descriptor>('POST', `/descriptors/?namespace=${q(namespace)}`, { json: body });
      const started = await api<DeploymentRecord>('POST', `/deployments/?namespace=${q(namespace)}&descriptorId=${q(created.body.id)}`);
      navigate(paths.deployment(namespace, started.body.id));
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      const split = problemsOf(err);
      setProblems(split.fields);
      setProblem(split.general);
      setConfirming(undefined);
    } finally {
      setBusy(false);
    }
  };

  const namespaces = overview.namespaces;
  return (
    <main>
      <nav class="crumbs" aria-label="Breadcrumb"><Link href={paths.overview()}>Apps</Link> › deploy a descriptor</nav>
      <h1 tabIndex={-1}>Deploy a descriptor</h1>
      <form class="stack" onSubmit={(e) => {
        e.preventDefault();
        void validate().then((d) => {
          if (!d) return;
          if (!namespace) {
            setProblems([{ path: '(namespace)', message: 'choose the namespace to deploy to' }]);
            return;
          }
          setConfirming(d);
        });
      }}>
        <div class={`field ${problems.some((p) => p.path === '(namespace)') ? 'invalid' : ''}`}>
          <label for="field-namespace">Namespace</label>
          <input id="field-namespace" type="text" list="known-namespaces" value={namespace} required onInput={(e) => setNamespace(e.currentTarget.value.trim())} />
          <datalist id="known-namespaces">{namespaces.map((ns) => <option key={ns} value={ns} />)}</datalist>
          {problems.filter((p) => p.path === '(namespace)').map((p) => <ul class="field-errors" key="ns"><li>✖ {p.message}</li></ul>)}
        </div>
        <details>
          <summary>Load a whole descriptor (JSON)</summary>
          <label for="import-json">Descriptor JSON</label>
          <textarea id="import-json" rows={8} spellcheck={false} value={importText} onInput={(e) => setImportText(e.currentTarget.value)} />
          <button type="button" onClick={() => {
            try {
              const parsed = JSON.parse(importText) as Record<string, unknown>;
              if (typeof parsed['namespace'] === 'string' && !namespace) setNamespace(parsed['namespace']);
              setValues(toFormValues(parsed));
              setImportProblem(undefined);
            } catch (err) {
              setImportProblem(`That is not valid JSON: ${(err as Error).message}`);
            }
          }}>Fill the form from it</button>
          {importProblem ? <p class="problem" role="alert">{importProblem}</p> : null}
        </details>
        <DescriptorForm values={values} onChange={(v) => { setValues(v); setChecked(undefined); }} problems={problems} />
        <Problem problem={problem} />
        {checked ? <p class="notice" role="status">{checked}</p> : null}
        <div class="buttons">
          <button type="button" onClick={() => void validate().then((d) => d && setChecked('The descriptor is valid.'))}>Check</button>
          <button type="submit" class="primary">Create and deploy…</button>
        </div>
      </form>
      {confirming ? (
        <Confirm title="Create this descriptor and deploy it?" confirmLabel="Deploy" busy={busy} onConfirm={() => void deploy()} onCancel={() => setConfirming(undefined)}>
          <p>cutover stores the descriptor for <strong>{namespace}/{String(confirming['appName'])}</strong> and deploys it as version {confirming['newVersion'] === '#' ? 'the next number' : String(confirming['newVersion'])}. The new version starts next to whatever runs now; traffic switches only when all its pods are ready and healthy.</p>
          <Problem problem={problem} />
        </Confirm>
      ) : null}
    </main>
  );
}

/** Edit a stored descriptor (PUT with If-Match), optionally deploying it straight away. */
export function EditDescriptorPage(props: { ns: string; id: string }): JSX.Element {
  const { ns, id } = props;
  const [loaded, setLoaded] = useState<{ descriptor: Descriptor; etag: string }>();
  const [values, setValues] = useState<FormValues>();
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [problem, setProblem] = useState<ApiProblem>();
  const [saved, setSaved] = useState<string>();
  const [confirmDeploy, setConfirmDeploy] = useState(false);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const res = await api<Descriptor>('GET', `/descriptors/${q(id)}?namespace=${q(ns)}`);
      setLoaded({ descriptor: res.body, etag: res.headers.get('ETag') ?? '' });
      setValues(toFormValues(res.body));
      setProblem(undefined);
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setProblem(err);
    }
  };
  useEffect(() => void load(), [ns, id]);

  /** Saves; true when stored. */
  const save = async (): Promise<boolean> => {
    if (!values || !loaded) return false;
    setSaved(undefined);
    setProblem(undefined);
    const { body, problems: local } = fromFormValues(values);
    if (!body) {
      setProblems(local);
      return false;
    }
    try {
      const res = await api('PUT', `/descriptors/${q(id)}?namespace=${q(ns)}`, { json: body, headers: loaded.etag ? { 'If-Match': loaded.etag } : {} });
      setLoaded({ descriptor: { ...loaded.descriptor, ...body } as Descriptor, etag: res.headers.get('ETag') ?? '' });
      setProblems([]);
      setSaved('Saved. Deployments started from now on use the new descriptor.');
      return true;
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      const split = problemsOf(err);
      setProblems(split.fields);
      setProblem(split.general);
      return false;
    }
  };

  const saveAndDeploy = async () => {
    setBusy(true);
    try {
      if (!(await save())) {
        setConfirmDeploy(false);
        return;
      }
      const started = await api<DeploymentRecord>('POST', `/deployments/?namespace=${q(ns)}&descriptorId=${q(id)}`);
      navigate(paths.deployment(ns, started.body.id));
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setProblem(err);
      setConfirmDeploy(false);
    } finally {
      setBusy(false);
    }
  };

  if (!loaded || !values) {
    return <main><h1 tabIndex={-1}>Edit descriptor</h1>{problem ? <Problem problem={problem} /> : <Loading what="the descriptor" />}</main>;
  }
  const app = loaded.descriptor.appName;
  return (
    <main>
      <nav class="crumbs" aria-label="Breadcrumb"><Link href={paths.overview()}>Apps</Link> › {ns} › <Link href={paths.app(ns, app)}>{app}</Link> › edit descriptor</nav>
      <h1 tabIndex={-1}>Edit the descriptor of {app} <span class="muted">in {ns}</span></h1>
      <form class="stack" onSubmit={(e) => { e.preventDefault(); void save(); }}>
        <DescriptorForm values={values} onChange={(v) => { setValues(v); setSaved(undefined); }} problems={problems} appNameLocked />
        <Problem problem={problem} />
        {saved ? <p class="notice" role="status">{saved}</p> : null}
        <div class="buttons">
          <button type="submit" class="primary">Save</button>
          <button type="button" onClick={() => setConfirmDeploy(true)}>Save and deploy…</button>
          <Link class="button" href={paths.app(ns, app)}>Back to the app</Link>
        </div>
      </form>
      {confirmDeploy ? (
        <Confirm title={`Save and deploy ${app}?`} confirmLabel="Save and deploy" busy={busy} onConfirm={() => void saveAndDeploy()} onCancel={() => setConfirmDeploy(false)}>
          <p>cutover saves the descriptor and deploys <strong>{ns}/{app}</strong> from it. The live version keeps serving until the new one is ready and healthy.</p>
        </Confirm>
      ) : null}
    </main>
  );
}
