// Drives `acp-sandbox -- /init demo-agent` with the official ACP TypeScript
// SDK, as an independent client: usage: node client.mjs ACP_SANDBOX WORKSPACE
// Prints one JSON object with what happened.
import { client, ndJsonStream } from "@agentclientprotocol/sdk";
import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";
import fs from "node:fs";

const [, , bin, ws] = process.argv;
const child = spawn(bin, ["--", "/init", "demo-agent"], { cwd: ws, stdio: ["pipe", "pipe", "inherit"] });
const stream = ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
const chunks = [];
const requests = [];

const app = client({ name: "acp-sandbox-sdk-test" })
  .onRequest("fs/write_text_file", ({ params }) => {
    requests.push(["fs/write_text_file", params.path]);
    fs.writeFileSync(params.path, params.content);
    return {};
  })
  .onRequest("fs/read_text_file", ({ params }) => {
    requests.push(["fs/read_text_file", params.path]);
    return { content: fs.readFileSync(params.path, "utf8") };
  })
  .onRequest("session/request_permission", ({ params }) => {
    requests.push(["session/request_permission", params.toolCall.title]);
    return { outcome: { outcome: "selected", optionId: params.options[0].optionId } };
  })
  .onNotification("session/update", ({ params }) => {
    if (params.update.sessionUpdate === "agent_message_chunk") chunks.push(params.update.content.text);
  });

const timer = setTimeout(() => {
  console.error("sdk client: timed out");
  child.kill("SIGKILL");
  process.exit(2);
}, 240_000);

const result = await app.connectWith(stream, async (ctx) => {
  const init = await ctx.request("initialize", {
    protocolVersion: 1,
    clientCapabilities: { fs: { readTextFile: true, writeTextFile: true }, terminal: false },
  });
  const session = await ctx.request("session/new", { cwd: ws, mcpServers: [] });
  const prompt = await ctx.request("session/prompt", {
    sessionId: session.sessionId,
    prompt: [{ type: "text", text: `whereami\nwrite ${ws}/sdk.txt from-the-sdk\nread ${ws}/sdk.txt\nread /etc/hostname\npermission sdk permission` }],
  });
  return { init, session, prompt };
});
clearTimeout(timer);
console.log(JSON.stringify({ ...result, chunks, requests }));
child.stdin.end();
await new Promise((resolve) => child.on("exit", resolve));
