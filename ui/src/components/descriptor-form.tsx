import type { JSX } from 'preact';
import type { FieldProblem } from '../lib/api';

/**
 * A descriptor as a form: the settings people change most as fields, the pod spec and everything
 * else as JSON. Values are sent as typed, so the API's own validation decides, and each of its
 * problems (`details[].path`) is shown at the field it names; problems of fields without an input
 * of their own go to the JSON box that holds them.
 */

interface FieldDef {
  name: string;
  label: string;
  kind: 'text' | 'number' | 'checkbox' | 'select';
  hint?: string;
  options?: string[];
}

export const FIELDS: FieldDef[] = [
  { name: 'appName', label: 'App name', kind: 'text', hint: 'lower-case letters, digits and "-"' },
  { name: 'newVersion', label: 'Version', kind: 'text', hint: '"#" for the next number' },
  { name: 'replicas', label: 'Replicas', kind: 'number' },
  { name: 'frontend', label: 'Frontend host', kind: 'text', hint: 'e.g. shop.example.com (empty: no Ingress)' },
  { name: 'useHealthCheck', label: 'Check the app\'s health endpoint before switching', kind: 'checkbox' },
  { name: 'healthCheckType', label: 'Health check type', kind: 'select', options: ['probe', 'simple'] },
  { name: 'healthCheckPath', label: 'Health check path', kind: 'text' },
  { name: 'healthCheckPort', label: 'Health check port', kind: 'number' },
  { name: 'drainSeconds', label: 'Drain seconds', kind: 'number', hint: 'how long the old version keeps running after the switch' },
];
const FIELD_NAMES = new Set(FIELDS.map((f) => f.name));
/** Set by the server; never sent back in a form. */
const SERVER_FIELDS = new Set(['id', 'namespace', 'created', 'lastModified']);

export interface FormValues {
  fields: Record<string, string | boolean>;
  podspec: string;
  other: string;
}

export function toFormValues(descriptor: Record<string, unknown>): FormValues {
  const fields: Record<string, string | boolean> = {};
  for (const f of FIELDS) {
    const v = descriptor[f.name];
    fields[f.name] = f.kind === 'checkbox' ? v === true : v === undefined || v === null ? '' : String(v);
  }
  const other: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(descriptor)) if (!FIELD_NAMES.has(k) && k !== 'podspec' && !SERVER_FIELDS.has(k)) other[k] = v;
  return { fields, podspec: JSON.stringify(descriptor['podspec'] ?? { containers: [] }, null, 2), other: JSON.stringify(other, null, 2) };
}

/** The JSON body, or the boxes that are not valid JSON (reported at the box, before asking the API). */
export function fromFormValues(values: FormValues): { body?: Record<string, unknown>; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const parse = (text: string, path: string): unknown => {
    try {
      return JSON.parse(text || '{}') as unknown;
    } catch (err) {
      problems.push({ path, message: `not valid JSON: ${(err as Error).message}` });
      return undefined;
    }
  };
  const podspec = parse(values.podspec, 'podspec');
  const other = parse(values.other, '(other)');
  if (other !== undefined && (other === null || typeof other !== 'object' || Array.isArray(other))) problems.push({ path: '(other)', message: 'must be a JSON object' });
  if (problems.length > 0) return { problems };
  const body: Record<string, unknown> = { ...(other as Record<string, unknown>), podspec };
  for (const f of FIELDS) {
    const v = values.fields[f.name];
    if (f.kind === 'checkbox') body[f.name] = v === true;
    else if (typeof v === 'string' && v.trim() !== '') {
      // Numbers go as numbers when they are numbers; anything else as typed, for the API to judge.
      body[f.name] = f.kind === 'number' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v.trim();
    }
  }
  return { body, problems };
}

/** Which input shows a problem: its own field, else the pod spec box, else the other-fields box. */
export function fieldOf(path: string): string {
  const head = path.split(/[.[]/)[0] ?? '';
  if (FIELD_NAMES.has(head)) return head;
  if (head === 'podspec') return 'podspec';
  return '(other)';
}

export function DescriptorForm(props: {
  values: FormValues;
  onChange(values: FormValues): void;
  problems: FieldProblem[];
  appNameLocked?: boolean;
}): JSX.Element {
  const { values, problems } = props;
  const at = (field: string) => problems.filter((p) => fieldOf(p.path) === field);
  const set = (name: string, value: string | boolean) => props.onChange({ ...values, fields: { ...values.fields, [name]: value } });
  return (
    <div class="descriptor-form">
      {FIELDS.map((f) => {
        const id = `field-${f.name}`;
        const errs = at(f.name);
        const describedBy = [f.hint ? `${id}-hint` : '', errs.length ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
        const common = { id, name: f.name, 'aria-invalid': errs.length > 0 ? true : undefined, 'aria-describedby': describedBy };
        return (
          <div class={`field ${f.kind} ${errs.length ? 'invalid' : ''}`} key={f.name} data-field={f.name}>
            {f.kind === 'checkbox' ? (
              <label for={id}><input type="checkbox" {...common} checked={values.fields[f.name] === true} onChange={(e) => set(f.name, e.currentTarget.checked)} /> {f.label}</label>
            ) : (
              <>
                <label for={id}>{f.label}</label>
                {f.kind === 'select' ? (
                  <select {...common} value={String(values.fields[f.name] ?? '')} onChange={(e) => set(f.name, e.currentTarget.value)}>
                    <option value="">(default)</option>
                    {f.options!.map((o) => <option key={o} value={o}>{o}</option>)}
                  </select>
                ) : (
                  <input type="text" inputMode={f.kind === 'number' ? 'numeric' : undefined} {...common} value={String(values.fields[f.name] ?? '')}
                    readOnly={f.name === 'appName' && props.appNameLocked} onInput={(e) => set(f.name, e.currentTarget.value)} />
                )}
              </>
            )}
            {f.hint ? <small id={`${id}-hint`} class="hint">{f.hint}</small> : null}
            <FieldErrors id={`${id}-error`} problems={errs} />
          </div>
        );
      })}
      <JsonBox id="field-podspec" label="Pod spec (JSON: containers, volumes, …)" value={values.podspec} problems={at('podspec')} onInput={(v) => props.onChange({ ...values, podspec: v })} />
      <JsonBox id="field-other" label="Other settings (JSON object)" value={values.other} problems={at('(other)')} onInput={(v) => props.onChange({ ...values, other: v })} />
    </div>
  );
}

function JsonBox(props: { id: string; label: string; value: string; problems: FieldProblem[]; onInput(value: string): void }): JSX.Element {
  const invalid = props.problems.length > 0;
  return (
    <div class={`field json ${invalid ? 'invalid' : ''}`} data-field={props.id.replace('field-', '')}>
      <label for={props.id}>{props.label}</label>
      <textarea id={props.id} spellcheck={false} rows={Math.min(24, Math.max(4, props.value.split('\n').length + 1))} value={props.value}
        aria-invalid={invalid ? true : undefined} aria-describedby={invalid ? `${props.id}-error` : undefined}
        onInput={(e) => props.onInput(e.currentTarget.value)} />
      <FieldErrors id={`${props.id}-error`} problems={props.problems} />
    </div>
  );
}

function FieldErrors(props: { id: string; problems: FieldProblem[] }): JSX.Element | null {
  if (props.problems.length === 0) return null;
  return (
    <ul class="field-errors" id={props.id}>
      {props.problems.map((p, i) => <li key={i}><span aria-hidden="true">✖ </span>{p.path.includes('.') || p.path.startsWith('(') ? <code>{p.path}</code> : null} {p.message}</li>)}
    </ul>
  );
}
