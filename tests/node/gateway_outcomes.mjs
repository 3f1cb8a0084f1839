// A Node service reporting user outcomes: the official openai npm package calls the gateway,
// reads the answer's x-shadowcanary-event-id header (withResponse()), and posts what the
// user did next to POST /v1/tap/outcomes with its own gateway key.
// Driven by tests/gateway/test_outcomes_gateway.py. Env: BASE_URL (the gateway's /v1),
// API_KEY, CALLS, USER_PREFIX. Prints one JSON object with what it did.
import OpenAI from 'openai';

const baseURL = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
const calls = Number(process.env.CALLS ?? '40');
const prefix = process.env.USER_PREFIX ?? 'node-user';
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

// The users of the candidate's answers abandon 45 % of their tasks, the baseline's 10 %.
function abandoned(model, i) {
  return model === 'gpt-5.5' ? i % 20 < 9 : i % 10 === 0;
}

const reports = [];
const models = {};
let withoutHeader = 0;
for (let i = 0; i < calls; i += 1) {
  const { data, response } = await client.chat.completions
    .create({
      model: 'gpt-5.2',
      messages: [{ role: 'user', content: `Where is my order number ${i}?` }],
      user: `${prefix}-${i}`,
    })
    .withResponse();
  const eventId = response.headers.get('x-shadowcanary-event-id');
  models[data.model] = (models[data.model] ?? 0) + 1;
  if (!eventId) {
    withoutHeader += 1;
    continue;
  }
  reports.push({ event_id: eventId, task: abandoned(data.model, i) ? 'abandoned' : 'completed' });
}

const posted = await fetch(`${baseURL}/tap/outcomes`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ outcomes: reports }),
});
process.stdout.write(
  JSON.stringify({
    calls,
    models,
    without_header: withoutHeader,
    reported: reports.length,
    status: posted.status,
    answer: await posted.json(),
  }),
);
