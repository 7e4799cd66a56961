/**
 * The benchmarks measure mailnest as an operator runs it: the compiled dist/. bin/mailnest.js
 * falls back to the TypeScript sources when dist/ is older than them, which is slower to start
 * and about 17 MiB larger, so every benchmark compiles first.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export function buildMailnest(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.status ?? r.signal}); the benchmark needs a compiled dist/`);
}
