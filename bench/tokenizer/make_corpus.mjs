// Writes the benchmark corpus: JSONL, one {"text": ...} document per line, >= 1 MB in total, mixing
// English prose, source code, Markdown with CJK, and seeded random multilingual text (emoji, digit
// and whitespace runs). Usage: node make_corpus.mjs OUT.jsonl
import fs from 'node:fs';

const kFiles = [
  '/usr/share/common-licenses/GPL-3', '/usr/share/common-licenses/Apache-2.0',
  '/usr/share/common-licenses/GFDL-1.3', '/usr/share/common-licenses/Artistic',
  '/work/shared/docs/tokenizer-and-chat.md', '/work/shared/docs/dsv4-architecture.md',
  '/work/shared/docs/serving-design.md', '/work/shared/docs/hopper-kernels.md',
  '/work/shared/fixtures/chat_v4/test_output_4.txt', '/usr/include/c++/12/bits/stl_vector.h',
  '/usr/include/c++/12/bits/basic_string.h', '/usr/include/c++/12/bits/hashtable.h',
  '/usr/lib/python3.11/json/encoder.py', '/usr/lib/python3.11/argparse.py', '/usr/lib/python3.11/typing.py',
];
const kDocChars = 16000;

let seed = 42;
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const kRanges = [[0x61, 0x7a], [0x61, 0x7a], [0x4e00, 0x9fa5], [0x3041, 0x3096], [0xac00, 0xd7a3],
  [0x400, 0x44f], [0x1f300, 0x1f64f], [0x30, 0x39], [0x20, 0x2f]];
function random_doc(n) {
  let s = '';
  while (s.length < n) {
    const [lo, hi] = kRanges[int(0, kRanges.length - 1)];
    const len = int(1, 12);
    for (let i = 0; i < len; ++i) s += String.fromCodePoint(int(lo, hi));
    s += ['', ' ', ' ', ' ', '\n', '  ', '\t', '\n\n    '][int(0, 7)];
  }
  return s;
}

const docs = [];
for (const f of kFiles) {
  if (!fs.existsSync(f)) continue;
  const text = fs.readFileSync(f, 'utf8');
  for (let i = 0; i < text.length; i += kDocChars) docs.push(text.slice(i, i + kDocChars));
}
for (let i = 0; i < 24; ++i) docs.push(random_doc(kDocChars / 2));
const out = docs.map((t) => JSON.stringify({ text: t })).join('\n') + '\n';
fs.writeFileSync(process.argv[2], out);
const bytes = docs.reduce((a, t) => a + Buffer.byteLength(t, 'utf8'), 0);
console.error(`corpus: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB`);
