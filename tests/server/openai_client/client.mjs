// Drives a running `dsv4 serve` with the official OpenAI npm client, unchanged: models.list, chat
// (plain and streamed, with tools), completions, and an error. Usage: node client.mjs PORT MODEL.
// Exit 0 = every check passed; messages on stderr say which one failed.
import OpenAI from 'openai';

const [port, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 });

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, `models.list returned ${JSON.stringify(models.data)}`);

const messages = [{ role: 'user', content: 'Weather in Paris for 3 days?' }];
const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const chat = await client.chat.completions.create({ model, messages, tools, max_tokens: 300, seed: 1 });
check(chat.object === 'chat.completion', 'chat.completion object');
const msg = chat.choices[0].message;
check(chat.choices[0].finish_reason === 'tool_calls', `finish_reason ${chat.choices[0].finish_reason}`);
check(msg.tool_calls?.length === 1 && msg.tool_calls[0].function.name === 'get_weather', `tool_calls ${JSON.stringify(msg.tool_calls)}`);
const args = JSON.parse(msg.tool_calls[0].function.arguments);
check(args.city === 'Paris, "FR"' && args.days === 3, `arguments ${msg.tool_calls[0].function.arguments}`);

const stream = await client.chat.completions.create({ model, messages, tools, max_tokens: 300, seed: 1, stream: true,
                                                      stream_options: { include_usage: true } });
let reasoning = '', argText = '', finish = null, usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  reasoning += c.delta.reasoning_content ?? '';
  for (const t of c.delta.tool_calls ?? []) argText += t.function?.arguments ?? '';
  if (c.finish_reason) finish = c.finish_reason;
}
check(reasoning === msg.reasoning_content, `streamed reasoning ${JSON.stringify(reasoning)}`);
check(argText === msg.tool_calls[0].function.arguments, `streamed arguments ${argText}`);
check(finish === 'tool_calls' && usage && usage.completion_tokens === chat.usage.completion_tokens, 'stream finish/usage');

const comp = await client.completions.create({ model, prompt: 'Hello', max_tokens: 4 });
check(comp.object === 'text_completion' && typeof comp.choices[0].text === 'string', 'completions');

try {
  await client.chat.completions.create({ model, messages, temperature: 5 });
  check(false, 'temperature 5 must fail');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && /temperature/.test(e.message), `error ${e}`);
}
console.log('openai client: all checks passed');
