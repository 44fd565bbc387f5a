import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { invalidInput } from './errors.js';

/**
 * Descriptor files: YAML (several documents separated by `---`) or JSON (one object, or a list
 * of them). YAML is read as YAML 1.1, as kubectl reads manifests (`yes` → true, `0777` → 511).
 */

export interface DescriptorDocument {
  /** "app.yaml", "app.yaml document 2", "stdin document 1": for messages. */
  label: string;
  body: Record<string, unknown>;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads FILE (or stdin for "-"); every read or parse problem is an invalid-input error. */
export async function loadDescriptorFile(path: string, stdin: NodeJS.ReadableStream): Promise<DescriptorDocument[]> {
  const name = path === '-' ? 'stdin' : path;
  let text: string;
  try {
    text = path === '-' ? await readAll(stdin) : await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw invalidInput(`cannot read ${name}: ${why}`);
  }
  return parseDescriptors(text, name);
}

/** Parses the text of a descriptor file; exported for tests. */
export function parseDescriptors(text: string, name: string): DescriptorDocument[] {
  if (text.trim() === '') throw invalidInput(`${name} is empty`);
  const trimmed = text.trimStart();
  let values: unknown[];
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    // JSON gets JSON's own error messages (with positions), which YAML's are not for JSON input.
    try {
      const parsed: unknown = JSON.parse(text);
      values = Array.isArray(parsed) ? parsed : [parsed];
    } catch (err) {
      throw invalidInput(`${name} is not valid JSON: ${(err as Error).message}`);
    }
  } else {
    const docs = parseAllDocuments(text, { version: '1.1', prettyErrors: true, uniqueKeys: true });
    const list = Array.isArray(docs) ? docs : [docs];
    const problems = list.flatMap((doc, i) => doc.errors.map((e) => ({ path: list.length > 1 ? `document ${i + 1}` : '', message: e.message.split('\n')[0]! })));
    if (problems.length > 0) throw invalidInput(`${name} is not valid YAML`, problems);
    values = list.map((doc) => doc.toJS({ maxAliasCount: 100 }) as unknown);
  }
  const several = values.length > 1;
  const out: DescriptorDocument[] = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing "---"
    const label = several ? `${name} document ${i + 1}` : name;
    if (typeof value !== 'object' || Array.isArray(value)) throw invalidInput(`${label}: a descriptor must be a mapping (an object), not ${Array.isArray(value) ? 'a list' : typeof value}`);
    out.push({ label, body: value as Record<string, unknown> });
  });
  if (out.length === 0) throw invalidInput(`${name} contains no descriptor`);
  return out;
}
