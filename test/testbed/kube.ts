// Kubernetes API helpers shared by `up` and the test harness.
import { ApiException, CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { waitUntil } from './wait.js';

/** A KubeConfig loaded from an explicit file. (loadFromDefault would silently fall back to localhost:8080.) */
export function loadKubeConfig(kubeconfigPath: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  if (!kc.getCurrentCluster()) throw new Error(`${kubeconfigPath} has no current cluster`);
  return kc;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

/** Short, one-line description of an API error (ApiException.message is a multi-line dump). */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const status = JSON.parse(String(err.body)) as { message?: string };
      return `HTTP ${err.code}: ${status.message ?? String(err.body).slice(0, 200)}`;
    } catch {
      return `HTTP ${err.code}: ${String(err.body).slice(0, 200)}`;
    }
  }
  return err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
}

function nodeProblem(node: V1Node | undefined): string | undefined {
  if (!node) return 'not found';
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True') return `Ready=${ready?.status ?? 'unknown'}`;
  if (node.spec?.taints?.length) return `taints ${node.spec.taints.map((t) => t.key).join(',')}`;
  if (node.spec?.unschedulable) return 'unschedulable';
  return undefined;
}

/** Waits until every named node is Ready and has no taints (the not-ready taint goes a moment after Ready). */
export async function waitForNodes(kc: KubeConfig, names: string[], timeoutMs: number, logFile?: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await waitUntil(`nodes ${names.join(', ')} to be Ready and untainted`, async () => {
    const list = await core.listNode();
    const problems = names
      .map((n) => [n, nodeProblem(list.items.find((x) => x.metadata?.name === n))] as const)
      .filter(([, p]) => p !== undefined)
      .map(([n, p]) => `${n}: ${p}`);
    return problems.length === 0 || problems.join('; ');
  }, { timeoutMs, intervalMs: 200, ...(logFile ? { logFile } : {}) });
}
