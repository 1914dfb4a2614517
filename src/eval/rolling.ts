// Document log-likelihood the way lm-eval's loglikelihood_rolling computes it (wikitext task):
// the document's tokens (BOS first, as add_bos_token=True encodes) are cut into disjoint windows of
// max_length predictions; the first window is conditioned on one prefix token, every later window
// on the max_length + 1 - n tokens before its n predictions (utils.get_rolling_token_windows with
// context_len=1, then make_disjoint_window).
//
// At lm-eval dc90fec (OpenELM's version) the prefix is the EOS token; from v0.4.2 on it is the
// prefix_token_id (BOS). Either way the first scored token is the document's BOS itself.

export interface Window { ctx: number[]; cont: number[]; }

export function rollingWindows(tokens: readonly number[], prefixToken: number, maxLen: number): Window[] {
  if (!(maxLen >= 1)) throw new RangeError('maxLen must be >= 1');
  const out: Window[] = [];
  if (tokens.length === 0) return out;
  const first = Math.min(maxLen, tokens.length);
  out.push({ ctx: [prefixToken], cont: tokens.slice(0, first) });
  let predicted = first;
  while (predicted < tokens.length) {
    const n = Math.min(tokens.length - predicted, maxLen);
    const end = predicted + n;
    // Window input tokens[end-maxLen-1 : end-1]; the disjoint context drops the n-1 predicted ones.
    out.push({ ctx: tokens.slice(end - maxLen - 1, end - n), cont: tokens.slice(end - n, end) });
    predicted = end;
  }
  return out;
}

/**
 * Sliding-window evaluation (the Hugging Face perplexity recipe): windows of `window` tokens that
 * start every `stride` tokens; each scores the tokens the previous window did not, with the rest of
 * the window as context. A window's first token is never scored (nothing precedes it in the window),
 * so stride == window gives independent, non-overlapping windows.
 */
export function strideWindows(tokens: readonly number[], window: number, stride: number): Window[] {
  if (!(stride >= 1 && stride <= window)) throw new RangeError('stride must be in 1..window');
  const out: Window[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < tokens.length; begin += stride) {
    const end = Math.min(begin + window, tokens.length);
    const from = Math.max(prevEnd, begin + 1);
    if (end > from) out.push({ ctx: tokens.slice(begin, from), cont: tokens.slice(from, end) });
    prevEnd = end;
    if (end === tokens.length) break;
  }
  return out;
}
