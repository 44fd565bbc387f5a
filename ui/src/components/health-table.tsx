import type { JSX } from 'preact';
import { shortTime } from '../lib/format';
import type { PodHealth } from '../lib/types';

export function HealthTable(props: { health: PodHealth[] }): JSX.Element {
  if (props.health.length === 0) return <p class="muted">No health-check answers recorded (health checks off, or none yet).</p>;
  return (
    <div class="scroll-x">
      <table class="health">
        <thead><tr><th scope="col">Pod</th><th scope="col">Healthy</th><th scope="col">Answer</th><th scope="col">Checked</th></tr></thead>
        <tbody>
          {props.health.map((h) => (
            <tr key={h.podName} data-pod={h.podName} data-healthy={String(h.healthy)}>
              <th scope="row" data-label="Pod">{h.podName}</th>
              <td data-label="Healthy"><span class={`badge ${h.healthy ? 'ok' : 'bad'}`}><span aria-hidden="true">{h.healthy ? '✔' : '✖'}</span> {h.healthy ? 'healthy' : 'unhealthy'}</span></td>
              <td data-label="Answer">{h.reason}{h.statusCode !== undefined ? ` (HTTP ${h.statusCode}, ${h.latencyMs} ms)` : ''}{h.body ? <code class="body-excerpt">{h.body}</code> : null}</td>
              <td data-label="Checked"><time dateTime={h.checkedAt}>{shortTime(h.checkedAt)}</time></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
