import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { ApiProblem } from '../lib/api';
import type { DeploymentStatus } from '../lib/types';

/** Status with a symbol and a word, so it does not depend on colour alone. */
const STATUS: Record<DeploymentStatus | 'NONE', { symbol: string; word: string; css: string }> = {
  DEPLOYED: { symbol: '✔', word: 'Deployed', css: 'ok' },
  DEPLOYING: { symbol: '↻', word: 'Deploying', css: 'busy' },
  UNDEPLOYING: { symbol: '↧', word: 'Undeploying', css: 'busy' },
  UNDEPLOYED: { symbol: '○', word: 'Undeployed', css: 'off' },
  FAILURE: { symbol: '✖', word: 'Failed', css: 'bad' },
  NONE: { symbol: '–', word: 'Never deployed', css: 'off' },
};

export const STATUS_FILTERS: Array<{ value: string; label: string }> = [
  { value: 'DEPLOYED', label: 'Deployed' }, { value: 'DEPLOYING', label: 'Deploying' }, { value: 'FAILURE', label: 'Failed' },
  { value: 'UNDEPLOYING', label: 'Undeploying' }, { value: 'UNDEPLOYED', label: 'Undeployed' }, { value: 'NONE', label: 'Never deployed' },
];

export function StatusBadge(props: { status: DeploymentStatus | undefined; step?: string }): JSX.Element {
  const s = STATUS[props.status ?? 'NONE'];
  const busy = props.status === 'DEPLOYING' || props.status === 'UNDEPLOYING';
  return (
    <span class={`badge ${s.css}`} data-status={props.status ?? 'NONE'}>
      <span aria-hidden="true">{s.symbol}</span> {s.word}{busy && props.step ? <span class="step"> · {props.step}</span> : null}
    </span>
  );
}

/** An API problem in plain words (role=alert: read out when it appears). */
export function Problem(props: { problem: ApiProblem | undefined; children?: ComponentChildren }): JSX.Element | null {
  if (!props.problem) return null;
  return (
    <div class="problem" role="alert">
      <strong>{props.problem.plain}</strong>
      {props.problem.status !== 0 && props.problem.serverMessage && !props.problem.plain.includes(props.problem.serverMessage)
        ? <div class="detail">cutover said: {props.problem.serverMessage}</div> : null}
      {props.children}
    </div>
  );
}

export interface ConfirmProps {
  title: string;
  /** What will happen, in full sentences. */
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm(): void;
  onCancel(): void;
}

/** A modal confirmation (native <dialog>: focus stays inside, Escape cancels). */
export function Confirm(props: ConfirmProps): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      <h2 id="confirm-title">{props.title}</h2>
      <div class="confirm-body">{props.children}</div>
      <div class="buttons">
        <button type="button" onClick={props.onCancel}>Cancel</button>
        <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={props.busy} onClick={props.onConfirm} autofocus>
          {props.busy ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export function Loading(props: { what: string }): JSX.Element {
  return <p class="loading" role="status">Loading {props.what}…</p>;
}
