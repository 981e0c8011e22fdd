#!/usr/bin/env node
// The certgate executable; the command line is handled in cli.ts.

import { main } from './cli.js';

const code = await main(process.argv.slice(2));
// Long-running commands return -1 and keep the process alive.
if (code >= 0) process.exitCode = code;
