import './styles.css';
import { render, type JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { onUnauthorized, session } from './lib/api';
import { overviewStore, useOverview } from './lib/overview-store';
import { Link, navigate, paths, useLocation } from './lib/router';
import { AppPage } from './pages/app';
import { DeploymentPage } from './pages/deployment';
import { EditDescriptorPage, NewDeploymentPage } from './pages/descriptor-edit';
import { EnvironmentPage } from './pages/environment';
import { OverviewPage } from './pages/overview';
import { SignInPage } from './pages/sign-in';

/** Which page a path shows; unknown paths say so and link back. */
function Page(): JSX.Element {
  const { path, query } = useLocation();
  const seg = path.split('/').slice(2).map(decodeURIComponent); // after "/ui"
  if (path === '/ui' || path === '/') return <OverviewPage />;
  if (seg[0] === 'sign-in') return <SignInPage {...(query.get('next') ? { next: query.get('next')! } : {})} />;
  if (seg[0] === 'apps' && seg.length === 3) return <AppPage ns={seg[1]!} app={seg[2]!} key={path} />;
  if (seg[0] === 'deployments' && seg.length === 3) return <DeploymentPage ns={seg[1]!} id={seg[2]!} key={path} />;
  if (seg[0] === 'new' && seg.length === 1) return <NewDeploymentPage {...(query.get('namespace') ? { namespace: query.get('namespace')! } : {})} />;
  if (seg[0] === 'descriptors' && seg.length === 4 && seg[3] === 'edit') return <EditDescriptorPage ns={seg[1]!} id={seg[2]!} key={path} />;
  if (seg[0] === 'environment' && seg.length === 1) return <EnvironmentPage />;
  return <main><h1 tabIndex={-1}>Page not found</h1><p>There is no page at {path}. <Link href={paths.overview()}>Go to the overview</Link>.</p></main>;
}

function Header(): JSX.Element {
  const state = useOverview();
  const caller = state.caller;
  const signedIn = caller && caller.auth !== 'none';
  return (
    <header class="top">
      <a class="skip" href="#content">Skip to content</a>
      <Link class="brand" href={paths.overview()}>cutover</Link>
      <nav aria-label="Main">
        <Link href={paths.overview()}>Apps</Link>
        <Link href={paths.newDeployment()}>Deploy</Link>
        {caller?.namespaces === '*' ? <Link href={paths.environment()}>Environment</Link> : null}
      </nav>
      <span class={`connection ${state.connection}`} role="status" aria-live="polite" data-testid="connection" data-state={state.connection}>
        {state.connection === 'live' ? '● Live' : state.connection === 'connecting' ? 'Connecting…' : state.problem?.status === 401 ? 'Signed out' : 'Connection lost, reconnecting…'}
      </span>
      {caller ? (
        <span class="who">
          {caller.auth === 'none' ? 'authentication off' : caller.identity}
          {signedIn ? <button type="button" class="link" onClick={() => { session.signOut(); overviewStore.reset(); navigate(paths.signIn()); }}>Sign out</button> : null}
        </span>
      ) : null}
    </header>
  );
}

function App(): JSX.Element {
  const state = useOverview();
  const { path } = useLocation();
  useEffect(() => {
    overviewStore.start();
    // A 401 anywhere means the token is missing or no longer valid: to the sign-in page, and back afterwards.
    return onUnauthorized(() => {
      if (!location.pathname.startsWith('/ui/sign-in')) navigate(paths.signIn(location.pathname + location.search));
    });
  }, []);
  useEffect(() => {
    if (state.problem?.status === 401 && !path.startsWith('/ui/sign-in')) navigate(paths.signIn(location.pathname + location.search), { replace: true });
  }, [state.problem, path]);
  return (
    <>
      <Header />
      <div id="content"><Page /></div>
    </>
  );
}

render(<App />, document.getElementById('app')!);
