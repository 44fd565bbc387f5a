import type {
  V1Deployment, V1EnvVar, V1Ingress, V1IngressTLS, V1PodSpec, V1ReplicationController, V1Service, V1ServicePort,
} from '@kubernetes/client-node';
import type { ContainerSpec, Descriptor, PodSpec } from '../domain/types.js';
import { versionedName } from '../domain/names.js';
import {
  DEPLOYMENT_ID_ANNOTATION, VERSION_ANNOTATION, managedVersionLabels, stableServiceLabels, trafficLabels, versionLabels,
} from './labels.js';

/**
 * Pure functions from a descriptor (plus the facts of one deployment) to Kubernetes objects.
 * No I/O here: everything the engine creates can be unit-tested as data.
 */

export interface EnvValue {
  name: string;
  value: string;
}

export interface DeploymentFacts {
  descriptor: Descriptor;
  version: string;
  deploymentId: string;
  /** Values from /deployer/environment, already filtered to valid names. */
  environment: EnvValue[];
}

/** Environment variables that identify the deployment; they always win over same-named ones. */
export const IDENTITY_ENV = ['APP_NAME', 'POD_NAMESPACE', 'APP_VERSION', 'POD_NAME'] as const;

/**
 * A container's environment: identity variables first (so the container's own values can refer
 * to them as $(APP_VERSION)), then the environment-wide values the container does not set itself
 * (the descriptor is more specific), then the container's own variables.
 */
export function containerEnv(container: ContainerSpec, facts: DeploymentFacts): V1EnvVar[] {
  const identity: V1EnvVar[] = [
    { name: 'APP_NAME', value: facts.descriptor.appName },
    { name: 'POD_NAMESPACE', value: facts.descriptor.namespace },
    { name: 'APP_VERSION', value: facts.version },
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
  ];
  const identityNames = new Set<string>(IDENTITY_ENV);
  const own = (container.env ?? []).filter((e) => !identityNames.has(e.name)) as V1EnvVar[];
  const ownNames = new Set(own.map((e) => e.name));
  const global = facts.environment.filter((e) => !ownNames.has(e.name) && !identityNames.has(e.name));
  return [...identity, ...global.map((e) => ({ name: e.name, value: e.value })), ...own];
}

/** Names of environment-wide values that a deployment injects into at least one container. */
export function injectedEnvironmentNames(facts: DeploymentFacts): string[] {
  const names = new Set<string>();
  for (const c of facts.descriptor.podspec.containers) {
    const own = new Set((c.env ?? []).map((e) => e.name));
    for (const e of facts.environment) if (!own.has(e.name)) names.add(e.name);
  }
  return [...names].sort();
}

function podSpecWithEnv(facts: DeploymentFacts): V1PodSpec {
  const spec = structuredClone(facts.descriptor.podspec) as PodSpec;
  spec.containers = spec.containers.map((c) => ({ ...c, env: containerEnv(c, facts) }));
  return spec as unknown as V1PodSpec;
}

function annotations(facts: DeploymentFacts): Record<string, string> {
  return { [DEPLOYMENT_ID_ANNOTATION]: facts.deploymentId, [VERSION_ANNOTATION]: facts.version };
}

/** The versioned workload `{app}-{version}`: a Deployment, or a ReplicationController on request. */
export function versionedWorkload(facts: DeploymentFacts): V1Deployment | V1ReplicationController {
  const { appName: app, namespace, replicas, controllerKind } = facts.descriptor;
  const name = versionedName(app, facts.version);
  const metadata = { name, namespace, labels: managedVersionLabels(app, facts.version), annotations: annotations(facts) };
  const template = {
    metadata: { labels: managedVersionLabels(app, facts.version), annotations: annotations(facts) },
    spec: podSpecWithEnv(facts),
  };
  if (controllerKind === 'ReplicationController') {
    return {
      apiVersion: 'v1', kind: 'ReplicationController', metadata,
      spec: { replicas, selector: versionLabels(app, facts.version), template },
    };
  }
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata,
    spec: { replicas, revisionHistoryLimit: 1, selector: { matchLabels: versionLabels(app, facts.version) }, template },
  };
}

export interface PortSpec {
  name?: string;
  port: number;
  protocol: string;
}

