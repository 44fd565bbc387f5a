import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { exampleDescriptor, openApiDocument, operations } from '../../src/api/openapi.js';
import { validateDescriptor } from '../../src/domain/descriptor-schema.js';
import { CUTOVER_VERSION } from '../../src/version.js';

describe('OpenAPI document', () => {
  const doc = openApiDocument(CUTOVER_VERSION) as any;

  it('is OpenAPI 3.1 with the package version', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(CUTOVER_VERSION, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    assert.equal(doc.info.version, CUTOVER_VERSION);
  });

  it('derives request bodies from the joi schemas the API validates with', () => {
    const body = doc.paths['/descriptors'].post.requestBody.content['application/json'].schema;
    assert.equal(body.type, 'object');
    assert.ok(body.required.includes('appName') && body.required.includes('podspec'));
    assert.deepEqual(body.properties.replicas, { type: 'integer', default: 1, minimum: 1, maximum: 1000 });
    assert.deepEqual(body.properties.healthCheckType.enum, ['probe', 'simple']);
  });

  it('documents path and query parameters', () => {
    const get = doc.paths['/deployments/{id}'].get;
    assert.deepEqual(get.parameters.map((p: any) => `${p.in}:${p.name}:${p.required}`), ['path:id:true', 'query:namespace:true']);
    const list = doc.paths['/deployments'].get;
    assert.ok(list.parameters.some((p: any) => p.name === 'limit' && p.schema.minimum === 1));
  });

  it('has operation ids that are unique', () => {
    const ids = Object.values(doc.paths).flatMap((p: any) => Object.values(p).map((o: any) => o.operationId));
    assert.equal(new Set(ids).size, ids.length);
  });

  it('shows descriptor examples that pass the real validation', () => {
    const examples = operations.filter((o) => o.body && o.path.startsWith('/descriptors')).map((o) => o.example);
    assert.ok(examples.length >= 3);
    for (const example of [exampleDescriptor, ...examples]) assert.ok(validateDescriptor(example).ok, JSON.stringify(example));
  });
});
