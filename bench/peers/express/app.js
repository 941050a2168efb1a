// express-session with connect-redis and node-redis: the bench routes (see ../registry.py).
// Usage: node app.js [port] [workers]; PORT and WORKERS in the environment work too.
import cluster from "node:cluster";
import process from "node:process";

import { RedisStore } from "connect-redis";
import express from "express";
import session from "express-session";
import { createClient } from "redis";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const workers = Number(process.argv[3] ?? process.env.WORKERS ?? 1);
const DAY_MS = 86400 * 1000;

// Node runs one thread: --workers N forks N processes sharing the port, as gunicorn/uvicorn do.
if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  // Exit after the workers, so that the primary's exit means the whole app has stopped.
  cluster.on("exit", () => {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGTERM");
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const client = createClient({ url: process.env.REDIS_URL });
  client.on("error", (err) => console.error("redis:", err.message));
  await client.connect();

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false); // the Python apps send no ETag: don't hash every body here alone
  app.use(
    session({
      store: new RedisStore({ client }),
      secret: "bench-secret-0123456789abcdef0123",
      name: "connect.sid",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: DAY_MS, httpOnly: true, sameSite: "lax" },
    }),
  );

  const text = (res, value) => res.type("text/plain").send(String(value));
  app.get("/read", (req, res) => text(res, req.session.n ?? 0));
  app.get("/incr", (req, res) => {
    req.session.n = (req.session.n ?? 0) + 1;
    text(res, req.session.n);
  });
  app.get("/untouched", (req, res) => text(res, "ok"));

  const server = app.listen(port, "127.0.0.1");
  let stopping = false; // the group's SIGTERM and the primary's may both arrive
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => client.close().finally(() => process.exit(0)));
    server.closeAllConnections(); // keep-alive clients would hold close() open
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