/** The pod's ports (all containers, first occurrence of a number wins), as the Services expose them. */
export function podPorts(podspec: PodSpec): PortSpec[] {
  const seen = new Set<number>();
  const out: PortSpec[] = [];
  for (const c of podspec.containers) {
    for (const p of c.ports ?? []) {
      if (seen.has(p.containerPort)) continue;
      seen.add(p.containerPort);
      out.push({ ...(p.name ? { name: p.name } : {}), port: p.containerPort, protocol: p.protocol ?? 'TCP' });
    }
  }
  return out;
}

/** Service ports; Kubernetes needs names once there is more than one, so unnamed ones get `port-N`. */
function servicePorts(ports: PortSpec[], targetByName: boolean): V1ServicePort[] {
  return ports.map((p) => ({
    name: p.name ?? (ports.length > 1 ? `port-${p.port}` : undefined),
    port: p.port,
    protocol: p.protocol,
    targetPort: (targetByName && p.name ? p.name : p.port) as unknown as V1ServicePort['targetPort'],
  }));
}

/** The versioned Service `{app}-{version}`; undefined for pods without ports (workers). */
export function versionedService(facts: DeploymentFacts, extraAnnotations: Record<string, string> = {}): V1Service | undefined {
  const { appName: app, namespace } = facts.descriptor;
  const ports = podPorts(facts.descriptor.podspec);
  if (ports.length === 0) return undefined;
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: versionedName(app, facts.version), namespace, labels: managedVersionLabels(app, facts.version), annotations: { ...annotations(facts), ...extraAnnotations } },
    spec: { type: 'ClusterIP', selector: versionLabels(app, facts.version), ports: servicePorts(ports, false) },
  };
}

/** The stable Service `{app}`, selecting the pods of `version`. */
export function stableService(descriptor: Descriptor, version: string, extraAnnotations: Record<string, string> = {}): V1Service | undefined {
  const ports = podPorts(descriptor.podspec);
  if (ports.length === 0) return undefined;
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: descriptor.appName, namespace: descriptor.namespace, labels: stableServiceLabels(descriptor.appName), annotations: { [VERSION_ANNOTATION]: version, ...extraAnnotations } },
    spec: { type: 'ClusterIP', selector: { app: descriptor.appName, version }, ports: servicePorts(ports, true) },
  };
}

/** Selector label of a stable Service that selects no pods yet (created before a first switch). */
export const NO_VERSION_YET_LABEL = 'cutover.io/no-version-yet';

/** The stable Service of a first deployment before its switch: same ports, selecting nothing. */
export function placeholderStableService(descriptor: Descriptor, deploymentId: string): V1Service | undefined {
  const svc = stableService(descriptor, '');
  if (!svc) return undefined;
  svc.metadata!.annotations = { [DEPLOYMENT_ID_ANNOTATION]: deploymentId };
  svc.spec!.selector = { app: descriptor.appName, [NO_VERSION_YET_LABEL]: 'true' };
  return svc;
}

export function isPlaceholderStableService(svc: { spec?: { selector?: Record<string, string> } }): boolean {
  return svc.spec?.selector?.[NO_VERSION_YET_LABEL] === 'true';
}

/** The port the Ingress routes to: the first one not named `healthcheck` (contract §10.1). */
export function ingressPort(podspec: PodSpec): number | undefined {
  const ports = podPorts(podspec);
  return (ports.find((p) => p.name !== 'healthcheck') ?? ports[0])?.port;
}

export interface IngressSpecInput {
  descriptor: Descriptor;
  version: string;
  ingressClassName?: string;
  tlsSecretName?: string;
  annotations?: Record<string, string>;
}

/** The Ingress `{app}` routing the frontend host to the versioned Service. */
export function mainIngress(input: IngressSpecInput): V1Ingress | undefined {
  const { descriptor, version } = input;
  const port = ingressPort(descriptor.podspec);
  if (!descriptor.frontend || port === undefined) return undefined;
  return ingressFor({
    name: descriptor.appName, namespace: descriptor.namespace, app: descriptor.appName, host: descriptor.frontend,
    service: versionedName(descriptor.appName, version), port, version,
    ingressClassName: input.ingressClassName, tlsSecretName: input.tlsSecretName, annotations: input.annotations,
  });
}

/**
 * The `{app}-www-redirect` Ingress for `www.{frontend}`. It routes to the stable Service (so it
 * never needs switching); the redirect itself comes from the ingress profile (controller-specific).
 */
