/**
 * Labels and annotations that mark what cutover created. cutover only ever changes or deletes
 * objects carrying MANAGED_BY (or objects the Amdatu deployer created under the same names and
 * labels, so a namespace can migrate); objects that merely share the `app` label are left alone.
 */

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'cutover';
/**
 * On versioned objects: the deployment that created them. On traffic objects (stable Service,
 * Ingress, routes): the deployment that last pointed them somewhere. Failure paths change or
 * delete only objects carrying their own deployment's id (invariant I2).
 */
export const DEPLOYMENT_ID_ANNOTATION = 'cutover.io/deployment-id';
export const VERSION_ANNOTATION = 'cutover.io/version';

export interface ObjectMetaLike {
  name?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Labels of every versioned object and of its pods (the original deployer's three). */
export function versionLabels(app: string, version: string): Record<string, string> {
  return { app, version, name: `${app}-${version}` };
}

export function managedVersionLabels(app: string, version: string): Record<string, string> {
  return { ...versionLabels(app, version), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
}

/** Labels of the stable (unversioned) Service `{app}`. */
export function stableServiceLabels(app: string): Record<string, string> {
  return { app, name: app, persistent: 'true', [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
}

/** Labels of the Ingresses and other traffic objects of an app. */
export function trafficLabels(app: string): Record<string, string> {
  return { app, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
}

export function isManagedByCutover(meta: ObjectMetaLike | undefined): boolean {
  return meta?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}

/**
 * Objects the Amdatu deployer created: versioned RCs/Services carry exactly its three labels
 * (app, version, name = app-version); its stable Service carries persistent=true; its Ingresses
 * have no labels but the name `{app}` / `{app}-www-redirect`.
 */
export function isAmdatuVersioned(meta: ObjectMetaLike | undefined, app: string): boolean {
  const l = meta?.labels;
  return l?.['app'] === app && typeof l['version'] === 'string' && l['name'] === `${app}-${l['version']}` && meta?.name === l['name'];
}

export function isAmdatuStableService(meta: ObjectMetaLike | undefined, app: string): boolean {
  const l = meta?.labels;
  return meta?.name === app && l?.['app'] === app && l['persistent'] === 'true';
}

export function isAmdatuIngress(meta: ObjectMetaLike | undefined, app: string): boolean {
  const ingressClass = meta?.annotations?.['kubernetes.io/ingress.class'];
  return (meta?.name === app || meta?.name === `${app}-www-redirect`) && ingressClass === 'nginx' && !meta.labels?.[MANAGED_BY_LABEL];
}

/** May cutover change or delete this versioned object (workload or versioned Service) of `app`? */
export function mayManageVersioned(meta: ObjectMetaLike | undefined, app: string): boolean {
  return (isManagedByCutover(meta) && meta?.labels?.['app'] === app) || isAmdatuVersioned(meta, app);
}

export function mayManageStableService(meta: ObjectMetaLike | undefined, app: string): boolean {
  return (isManagedByCutover(meta) && meta?.labels?.['app'] === app) || isAmdatuStableService(meta, app);
}

export function mayManageIngress(meta: ObjectMetaLike | undefined, app: string): boolean {
  return (isManagedByCutover(meta) && meta?.labels?.['app'] === app) || isAmdatuIngress(meta, app);
}

/** The deployment id an object carries, if any. */
export function deploymentIdOf(meta: ObjectMetaLike | undefined): string | undefined {
  return meta?.annotations?.[DEPLOYMENT_ID_ANNOTATION];
}

/** The one "is this object ours" check of a deployment: it carries the deployment's id. */
export function carriesDeployment(meta: ObjectMetaLike | undefined, deploymentId: string): boolean {
  return deploymentIdOf(meta) === deploymentId;
}
