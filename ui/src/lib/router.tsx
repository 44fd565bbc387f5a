import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** History-API routing under /ui: the server answers every /ui/* page path with index.html. */

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((l) => l()));

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((l) => l());
  // A new page: focus its main heading, so keyboard and screen-reader users start there.
  requestAnimationFrame(() => document.querySelector<HTMLElement>('main h1')?.focus());
}

export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return { path: location.pathname.replace(/\/+$/, '') || '/', query: new URLSearchParams(location.search) };
}

/** An ordinary link (opens in a new tab with Ctrl/Cmd or the middle button), routed in the page otherwise. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-label'?: string }): JSX.Element {
  const { href, children, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

export const paths = {
  overview: () => '/ui/',
  app: (ns: string, app: string) => `/ui/apps/${encodeURIComponent(ns)}/${encodeURIComponent(app)}`,
  deployment: (ns: string, id: string) => `/ui/deployments/${encodeURIComponent(ns)}/${encodeURIComponent(id)}`,
  newDeployment: (ns?: string) => `/ui/new${ns ? `?namespace=${encodeURIComponent(ns)}` : ''}`,
  editDescriptor: (ns: string, id: string) => `/ui/descriptors/${encodeURIComponent(ns)}/${encodeURIComponent(id)}/edit`,
  environment: () => '/ui/environment',
  signIn: (next?: string) => `/ui/sign-in${next ? `?next=${encodeURIComponent(next)}` : ''}`,
};
