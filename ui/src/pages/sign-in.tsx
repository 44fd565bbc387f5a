import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { Problem } from '../components/common';
import { api, ApiProblem, session } from '../lib/api';
import { overviewStore } from '../lib/overview-store';
import { navigate } from '../lib/router';

/** Takes a bearer token (JWT), checks it against the API, and keeps it in session storage only. */
export function SignInPage(props: { next?: string; reason?: ApiProblem }): JSX.Element {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<ApiProblem | undefined>(props.reason);
  const [busy, setBusy] = useState(false);
  return (
    <main class="narrow">
      <h1 tabIndex={-1}>Sign in to cutover</h1>
      <p>Paste a bearer token (a JWT from your identity provider or your administrator). It is kept in this browser tab only and forgotten when the tab closes.</p>
      <form class="stack" onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        const previous = session.token;
        session.signIn(token);
        try {
          await api('GET', '/overview');
          overviewStore.restart();
          navigate(props.next && props.next.startsWith('/ui') ? props.next : '/ui/', { replace: true });
        } catch (err) {
          if (previous) session.signIn(previous);
          else session.signOut();
          if (!(err instanceof ApiProblem)) throw err;
          setProblem(err);
        } finally {
          setBusy(false);
        }
      }}>
        <div class="field">
          <label for="token">Bearer token</label>
          <textarea id="token" rows={4} required spellcheck={false} autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        </div>
        {problem && problem.status !== 401 ? <Problem problem={problem} /> : problem ? <div class="problem" role="alert"><strong>That token was not accepted: {problem.serverMessage}.</strong> Check that it is complete and not expired.</div> : null}
        <div class="buttons"><button type="submit" class="primary" disabled={busy || token.trim() === ''}>{busy ? 'Checking…' : 'Sign in'}</button></div>
      </form>
    </main>
  );
}
