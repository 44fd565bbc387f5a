import type { JSX } from 'preact';
import { useMemo } from 'preact/hooks';
import { diffLines } from '../lib/diff';

/** Two columns, changed lines marked with a sign as well as a colour. */
export function DiffView(props: { left: string; right: string; leftLabel: string; rightLabel: string }): JSX.Element {
  const rows = useMemo(() => diffLines(props.left, props.right), [props.left, props.right]);
  const changes = rows.filter((r) => r.kind !== 'same').length;
  return (
    <div class="diff-wrap">
      <p role="status">{changes === 0 ? 'No differences.' : `${changes} changed line${changes === 1 ? '' : 's'}.`}</p>
      <div class="scroll-x">
        <table class="diff" aria-label={`Differences between ${props.leftLabel} and ${props.rightLabel}`}>
          <thead><tr><th scope="col" colSpan={2}>{props.leftLabel}</th><th scope="col" colSpan={2}>{props.rightLabel}</th></tr></thead>
          <tbody>
            {rows.map((row, i) => {
              const left = row.kind === 'added' ? undefined : row;
              const right = row.kind === 'removed' ? undefined : row;
              const leftSign = row.kind === 'removed' || row.kind === 'changed' ? '−' : ' ';
              const rightSign = row.kind === 'added' || row.kind === 'changed' ? '+' : ' ';
              return (
                <tr key={i} class={row.kind}>
                  <td class="no">{left ? left.leftNo : ''}</td>
                  <td class={`code ${row.kind === 'same' ? '' : 'del'}`}>{left ? `${leftSign} ${left.left}` : ''}</td>
                  <td class="no">{right ? right.rightNo : ''}</td>
                  <td class={`code ${row.kind === 'same' ? '' : 'ins'}`}>{right ? `${rightSign} ${right.right}` : ''}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
