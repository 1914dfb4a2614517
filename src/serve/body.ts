// Request bodies: JSON objects only. The Content-Type must say JSON (application/json or
// application/*+json): a form or text/plain body is refused with 415 rather than parsed anyway,
// which also keeps cross-site "simple" browser requests (they cannot send JSON without a CORS
// preflight) from reaching the model. Size is capped while the body streams in.

import type * as http from 'node:http';
import { HttpError } from './openai.js';

/** Throw 415 unless the request declares a JSON body. */
export function checkJsonContentType(req: http.IncomingMessage): void {
  const ct = req.headers['content-type'];
  const type = (ct ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json' || /^application\/[\w.+-]+\+json$/.test(type)) return;
  throw new HttpError(415, ct === undefined
    ? 'the request has no Content-Type; send the JSON body with "Content-Type: application/json"'
    : `Content-Type ${JSON.stringify(ct)} is not supported; send the JSON body with "Content-Type: application/json"`);
}

/** Read a JSON object body of at most `max` bytes (415 for a non-JSON type, 413 above the cap, 400 for bad JSON). */
export function readJsonBody(req: http.IncomingMessage, max: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    checkJsonContentType(req);
    const declared = Number(req.headers['content-length'] ?? NaN);
    const tooLarge = () => new HttpError(413, `request body is larger than the limit of ${max} bytes`);
    if (Number.isFinite(declared) && declared > max) { reject(tooLarge()); return; }
    const chunks: Buffer[] = [];
    let size = 0, failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > max) { failed = true; reject(tooLarge()); return; }
      chunks.push(c);
    });
    req.on('error', (e) => { if (!failed) { failed = true; reject(e); } });
    req.on('end', () => {
      if (failed) return;
      let v: unknown;
      try { v = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) {
        reject(new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`));
        return;
      }
      if (!v || typeof v !== 'object' || Array.isArray(v)) { reject(new HttpError(400, 'request body must be a JSON object')); return; }
      resolve(v as Record<string, unknown>);
    });
  });
}

/** After an early error (413, 415) the rest of the upload is read and dropped (so the client sees the response), up to a cap. */
export function drain(req: http.IncomingMessage, cap: number): void {
  let n = 0;
  req.on('data', (c: Buffer) => { n += c.length; if (n > cap) req.destroy(); });
  req.resume();
}
