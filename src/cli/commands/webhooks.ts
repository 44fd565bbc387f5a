import { WebhookApi } from '../api.js';
import type { CommandContext } from '../context.js';
import { notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/**
 * `cutover webhooks list|add|remove|deliveries`: a namespace's webhook subscriptions
 * (docs/webhooks.md). `add` prints the signing secret once; the receiver needs it.
 */

function table(rows: string[][], bold: (s: string) => string): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, n) => {
    const line = r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    return n === 0 ? bold(line) : line;
  }).join('\n');
}

export async function webhooksListCommand(ctx: CommandContext, namespace: string): Promise<number> {
  const hooks = await new WebhookApi(ctx.client).list(namespace);
  if (ctx.json) {
    ctx.emitJson({ ok: true, exitCode: 0, webhooks: hooks });
    return ExitCode.success;
  }
  if (hooks.length === 0) {
    ctx.io.stdout.write(`no webhooks in namespace ${namespace}\n`);
    return ExitCode.success;
  }
  const rows = [['ID', 'APPS', 'EVENTS', 'URL'], ...hooks.map((h) => [h.id, h.apps?.join(',') ?? '*', h.events?.join(',') ?? '*', h.url])];
  ctx.io.stdout.write(`${table(rows, ctx.style.bold)}\n`);
  return ExitCode.success;
}

export async function webhooksAddCommand(ctx: CommandContext, namespace: string, url: string, opts: { app?: string[]; event?: string[]; description?: string }): Promise<number> {
  const created = await new WebhookApi(ctx.client).create(namespace, {
    url,
    ...(opts.app && opts.app.length > 0 ? { apps: opts.app.flatMap((a) => a.split(',')) } : {}),
    ...(opts.event && opts.event.length > 0 ? { events: opts.event.flatMap((e) => e.split(',')) } : {}),
    ...(opts.description ? { description: opts.description } : {}),
  });
  if (ctx.json) {
    ctx.emitJson({ ok: true, exitCode: 0, ...created });
    return ExitCode.success;
  }
  ctx.io.stdout.write(`webhook ${created.webhook.id} added: ${created.webhook.url}\n`);
  ctx.io.stdout.write(`secret: ${created.secret}\n`);
  ctx.io.stderr.write('the secret is shown only now: give it to the receiver, which checks X-Cutover-Signature with it (docs/webhooks.md)\n');
  return ExitCode.success;
}

export async function webhooksRemoveCommand(ctx: CommandContext, namespace: string, id: string): Promise<number> {
  if (!(await new WebhookApi(ctx.client).remove(namespace, id))) throw notFound(`no webhook ${id} in namespace ${namespace}`, `cutover webhooks list ${namespace} shows them`);
  if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, removed: id });
  else ctx.io.stdout.write(`webhook ${id} removed, with its pending deliveries\n`);
  return ExitCode.success;
}

export async function webhooksDeliveriesCommand(ctx: CommandContext, namespace: string, id: string, opts: { last?: number }): Promise<number> {
  const log = await new WebhookApi(ctx.client).deliveries(namespace, id, opts.last);
  if (ctx.json) {
    ctx.emitJson({ ok: true, exitCode: 0, deliveries: log });
    return ExitCode.success;
  }
  if (log.length === 0) {
    ctx.io.stdout.write('no deliveries yet\n');
    return ExitCode.success;
  }
  const rows = [['STATUS', 'ATTEMPTS', 'TYPE', 'DEPLOYMENT', 'WHEN', 'LAST ERROR'], ...log.map((d) => [
    d.status, String(d.attempts), d.type.replace(/^io\.cutover\.deployment\./, ''), d.deploymentId, d.lastAttempt ?? d.enqueued,
    d.lastError ?? (d.status === 'pending' && d.nextAttempt ? `next attempt ${d.nextAttempt}` : ''),
  ])];
  ctx.io.stdout.write(`${table(rows, ctx.style.bold)}\n`);
  return ExitCode.success;
}
