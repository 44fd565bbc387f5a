import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Confirm, Loading, Problem } from '../components/common';
import { api, ApiProblem, q } from '../lib/api';

interface EnvName {
  key: string;
  name: string;
}

/**
 * Environment values injected into every deployed container (administrators). Names only: the
 * page asks for `values=false`, so values never reach the browser; a value can be set, not read.
 */
export function EnvironmentPage(): JSX.Element {
  const [names, setNames] = useState<EnvName[]>();
  const [problem, setProblem] = useState<ApiProblem>();
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [confirm, setConfirm] = useState<{ kind: 'set' | 'unset'; key: string }>();
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string>();
  const [actionProblem, setActionProblem] = useState<ApiProblem>();

  const load = async () => {
    try {
      setNames((await api<EnvName[]>('GET', '/environment?values=false')).body);
      setProblem(undefined);
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setProblem(err);
    }
  };
  useEffect(() => void load(), []);

  const run = async () => {
    if (!confirm) return;
    setBusy(true);
    setActionProblem(undefined);
    try {
      if (confirm.kind === 'set') {
        await api('PUT', `/environment/${q(confirm.key)}`, { json: { value } });
        setNotice(`${confirm.key} is set. Deployments started from now on get it.`);
        setKey('');
        setValue('');
      } else {
        await api('DELETE', `/environment/${q(confirm.key)}`);
        setNotice(`${confirm.key} is unset. Deployments started from now on no longer get it.`);
      }
      setConfirm(undefined);
      await load();
    } catch (err) {
      if (!(err instanceof ApiProblem)) throw err;
      setActionProblem(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main>
      <h1 tabIndex={-1}>Environment values</h1>
      <p>Injected as environment variables into every container cutover deploys (administrators only). Values are never shown.</p>
      <Problem problem={problem} />
      {notice ? <p class="notice" role="status">{notice}</p> : null}
      {!names && !problem ? <Loading what="the names" /> : null}
      {names ? (
        names.length === 0 ? <p class="muted">No values are set.</p> : (
          <table class="env">
            <thead><tr><th scope="col">Key</th><th scope="col">Variable in containers</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {names.map((n) => (
                <tr key={n.key} data-key={n.key}>
                  <th scope="row">{n.key}</th>
                  <td><code>{n.name}</code></td>
                  <td><button type="button" class="danger" onClick={() => setConfirm({ kind: 'unset', key: n.key })}>Unset…</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      {names ? (
        <form class="stack narrow" aria-labelledby="set-heading" onSubmit={(e) => { e.preventDefault(); if (key.trim()) setConfirm({ kind: 'set', key: key.trim() }); }}>
          <h2 id="set-heading">Set a value</h2>
          <div class="field">
            <label for="env-key">Key</label>
            <input id="env-key" type="text" required value={key} onInput={(e) => setKey(e.currentTarget.value)} aria-describedby="env-key-hint" />
            <small id="env-key-hint" class="hint">letters, digits, "_" and "-"; "db-url" becomes DB_URL</small>
          </div>
          <div class="field">
            <label for="env-value">Value</label>
            <input id="env-value" type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          </div>
          <div class="buttons"><button type="submit" class="primary">Set…</button></div>
        </form>
      ) : null}
      {confirm ? (
        <Confirm title={confirm.kind === 'set' ? `Set ${confirm.key}?` : `Unset ${confirm.key}?`} confirmLabel={confirm.kind === 'set' ? 'Set' : 'Unset'} danger={confirm.kind === 'unset'}
          busy={busy} onConfirm={() => void run()} onCancel={() => { setConfirm(undefined); setActionProblem(undefined); }}>
          <p>{confirm.kind === 'set'
            ? `Every deployment started from now on, in every namespace, gets ${confirm.key} (replacing its value if it is set). Running versions keep what they have.`
            : `Deployments started from now on no longer get ${confirm.key}. Running versions keep what they have.`}</p>
          <Problem problem={actionProblem} />
        </Confirm>
      ) : null}
    </main>
  );
}
