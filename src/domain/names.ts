/**
 * Naming rules shared by validation and the deployer. Kubernetes object names built from an
 * app and a version must be valid Service names (DNS-1035 labels, at most 63 characters).
 */

export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const MAX_LABEL_LENGTH = 63;
/** A cluster or environment name (docs/clusters.md): a DNS-1123 label of at most 63 characters. */
export const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The placeholder version meaning "next integer after the highest ever deployed". */
export const AUTO_VERSION = '#';

/**
 * Versions assigned for "#" are integers; names are checked as if the version had this many
 * digits, so an app that validates today still fits when it reaches version 999999.
 */
export const AUTO_VERSION_RESERVED_DIGITS = 6;

/** Lower-cases and replaces "." and "_" with "-" (the original deployer's rule). */
export function normaliseAppName(name: string): string {
  return name.trim().replace(/[._]/g, '-').toLowerCase();
}

/** "1.2.0" → "1-2-0", "RC_1" → "rc-1"; "#" stays "#". */
export function normaliseVersion(version: string): string {
  const v = version.trim();
  if (v === AUTO_VERSION) return v;
  return v.replace(/[._]/g, '-').toLowerCase();
}

export function isValidVersion(version: string): boolean {
  return version === AUTO_VERSION || DNS1123_LABEL.test(version);
}

/** The name of the versioned workload and Service: `{app}-{version}`. */
export function versionedName(appName: string, version: string): string {
  return `${appName}-${version}`;
}

/** The longest version string the name check has to allow for. */
export function versionForNameCheck(version: string): string {
  return version === AUTO_VERSION ? '9'.repeat(AUTO_VERSION_RESERVED_DIGITS) : version;
}

export function isNumericVersion(version: string): boolean {
  return /^[0-9]{1,15}$/.test(version);
}
