// GET /metrics: counters and gauges in Prometheus' text exposition format (version 0.0.4: "# HELP",
// "# TYPE", then `name{label="value"} number` lines). Names follow Prometheus' conventions (a unit
// suffix, `_total` on counters); llama-server exports the same kind of figures under "llamacpp:".

import type { Engine } from './engine.js';
import type { GrammarCacheStats } from '../generate/constrain/cache.js';

/** Request latency buckets in seconds (generation requests run from milliseconds to minutes). */
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

interface Histogram { counts: number[]; sum: number; count: number }

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export class ServerMetrics {
  private readonly requests = new Map<string, number>();
  private readonly durations = new Map<string, Histogram>();
  private readonly constrained = new Map<string, number>();
  private readonly started = Date.now();
  choices = 0;

  /** One answered request; `route` must come from a fixed set (unknown paths are "other"). */
  request(route: string, status: number, seconds: number): void {
    const key = `${route}\u0000${status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.durations.get(route);
    if (!h) { h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }; this.durations.set(route, h); }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) h.counts[i]++;
    h.sum += seconds;
    h.count++;
  }

  /** A generation constrained by `kind` (json_object, json_schema, grammar, tools). */
  constraint(kind: string): void {
    this.constrained.set(kind, (this.constrained.get(kind) ?? 0) + 1);
  }

  render(engine: Engine | undefined, grammars: GrammarCacheStats | undefined): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, rows: Array<[Record<string, string>, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) {
        const l = Object.entries(labels).map(([k, x]) => `${k}="${escapeLabel(x)}"`).join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(v) ? v : 0}`);
      }
    };
    metric('openelm_up_seconds', 'gauge', 'Seconds since the server started.', [[{}, (Date.now() - this.started) / 1000]]);
    metric('openelm_requests_total', 'counter', 'HTTP requests answered, by route and status.',
      [...this.requests].map(([k, v]) => { const [route, status] = k.split('\u0000'); return [{ route, status }, v]; }));
    out.push('# HELP openelm_request_duration_seconds Time from request to the end of the response, by route.', '# TYPE openelm_request_duration_seconds histogram');
    for (const [route, h] of this.durations) {
      const r = escapeLabel(route);
      BUCKETS.forEach((b, i) => out.push(`openelm_request_duration_seconds_bucket{route="${r}",le="${b}"} ${h.counts[i]}`));
      out.push(`openelm_request_duration_seconds_bucket{route="${r}",le="+Inf"} ${h.count}`);
      out.push(`openelm_request_duration_seconds_sum{route="${r}"} ${h.sum}`, `openelm_request_duration_seconds_count{route="${r}"} ${h.count}`);
    }
    metric('openelm_choices_total', 'counter', 'Generated choices (sequences); a request with n > 1 or several prompts has several.', [[{}, this.choices]]);
    metric('openelm_constrained_choices_total', 'counter', 'Choices generated under a grammar, by what asked for it.', [...this.constrained].map(([kind, v]) => [{ kind }, v]));
    if (engine) {
      const t = engine.totals, s = engine.stats;
      metric('openelm_prompt_tokens_total', 'counter', 'Prompt tokens run through the model (not counting cached ones).', [[{}, t.promptTokens]]);
      metric('openelm_prompt_tokens_cached_total', 'counter', 'Prompt tokens found in a slot\'s KV cache.', [[{}, t.cachedTokens]]);
      metric('openelm_generated_tokens_total', 'counter', 'Tokens generated.', [[{}, t.predictedTokens]]);
      metric('openelm_decode_steps_total', 'counter', 'Batched forward steps.', [[{}, t.steps]]);
      metric('openelm_decode_step_seconds_total', 'counter', 'Time spent in batched forward steps.', [[{}, t.stepMs / 1000]]);
      metric('openelm_requests_running', 'gauge', 'Sequences generating now.', [[{}, s.running]]);
      metric('openelm_requests_queued', 'gauge', 'Sequences waiting for a slot.', [[{}, s.queued]]);
      metric('openelm_slots', 'gauge', 'Sequences that can generate at once.', [[{}, engine.slots]]);
    }
    if (grammars) {
      metric('openelm_grammar_cache_entries', 'gauge', 'Compiled grammars kept.', [[{}, grammars.entries]]);
      metric('openelm_grammar_cache_hits_total', 'counter', 'Requests whose grammar was already compiled.', [[{}, grammars.hits]]);
      metric('openelm_grammar_cache_misses_total', 'counter', 'Grammars compiled.', [[{}, grammars.misses]]);
      metric('openelm_grammar_compile_seconds_total', 'counter', 'Time spent compiling grammars.', [[{}, grammars.compileMs / 1000]]);
    }
    return out.join('\n') + '\n';
  }
}