export function wwwRedirectIngress(input: IngressSpecInput): V1Ingress | undefined {
  const { descriptor, version } = input;
  const port = ingressPort(descriptor.podspec);
  if (!descriptor.frontend || !descriptor.redirectWww || port === undefined || descriptor.frontend.startsWith('*.')) return undefined;
  return ingressFor({
    name: `${descriptor.appName}-www-redirect`, namespace: descriptor.namespace, app: descriptor.appName,
    host: `www.${descriptor.frontend}`, service: descriptor.appName, port, version,
    ingressClassName: input.ingressClassName, tlsSecretName: input.tlsSecretName, annotations: input.annotations,
  });
}

function ingressFor(o: {
  name: string; namespace: string; app: string; host: string; service: string; port: number; version: string;
  ingressClassName?: string; tlsSecretName?: string; annotations?: Record<string, string>;
}): V1Ingress {
  const tls: V1IngressTLS[] | undefined = o.tlsSecretName ? [{ hosts: [o.host], secretName: o.tlsSecretName }] : undefined;
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: o.name, namespace: o.namespace, labels: trafficLabels(o.app), annotations: { [VERSION_ANNOTATION]: o.version, ...(o.annotations ?? {}) } },
    spec: {
      ...(o.ingressClassName ? { ingressClassName: o.ingressClassName } : {}),
      ...(tls ? { tls } : {}),
      rules: [{
        host: o.host,
        http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: o.service, port: { number: o.port } } } }] },
      }],
    },
  };
}

/** A Gateway an HTTPRoute attaches to. */
export interface ParentRef {
  namespace: string;
  name: string;
  sectionName?: string;
}

/** "namespace/name[/sectionName]" (validated by the descriptor schema and the configuration). */
export function parseGatewayRef(ref: string): ParentRef {
  const [namespace = '', name = '', sectionName] = ref.split('/');
  return { namespace, name, ...(sectionName ? { sectionName } : {}) };
}

/** An HTTPRoute filter (Gateway API), as data. */
export type RouteFilter = Record<string, unknown>;

export interface RouteSpecInput {
  descriptor: Descriptor;
  version: string;
  parent: ParentRef;
  annotations?: Record<string, string>;
  filters?: RouteFilter[];
}

const GATEWAY_API = 'gateway.networking.k8s.io/v1';

function parentRefOf(p: ParentRef): Record<string, string> {
  return { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: p.namespace, name: p.name, ...(p.sectionName ? { sectionName: p.sectionName } : {}) };
}

/** The HTTPRoute `{app}`: the frontend host to the versioned Service, through the given filters. */
export function mainRoute(input: RouteSpecInput): { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: Record<string, unknown> } | undefined {
  const { descriptor: d, version } = input;
  const port = ingressPort(d.podspec);
  if (!d.frontend || port === undefined) return undefined;
  return {
    apiVersion: GATEWAY_API, kind: 'HTTPRoute',
    metadata: { name: d.appName, namespace: d.namespace, labels: trafficLabels(d.appName), annotations: { [VERSION_ANNOTATION]: version, ...(input.annotations ?? {}) } },
    spec: {
      parentRefs: [parentRefOf(input.parent)],
      hostnames: [d.frontend],
      rules: [{
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        ...(input.filters && input.filters.length > 0 ? { filters: input.filters } : {}),
        backendRefs: [{ group: '', kind: 'Service', name: versionedName(d.appName, version), port }],
      }],
    },
  };
}

/** The HTTPRoute `{app}-www-redirect`: `www.{frontend}` answered with a 301 to the bare host (a standard filter). */
export function wwwRedirectRoute(input: RouteSpecInput): { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: Record<string, unknown> } | undefined {
  const { descriptor: d, version } = input;
  if (!d.frontend || !d.redirectWww || d.frontend.startsWith('*.')) return undefined;
  return {
    apiVersion: GATEWAY_API, kind: 'HTTPRoute',
    metadata: { name: `${d.appName}-www-redirect`, namespace: d.namespace, labels: trafficLabels(d.appName), annotations: { [VERSION_ANNOTATION]: version, ...(input.annotations ?? {}) } },
    spec: {
      parentRefs: [parentRefOf(input.parent)],
      hostnames: [`www.${d.frontend}`],
      rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: d.frontend, statusCode: 301 } }] }],
    },
  };
}
