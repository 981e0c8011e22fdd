// The options of `npm run bench` and its --help text, apart from run.ts (which runs on import)
// so that a test can check that --help names every option.

import type { ParseArgsConfig } from 'node:util';
import { DEFAULTS, H2_SCENARIOS, SCENARIOS } from './harness.js';

export const OPTIONS = {
  duration: { type: 'string' },
  warmup: { type: 'string' },
  connections: { type: 'string' },
  pipelining: { type: 'string' },
  'h2-connections': { type: 'string' },
  'h2-streams': { type: 'string' },
  'fleet-revocations': { type: 'string' },
  'fleet-seconds': { type: 'string' },
  scenario: { type: 'string' },
  repeat: { type: 'string' },
  workers: { type: 'string' },
  idle: { type: 'string' },
  requests: { type: 'string' },
  'min-requests': { type: 'string' },
  target: { type: 'string' },
  'target-pid': { type: 'string' },
  'target-ca': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  pki: { type: 'string' },
  profile: { type: 'string' },
  'access-log': { type: 'string' },
  'no-pin': { type: 'boolean' },
  json: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const HELP = `npm run bench -- [options]

  --duration S        measured seconds per scenario and target (default ${DEFAULTS.durationMs / 1000})
  --warmup S          warm-up seconds before each window (default ${DEFAULTS.warmupMs / 1000})
  --connections N     keep-alive connections / request loops (default ${DEFAULTS.connections})
  --pipelining N      requests in flight per keep-alive connection (default ${DEFAULTS.pipelining})
  --h2-connections N  HTTP/2 connections in h2-streams and grpc-unary (default ${DEFAULTS.h2Connections})
  --h2-streams N      streams in flight on each of them (default ${DEFAULTS.h2Streams})
  --fleet-revocations N  revocations per run in fleet-propagation (default ${DEFAULTS.fleetRevocations})
  --fleet-seconds S   at most S seconds per fleet-propagation run (default ${DEFAULTS.fleetMaxMs / 1000})
  --scenario LIST     comma-separated, of: ${SCENARIOS.join(', ')} (default all)
  --repeat N          repeat every measurement N times (default ${DEFAULTS.repeat}; use 2+ for results)
  --workers N         certgate workers (node:cluster), default ${DEFAULTS.workers}
  --idle N            idle connections for idle-memory (default ${DEFAULTS.idleConnections})
  --requests N        stop a window after N requests (default ${DEFAULTS.maxRequests})
  --min-requests N    keep a window open past --duration until N requests (at most 30 s more)
  --target URL        also aim every scenario at this mTLS endpoint (e.g. https://127.0.0.1:8443)
  --target-pid PID    that endpoint's process, for its CPU and memory figures
  --target-ca FILE    CA that verifies it (default: the run's CA; see --pki)
  --cert FILE --key FILE   client certificate for --target (default: the run's ECDSA client)
  --pki DIR           keep the run's certificates in DIR and reuse its CA and server cert next time
  --profile DIR       write a V8 CPU profile of each certgate process and of the lean proxy into DIR
  --access-log WHERE  certgate's access log: stdout (default, a drained pipe as in a container) or file
  --no-pin            do not pin processes with taskset
  --json FILE         also write the JSON report to FILE
  --out DIR           output folder (default bench/out)
  -h, --help          this text

Targets in every HTTP/1.1 scenario: direct (the plain HTTP backend), bare (node:https answering
itself), lean (node:https + undici Pool.dispatch forwarding to the backend, no features) and
certgate. In ${H2_SCENARIOS.join(', ')}: bare-h2 (node:http2 answering itself,
gRPC too) and certgate-h2 (listen.http2: true, gRPC to an h2c backend); keepalive-h2listen runs
keepalive over HTTP/1.1 against bare, certgate and certgate-h2listen (listen.http2: true).
The fleet scenarios start their own redis-server (Debian package redis-server): fleet-propagation
times POST /revocations on one instance to the other closing the connection (certgate-fleet: two
instances, one store), keepalive-redis runs keepalive against bare, certgate and certgate-redis
(store.redis on).
`;
