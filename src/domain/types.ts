/**
 * The records cutover stores. Field names follow the Amdatu deployer's JSON contract
 * (including its capitalised `OldVersion` and `additionHttpHeaders[].Header/Value`).
 */

export type ControllerKind = 'Deployment' | 'ReplicationController';
export type HealthCheckType = 'probe' | 'simple';
/** The HTTP method of a health check: POST with an empty JSON body (the original's probe) or GET. */
export type HealthCheckMethod = 'GET' | 'POST';
export type Routing = 'ingress' | 'httproute' | 'both';

export interface HttpHeader {
  Header: string;
  Value: string;
}

export interface Webhook {
  key: string;
  description?: string;
}

/**
 * An HTTP endpoint that decides whether a deployment may go on: cutover POSTs the deployment's
 * facts as JSON and expects `{"pass": true|false, "reason": "…"}` (docs/deployments.md, "Gates").
 */
export interface Gate {
  /** Shown in logs; default: the URL's host and path. */
  name?: string;
  /** http or https, no credentials. */
  url: string;
  /** Per attempt: connect, answer and body together. */
  timeoutSeconds: number;
  /** Further attempts after an attempt without a usable answer (never after a definite "pass": false). */
  retries: number;
}

/** A Kubernetes PodSpec as JSON; the API server validates it in full at deploy time. */
export interface PodSpec {
  containers: ContainerSpec[];
  imagePullSecrets?: Array<{ name: string }>;
  [field: string]: unknown;
}

export interface ContainerSpec {
  name: string;
  image: string;
  ports?: Array<{ containerPort: number; name?: string; protocol?: string; [field: string]: unknown }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  [field: string]: unknown;
}

export interface Descriptor {
  id: string;
  namespace: string;
  appName: string;
  /** "#" for auto-increment, otherwise a normalised version such as "1-2-0". */
  newVersion: string;
  created: string;
  lastModified: string;
  deploymentType: 'blue-green';
  replicas: number;
  /** Absent in a stored descriptor: the server's default. Always set in a deployment's copy. */
  controllerKind?: ControllerKind;
  podspec: PodSpec;

  frontend?: string;
  redirectWww: boolean;
  useCompression: boolean;
  useStickySessions: boolean;
  tlsSecretName?: string;
  ingressClassName?: string;
  /** Which routes carry the frontend's traffic: an Ingress, a Gateway API HTTPRoute, or both (default: CUTOVER_ROUTING). */
  routing?: Routing;
  /** The Gateway an HTTPRoute attaches to, "namespace/name[/sectionName]" (default: CUTOVER_GATEWAY). */
  gateway?: string;
  additionHttpHeaders: HttpHeader[];

  useHealthCheck: boolean;
  ignoreHealthCheck: boolean;
  healthCheckType: HealthCheckType;
  healthCheckPath: string;
  /** Pins the method; absent: probe → POST (GET when POST is not served), simple → GET. */
  healthCheckMethod?: HealthCheckMethod;
  healthCheckPort?: number;
  /** Seconds the new version may take to become ready and healthy. */
  healthCheckTimeout?: number;
  /** Seconds the replaced version keeps running after the switch. */
  drainSeconds?: number;
  /** Overall deadline of a deployment of this descriptor, in seconds. */
  deadlineSeconds?: number;
  /** Asked after the health checks passed, before the switch: a failure fails the deployment (nothing live touched). */
  preSwitchGates?: Gate[];
  /** Asked after the switch, during the drain window: a failure switches traffic back to the replaced version. */
  postSwitchChecks?: Gate[];

  webhooks?: Webhook[];

  /** Where a deployment of this descriptor goes when the request does not say: a cluster … */
  cluster?: string;
  /** … or every cluster of an environment (docs/clusters.md; "environment" is the original deployer's internal field). */
  targetEnvironment?: string;

  // Legacy fields of the original deployer: stored and returned, with no behaviour.
  useExternalHealthCheck?: boolean;
  externalHealthCheckPath?: string;
  readinessPort?: number;
  deployedVersion?: string;
  deploymentTs?: string;
}

/** A descriptor as a client sends it: server-managed fields are optional. */
export type DescriptorInput = Omit<Descriptor, 'id' | 'created' | 'lastModified'> & {
  id?: string;
  created?: string;
  lastModified?: string;
};

export interface Versioned<T> {
  value: T;
  /** etcd mod revision; used as the ETag and for compare-and-swap updates. */
  revision: string;
}

/** One health-check answer of one pod (src/healthcheck produces them). */
export interface HealthResult {
  podName: string;
  healthy: boolean;
  /** Absent when no HTTP answer was received. */
  statusCode?: number;
  /** Short excerpt of the answer body (at most 256 characters, control characters replaced); '' if none. */
  body: string;
  /** One-line human explanation: 'healthy', 'status 503', 'body is not JSON', 'connection refused', … */
  reason: string;
  latencyMs: number;
  /** ISO timestamp of when the check finished. */
  checkedAt: string;
}
