// Reload on change of any file certgate loads: the YAML config, server cert/key, client CA
// bundles, CRL files. The DIRECTORIES are watched, not the files: an atomic rename (new inode)
// or a Kubernetes ConfigMap/Secret symlink swap (`..data` renamed) ends a watch on the file.
// Events are debounced; when the new material does not build yet (cert and key land in two
// writes) the reload is retried briefly before its failure is reported.

import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { ReloadResult } from '../proxy/events.js';
import { loadTlsMaterial } from '../tls/material.js';

/** Every file a reload reads. */
export function watchedFiles(config: Config): string[] {
  return [config.file, config.tls.cert, config.tls.key, ...config.tls.clientCAs, ...config.revocation.crl.files];
}

export interface ReloadWatcherOptions {
  readonly log: Logger;
  readonly debounceMs: number;
  /** The one reload (the same function SIGHUP and POST /reload call). */
  readonly reload: () => ReloadResult | Promise<ReloadResult>;
  /** Checks whether the files on disk build, without side effects; returns the problems. */
  readonly preflight?: (configFile: string) => string[];
  readonly configFile: string;
  /** Attempts while the material does not build yet, and the pause between them. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
}

/** Loads config and TLS material the way a reload does, and only reports. */
export function materialProblems(configFile: string): string[] {
  try {
    loadTlsMaterial(loadConfig(configFile));
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

export class ReloadWatcher {
  readonly #opts: ReloadWatcherOptions;
  readonly #log: Logger;
  /** Directory -> names in it that matter. */
  #names = new Map<string, Set<string>>();
  readonly #watchers = new Map<string, FSWatcher>();
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  /** Resolves after each reload the watcher triggered (tests and logs). */
  #listeners = new Set<(r: ReloadResult) => void>();

  constructor(opts: ReloadWatcherOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  onReload(cb: (r: ReloadResult) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** (Re)points the watches at these files' directories; called at start and after each reload. */
  setFiles(files: readonly string[]): void {
    if (this.#closed) return;
    const names = new Map<string, Set<string>>();
    for (const f of files) {
      const dir = dirname(f);
      let s = names.get(dir);
      if (s === undefined) names.set(dir, (s = new Set()));
      s.add(basename(f));
    }
    this.#names = names;
    for (const [dir, w] of this.#watchers) {
      if (!names.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of names.keys()) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.#onEvent(dir, name));
        w.on('error', (err) => {
          this.#log.warn({ event: 'watch_error', dir, err: err.message }, 'file watch failed; SIGHUP or POST /reload still reload');
          w.close();
          this.#watchers.delete(dir);
        });
        this.#watchers.set(dir, w);
      } catch (err) {
        this.#log.warn({ event: 'watch_error', dir, err: (err as Error).message }, 'cannot watch directory; SIGHUP or POST /reload still reload');
      }
    }
  }

  get directories(): string[] {
    return [...this.#watchers.keys()];
  }

  #onEvent(dir: string, name: string | Buffer | null): void {
    const wanted = this.#names.get(dir);
    if (wanted === undefined) return;
    const n = name === null ? undefined : String(name);
    // Unknown name (some platforms), one of ours, or Kubernetes' atomic writer swapping `..data`.
    if (n !== undefined && !wanted.has(n) && !n.startsWith('..')) return;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#trigger();
    }, this.#opts.debounceMs);
    this.#debounce.unref();
  }

  #trigger(): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#reloadWhenReady().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.#trigger();
      }
    });
  }

  async #reloadWhenReady(): Promise<void> {
    const { retries = 6, retryDelayMs = 250, preflight = materialProblems, configFile } = this.#opts;
    for (let i = 0; i < retries; i++) {
      if (preflight(configFile).length === 0) break;
      // Half-written material (new cert, old key): wait for the second write before judging.
      await new Promise((r) => setTimeout(r, retryDelayMs).unref());
      if (this.#closed) return;
    }
    this.#log.info({ event: 'watch_reload' }, 'watched file changed: reloading');
    const result = await this.#opts.reload();
    for (const l of this.#listeners) l(result);
  }

  /** Waits for a reload the watcher is running, if any. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  close(): void {
    this.#closed = true;
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }
}
