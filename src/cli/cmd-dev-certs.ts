import { writeDevCerts } from '../ca/dev-certs.js';
import { parseFlags, required } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } });
  const out = required(values.out, '--out');
  const r = await writeDevCerts(out, { force: values.force ?? false });
  process.stdout.write(`${r.created ? 'wrote' : 'kept existing'} dev certificates in ${out}\n`);
  return 0;
}
