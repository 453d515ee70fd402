// Encode throughput of HF's official Rust tokenizers (npm tokenizers@0.23.2, deps in
// tests/fixtures/tokenizer/package.json) on a JSONL corpus, one document per encode() call, in order.
// Usage: node bench_hf_tokenizers.mjs TOKENIZER.json CORPUS.jsonl [REPEATS]
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'tests/fixtures/tokenizer/package.json'));
const { Tokenizer } = require('tokenizers');

const [tokPath, corpusPath, repeatsArg] = process.argv.slice(2);
const repeats = Number(repeatsArg ?? 3);
const docs = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const tok = Tokenizer.fromFile(tokPath);
let best = Infinity;
let tokens = 0;
for (let r = 0; r < repeats; ++r) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const d of docs) n += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  best = Math.min(best, s);
  tokens = n;
}
console.log(`hf-tokenizers tokens=${tokens} best_s=${best.toFixed(4)} tokens_per_s=${Math.round(tokens / best)}`);
