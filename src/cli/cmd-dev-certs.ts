import { writeDevCerts } from '../ca/dev-certs.js';
import { DEV_CERTS } from './commands.js';
import { parseCommand } from './flags.js';
import { required } from './usage.js';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommand(DEV_CERTS, argv);
  const out = required(values.out, '--out');
  const r = await writeDevCerts(out, { force: values.force ?? false });
  process.stdout.write(`${r.created ? 'wrote' : 'kept existing'} dev certificates in ${out}\n`);
  return 0;
}
