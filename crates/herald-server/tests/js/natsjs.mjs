// Drives a NATS server with nats.js (npm `nats`), the JavaScript client, and
// prints what it saw as one JSON object. tests/it/natsjs.rs runs it against
// herald and against nats-server and compares the two.
//
// Usage: node natsjs.mjs nats://127.0.0.1:4222
import { AckPolicy, connect, headers, StringCodec } from "nats";

const url = process.argv[2];
const sc = StringCodec();
const out = {};

function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

const nc = await connect({ servers: url, name: "natsjs-test" });

// Core pub/sub, with a wildcard and headers.
{
  const sub = nc.subscribe("njs.core.>", { max: 3 });
  const got = (async () => {
    const seen = [];
    for await (const m of sub) {
      seen.push([m.subject, sc.decode(m.data), m.headers?.get("X-Trace") ?? null]);
    }
    return seen;
  })();
  await nc.flush();
  nc.publish("njs.core.a", sc.encode("one"));
  const h = headers();
  h.set("X-Trace", "t1");
  nc.publish("njs.core.b.c", sc.encode("two"), { headers: h });
  nc.publish("njs.other", sc.encode("not for us"));
  nc.publish("njs.core.d", sc.encode("three"));
  out.core = await got;
}

// Request/reply, and no responders.
{
  const svc = nc.subscribe("njs.svc.echo", {
    callback: (err, m) => {
      if (!err) m.respond(sc.encode(`echo:${sc.decode(m.data)}`));
    },
  });
  await nc.flush();
  const reply = await nc.request("njs.svc.echo", sc.encode("ping"), { timeout: 5000 });
  out.reply = sc.decode(reply.data);
  try {
    await nc.request("njs.nobody.home", sc.encode("x"), { timeout: 5000 });
    out.no_responders = "answered";
  } catch (err) {
    out.no_responders = err.code;
  }
  svc.unsubscribe();
}

// JetStream: a stream, publishes with acks (header-less ones go out as
// `HPUB subject reply 0 total`), de-duplication, a durable pull consumer
// read with fetch() and consume(), every message acknowledged.
{
  const jsm = await nc.jetstreamManager();
  const si = await jsm.streams.add({ name: "NJS", subjects: ["njs.js.>"] });
  out.stream_created = si.config.name;
  const js = nc.jetstream();
  const seqs = [];
  for (let i = 0; i < 200; i++) {
    const pa = await js.publish(`njs.js.${i % 2 === 0 ? "even" : "odd"}`, sc.encode(`m${i}`));
    seqs.push(pa.seq);
  }
  check(seqs.every((s, i) => s === i + 1), "publish acks count up from 1");
  out.published = seqs.length;
  const first = await js.publish("njs.js.even", sc.encode("dup"), { msgID: "id-1" });
  const again = await js.publish("njs.js.even", sc.encode("dup"), { msgID: "id-1" });
  out.dedup = { first: first.duplicate, again: again.duplicate, same_seq: first.seq === again.seq };

  await jsm.consumers.add("NJS", { durable_name: "work", ack_policy: AckPolicy.Explicit });
  const consumer = await js.consumers.get("NJS", "work");
  const fetched = [];
  const batch = await consumer.fetch({ max_messages: 50, expires: 5000 });
  for await (const m of batch) {
    fetched.push(m.seq);
    m.ack();
  }
  check(fetched.length === 50, `fetch got ${fetched.length} of 50`);
  out.fetched = [fetched[0], fetched[fetched.length - 1]];

  const consumed = [];
  const messages = await consumer.consume({ max_messages: 64 });
  for await (const m of messages) {
    consumed.push(m.seq);
    await m.ackAck();
    if (m.seq === 201) break;
  }
  check(consumed.length === 151, `consume got ${consumed.length} of 151`);
  out.consumed = [consumed[0], consumed[consumed.length - 1]];

  const ci = await consumer.info();
  out.consumer_info = {
    num_pending: ci.num_pending,
    num_ack_pending: ci.num_ack_pending,
    delivered: ci.delivered.stream_seq,
    ack_floor: ci.ack_floor.stream_seq,
  };
  const info = await jsm.streams.info("NJS");
  out.stream_state = { messages: info.state.messages, last_seq: info.state.last_seq };
  const last = await jsm.streams.getMessage("NJS", { last_by_subj: "njs.js.odd" });
  out.last_odd = sc.decode(last.data);
  await jsm.streams.delete("NJS");
}

await nc.drain();
console.log(JSON.stringify(out));
