import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { requiredPermissions } from '../../src/deployer/permissions.js';
import { traefikProfile } from '../../src/deployer/ingress-profiles.js';
import { HttpRouteTarget, IngressTarget, StableServiceTarget } from '../../src/deployer/traffic/index.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** What cutover uses, as "group/resource:verb": the engine's own needs and every traffic target's kinds (all profiles). */
function usedByCutover(): Set<string> {
  const targets = [new StableServiceTarget(traefikProfile), new IngressTarget(traefikProfile, {}), new HttpRouteTarget(traefikProfile)];
  const used = new Set<string>();
  for (const p of requiredPermissions(targets, { podProxy: true })) for (const v of p.verbs) used.add(`${p.group}/${p.resource}:${v}`);
  return used;
}

/** Granted on purpose though not used yet (reserved, read-only); documented in k8s/rbac.yaml. */
const RESERVED = new Set<string>();

describe('Kubernetes RBAC manifests (k8s/)', () => {
  const docs = parseAllDocuments(read('k8s/rbac.yaml'));
  for (const d of docs) assert.deepEqual(d.errors, []);
  const objects = docs.map((d) => d.toJS() as { kind: string; metadata: { name: string }; rules?: Rule[]; roleRef?: { kind: string; name: string }; subjects?: Array<{ kind: string; name: string; namespace: string }> });
  const role = objects.find((o) => o.kind === 'ClusterRole')!;
  const granted = new Set(role.rules!.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))));

  it('grants everything cutover uses: the engine and the kinds every traffic target declares', () => {
    assert.ok(usedByCutover().has('gateway.networking.k8s.io/httproutes:update'), 'the HTTPRoute target declares its kind');
    const missing = [...usedByCutover()].filter((u) => !granted.has(u));
    assert.deepEqual(missing, []);
  });

  it('grants nothing else (least privilege), no wildcards and no escalation verbs', () => {
    const used = usedByCutover();
    const extra = [...granted].filter((g) => !used.has(g) && !RESERVED.has(g));
    assert.deepEqual(extra, []);
    for (const r of role.rules!) {
      for (const v of [...r.apiGroups, ...r.resources, ...r.verbs]) assert.notEqual(v, '*');
      for (const v of r.verbs) assert.ok(!['escalate', 'bind', 'impersonate', 'patch', 'deletecollection'].includes(v), v);
    }
  });

  it('binds the role to the cutover service account that the Deployment runs as', () => {
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding')!;
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'cutover', namespace: 'cutover' }]);
    const sa = parseAllDocuments(read('k8s/serviceaccount.yaml'))[0]!.toJS() as { kind: string; metadata: { name: string; namespace: string } };
    assert.equal(sa.kind, 'ServiceAccount');
    assert.deepEqual([sa.metadata.name, sa.metadata.namespace], ['cutover', 'cutover']);
    assert.match(read('k8s/deployment.yaml'), /serviceAccountName: cutover/);
  });

  it('shows the same rules in the namespace-scoped template of docs/security.md', () => {
    const doc = read('docs/security.md');
    const template = /```yaml\n(# namespace-scoped[\s\S]*?)```/.exec(doc);
    assert.ok(template, 'docs/security.md has the Role template');
    const roleDoc = parseAllDocuments(template[1]!).map((d) => d.toJS() as { kind: string; rules?: Rule[] }).find((o) => o.kind === 'Role');
    assert.ok(roleDoc);
    assert.deepEqual(roleDoc.rules, role.rules, 'the Role has exactly the ClusterRole\'s rules');
  });
});
