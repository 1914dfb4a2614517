// Writes assets/tokenizer/tokenizer.table, the bundled tokenizer saved whole (src/io/tokenizer-table.ts),
// from assets/tokenizer/tokenizer.model. Run after `npm run build` whenever the model or the
// Tokenizer's derived state changes; test/tokenizer-table.test.ts checks that the table is current.
import * as fs from 'node:fs';
import { Tokenizer } from '../dist/src/tokenizer/tokenizer.js';
import { encodeTokenizerTable } from '../dist/src/io/tokenizer-table.js';

const model = new URL('../assets/tokenizer/tokenizer.model', import.meta.url);
const out = new URL('../assets/tokenizer/tokenizer.table', import.meta.url);
const bytes = fs.readFileSync(model);
// Built by the constructor itself (not from an existing table), so the table is exact by construction.
const tok = Tokenizer.fromBytes(bytes, 'tokenizer.model');
const table = encodeTokenizerTable(tok, bytes);
// written beside the table and renamed over it, so an interrupted run leaves the old table whole
const tmp = new URL(`../assets/tokenizer/.tokenizer.table.${process.pid}.tmp`, import.meta.url);
fs.writeFileSync(tmp, table);
fs.renameSync(tmp, out);
console.log(`wrote ${out.pathname} (${table.length} bytes)`);
