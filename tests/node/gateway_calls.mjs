// The official openai npm package making the same calls against whatever BASE_URL names
// (the gateway or the simulator). Prints one JSON object: case name -> what the SDK returned.
// Driven by tests/gateway/test_node_sdk.py, which compares the two runs.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.BASE_URL,
  apiKey: process.env.API_KEY,
  maxRetries: 0,
});

const weatherParameters = {
  type: 'object',
  properties: { city: { type: 'string' } },
  required: ['city'],
};

async function collect(stream) {
  const events = [];
  for await (const event of stream) events.push(event);
  return events;
}

const cases = {
  chat: () =>
    client.chat.completions.create({
      model: 'gpt-5.2',
      messages: [{ role: 'user', content: 'How do I change my billing address?' }],
      user: 'node-user-1',
    }),
  chat_stream: async () =>
    collect(
      await client.chat.completions.create({
        model: 'gpt-5.2',
        messages: [{ role: 'user', content: 'Explain the return window.' }],
        user: 'node-user-1',
        stream: true,
        stream_options: { include_usage: true },
      }),
    ),
  tool_calls: () =>
    client.chat.completions.create({
      model: 'gpt-5.2',
      messages: [{ role: 'user', content: 'Weather in Rome please' }],
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', description: 'Weather', parameters: weatherParameters },
        },
      ],
      user: 'node-user-1',
    }),
  responses: () =>
    client.responses.create({ model: 'gpt-5.2', input: 'Summarise the warranty.', user: 'node-user-1' }),
  responses_stream: async () =>
    collect(
      await client.responses.create({
        model: 'gpt-5.2',
        input: 'List three shipping options.',
        user: 'node-user-1',
        stream: true,
      }),
    ),
  responses_tool_reasoning_stream: async () =>
    collect(
      await client.responses.create({
        model: 'gpt-5.2',
        input: [{ role: 'user', content: 'Weather in Lisbon tomorrow?' }],
        tools: [{ type: 'function', name: 'get_weather', parameters: weatherParameters }],
        tool_choice: 'required',
        reasoning: { effort: 'low' },
        user: 'node-user-1',
        stream: true,
      }),
    ),
  responses_continued: async () => {
    const first = await client.responses.create({
      model: 'gpt-5.2',
      instructions: 'Be brief.',
      input: 'Which warranty covers a cracked screen?',
      user: 'node-user-1',
    });
    return client.responses.create({
      model: 'gpt-5.2',
      instructions: 'Be brief.',
      input: 'And water damage?',
      previous_response_id: first.id,
      user: 'node-user-1',
    });
  },
  moderations: () => client.moderations.create({ input: 'a harmless sentence' }),
  embeddings: () => client.embeddings.create({ model: 'text-embedding-3-small', input: 'node text' }),
};

const out = {};
for (const [name, run] of Object.entries(cases)) {
  try {
    out[name] = await run();
  } catch (error) {
    out[name] = { sdk_failed: String(error), status: error.status ?? null };
  }
}
process.stdout.write(JSON.stringify(out));
