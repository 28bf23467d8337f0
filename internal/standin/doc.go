// Package standin is a loopback stand-in for three model APIs — the
// Anthropic Messages API, the OpenAI Responses API and the Gemini API —
// good enough for the real agents to answer an ACP session/prompt with
// the stand-in's text: @zed-industries/claude-agent-acp 0.23.1 (which
// drives the Claude Code CLI 2.1.83 bundled in
// @anthropic-ai/claude-agent-sdk 0.2.83), @zed-industries/codex-acp
// 0.16.0 (codex 0.137.0) and @google/gemini-cli 0.61.0 (gemini --acp).
//
// It exists for end-to-end tests in which the agent runs inside the
// sandbox VM with a placeholder key while the sandbox's network stack
// injects the real key on the way out: the stand-in records the
// x-api-key, authorization and x-goog-api-key headers and the key query
// parameter of every request it receives (Requests, KeysSeen), so a test
// can check which key arrived.
//
// One Server answers for all three. A request goes to the API its Host
// header names (api.anthropic.com, api.openai.com,
// generativelanguage.googleapis.com: the real names, as in the VM) or,
// for any other host (a base URL pointing at the stand-in), to the API
// its path belongs to: /v1/responses to OpenAI, /v1beta/…, /v1alpha/…
// and /v1/models/{model}:{method} to Gemini, the rest (and /v1/models
// unless it carries codex's client_version query) to Anthropic. So a
// test can map all three hosts to one stand-in with a certificate for
// all of them (Options.Hosts).
//
// Every request, known or not, is recorded and, with Options.Logf,
// logged. Options.Key (or Options.Keys, per API) makes each API demand
// that key where the real one takes it, and refuse others with the real
// one's error.
//
// What each agent sends, below, comes from the opt-in tests TestAgent,
// TestCodexAgent and TestGeminiAgent (ACP_SANDBOX_TEST_STANDIN_AGENT=1 go
// test -run 'Agent$' ./internal/standin), which run the real agent on the
// host in network and mount namespaces of its own: only loopback, a
// private /etc/hosts, and (for codex and gemini) a DNS server on
// 127.0.0.1 that records the names looked up and answers NXDOMAIN.
//
// # Anthropic
//
//   - POST /v1/messages with "stream": true: server-sent events in the
//     API's streaming format — message_start, content_block_start, ping,
//     one content_block_delta (text_delta) per chunk of Options.Reply
//     (two words a chunk, see Chunks) with Options.ChunkDelay between
//     them, content_block_stop, message_delta (stop_reason "end_turn",
//     usage) and message_stop.
//   - POST /v1/messages without streaming: the same answer as one JSON
//     message.
//   - POST /v1/messages/count_tokens: a rough count (body bytes / 4).
//   - GET /v1/models and /v1/models/{id}: a short list of models.
//   - POST /api/event_logging/batch and /api/claude_code/metrics
//     (telemetry): 200 and {}.
//   - Anything else: 404 with the API's JSON error body
//     {"type":"error","error":{"type":"not_found_error",...}}.
//
// The key goes in x-api-key or "Authorization: Bearer"; with Options.Key
// /v1/* without it gets 401 authentication_error.
//
// # OpenAI
//
//   - POST /v1/responses with "stream": true: server-sent events —
//     response.created, response.in_progress, response.output_item.added,
//     response.content_part.added, one response.output_text.delta per
//     chunk, response.output_text.done, response.content_part.done,
//     response.output_item.done (the assistant message, which codex
//     takes the text from) and response.completed (with usage); each
//     with a sequence_number. A request with "generate": false (codex's
//     warm-up) gets response.created, response.in_progress and
//     response.completed without output.
//   - POST /v1/responses without streaming: the response object.
//   - GET /v1/responses upgrading to a WebSocket: the Responses API over
//     a WebSocket, as codex uses it first. Each text message
//     {"type":"response.create", …the POST body…} is answered with the
//     same events, one a text message; other messages
//     (response.processed) are ignored. The upgrade is recorded (status
//     101) when it succeeds, and each response.create as a Request of
//     its own with Method "WS", the upgrade's headers and the message as
//     Body.
//   - GET /v1/models and /v1/models/{id}: the public list format
//     ({"object":"list","data":[…]}).
//   - Anything else: 404 {"error":{"message":"Invalid URL (METHOD
//     path)","type":"invalid_request_error","param":null,"code":null}}.
//
// The key goes only in "Authorization: Bearer". With Options.Key a
// request without a bearer token gets 401 "You didn't provide an API
// key. …" (code null), one with another key 401 "Incorrect API key
// provided: sk-*****1234. …" (code "invalid_api_key"; the key masked as
// the API does).
//
// # Gemini
//
//   - POST /v1beta/models/{model}:streamGenerateContent?alt=sse (also
//     under /v1 and /v1alpha): data-only server-sent events with CRLF line
//     ends, one GenerateContentResponse per chunk (candidates[0].content
//     role "model" with one text part, usageMetadata, modelVersion,
//     responseId), the last with finishReason "STOP". Without alt=sse the
//     chunks as one JSON array.
//   - POST …:generateContent: the whole answer in one response.
//   - For either, a request for JSON (generationConfig.responseMimeType
//     "application/json", as gemini-cli's model router sends on every
//     prompt) is answered with a value of its responseJsonSchema or
//     responseSchema (first enum values, every property, minimum or 1 for
//     numbers, Options.Reply for strings), streamed whole.
//   - POST …:countTokens: a rough count.
//   - GET /v1beta/models and /v1beta/models/{model}: a short list.
//   - Anything else: 404 {"error":{"code":404,"message":…,"status":
//     "NOT_FOUND"}}.
//
// The key goes in x-goog-api-key or the key query parameter. With
// Options.Key a request without one gets 403 PERMISSION_DENIED "Method
// doesn't allow unregistered callers …", one with another key 400 (not
// 401, like the real service) INVALID_ARGUMENT "API key not valid.
// Please pass a valid API key." with an ErrorInfo detail, reason
// API_KEY_INVALID.
//
// # What claude-agent-acp calls
//
// Observed by running claude-agent-acp 0.23.1 against the stand-in in a
// network namespace with only loopback (standin_test.go, TestAgent).
// initialize sends nothing. session/new (about 2 s after the agent starts)
// starts the Claude Code process, which sends:
//
//   - HEAD / to the API host, no key (a connection warm-up; 404 is fine).
//
// and to https://api.anthropic.com itself, whatever ANTHROPIC_BASE_URL
// says (so they reach the stand-in in the VM, but not on the host with a
// loopback base URL):
//
//   - only when the base URL is api.anthropic.com (unset): GET
//     /api/claude_code/settings and GET /api/claude_code/policy_limits,
//     with the key (remote managed settings; 404 is taken as none);
//   - unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is set, even with a
//     custom base URL: POST /api/eval/sdk-… (GrowthBook feature flags),
//     GET /api/claude_cli/bootstrap, GET /api/claude_code_penguin_mode —
//     all three with the key — GET /mcp-registry/v0/servers?version=
//     latest&visibility=commercial (no key) and, some seconds after the
//     first prompt, POST /api/event_logging/batch (with the key, ~50 kB
//     of telemetry).
//
// 404 for all of these costs nothing: the prompt is answered as fast.
// Outside api.anthropic.com the only name looked up was
// raw.githubusercontent.com (the plugin marketplace's blocklist), with or
// without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC; its failure is
// ignored. No Statsig, Sentry or Datadog traffic was seen.
//
// Each session/prompt sends one POST /v1/messages?beta=true, streaming,
// model claude-sonnet-4-6, key in x-api-key (never authorization),
// anthropic-beta claude-code-20250219,interleaved-thinking-2025-05-14,…,
// user-agent "claude-cli/2.1.83 (external, sdk-ts)". Its text deltas
// reach the client as agent_message_chunk updates (one per delta),
// followed by a usage_update and the prompt's stopReason "end_turn". The
// request body is ~94 kB with a custom ANTHROPIC_BASE_URL and ~32 kB
// against api.anthropic.com (first party, the CLI defers tool schemas:
// beta advanced-tool-use-2025-11-20). No count_tokens, no /v1/models,
// no title or topic request was seen.
//
// # claude-agent-acp environment
//
//   - ANTHROPIC_API_KEY: the key. With it set the CLI uses it without
//     any login or ~/.claude.json; it sends it as x-api-key.
//     claude-agent-acp refuses session/new (auth required) only when
//     ~/.claude.json is missing but ~/.claude.json.backup exists, so a
//     fresh, empty HOME is fine.
//   - ANTHROPIC_BASE_URL: where the Messages API is (default
//     https://api.anthropic.com). Leave it unset in the VM; set it to the
//     stand-in's URL for a test on the host. It moves only /v1/* (and the
//     HEAD /): the /api/* and /mcp-registry calls above still go to
//     api.anthropic.com, with the key.
//   - NODE_EXTRA_CA_CERTS: a PEM file of extra roots. Honoured: with
//     Options.TLS and CAPEM written to that file the agent talks HTTPS to
//     the stand-in (also as https://api.anthropic.com:443 resolved to
//     loopback). Without it session/prompt fails with JSON-RPC error
//     -32603 "API Error: Unable to connect to API: Self-signed certificate
//     detected. Check your proxy or corporate SSL certificates" and no
//     request gets through (CLAUDE_CODE_MAX_RETRIES=0 makes that quick).
//   - CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1: optional. It drops the
//     feature-flag, bootstrap, fast-mode, MCP registry and telemetry
//     calls listed above (Claude Code's settings docs call it the
//     equivalent of DISABLE_AUTOUPDATER, DISABLE_BUG_COMMAND,
//     DISABLE_ERROR_REPORTING and DISABLE_TELEMETRY together). The agent
//     answers correctly without it, and none of those four is needed
//     either; with it the recorded requests are fewer and the real key
//     goes to fewer endpoints.
//   - HOME: the CLI writes ~/.claude and ~/.claude.json; tests give it a
//     temporary directory.
//
// claude-agent-acp does not exit when its stdin closes once a session is
// open (the Claude Code child keeps it alive): end its process group.
// Running as root it turns off its bypassPermissions mode unless
// IS_SANDBOX is set; a plain text answer asks no permission, so that does
// not matter here.
//
// # What codex-acp calls
//
// Observed by running codex-acp 0.16.0 against the stand-in in a network
// namespace with only loopback (agents_test.go, TestCodexAgent).
// initialize, authenticate and session/new send nothing. The first
// session/prompt of a session opens a WebSocket:
//
//   - GET {base}/responses with Upgrade: websocket,
//     Authorization: Bearer KEY, OpenAI-Beta: responses_websockets=
//     2026-02-06, originator: codex_cli_rs, version: 0.137.0, user-agent
//     "codex_cli_rs/0.137.0 (Debian 12.0.0; x86_64) unknown" (the built-in
//     OpenAI provider prefers WebSockets);
//   - over it a warm-up response.create, generate false and input []
//     (~32 kB: instructions and tools), then the turn's response.create
//     (~42 kB: model gpt-5.5, stream true, store false, reasoning effort
//     medium, include reasoning.encrypted_content, text verbosity low,
//     prompt_cache_key the thread id, client_metadata).
//
// The text deltas reach the client as agent_message_chunk updates (one
// per delta), then a usage_update and the stopReason "end_turn", 0.3 to
// 1.1 s after session/prompt (initialize takes about 1 s). No /v1/models (codex fetches its model
// list only with a ChatGPT login), no other path, and no other host: the
// only name looked up was the machine's own host name.
//
// When the upgrade is refused (404 from a server without WebSockets, or
// 401) codex retries it ("Reconnecting... 2/5" to 5/5, about 8 s with
// backoff), then falls back to POST {base}/responses with "stream": true
// — and puts "Falling back from WebSockets to HTTPS transport. <the
// error>" into its reply as an agent_message_chunk. That is why the
// stand-in serves the WebSocket. With a wrong key: seven 401 upgrades, six
// 401 POSTs, and after ~14 s session/prompt fails with -32603 "Internal
// error", the reply text "Falling back from WebSockets to HTTPS
// transport. unexpected status 401 Unauthorized: Incorrect API key
// provided: …".
//
// # codex-acp environment
//
//   - OPENAI_API_KEY (authenticate methodId "openai-api-key") or
//     CODEX_API_KEY ("codex-api-key"): read only by ACP authenticate,
//     which stores the key in $CODEX_HOME/auth.json
//     ({"auth_mode":"apikey","OPENAI_API_KEY":KEY}, mode 0600). Without
//     authenticate session/new fails with -32000 "Authentication required"
//     although the variable is set. The key goes only in
//     "Authorization: Bearer".
//   - The base URL has no environment variable (OPENAI_BASE_URL is gone
//     from codex): it is the configuration key openai_base_url, in
//     $CODEX_HOME/config.toml (openai_base_url = "https://localhost:PORT/v1")
//     or on the command line (codex-acp -c openai_base_url="…"), /v1
//     included; the WebSocket URL follows it (ws:// or wss://). Leave it
//     unset in the VM: https://api.openai.com/v1.
//   - CODEX_CA_CERTIFICATE or SSL_CERT_FILE: a PEM file of roots, used for
//     HTTPS and for wss. Without either codex uses the system store
//     (/etc/ssl/certs/ca-certificates.crt); all three were seen to work,
//     the system store with no variable at all. Without the CA no request
//     gets through ("invalid peer certificate: UnknownIssuer"); after its
//     retries (~32 s) session/prompt fails with -32603 and the reply text
//     "Falling back from WebSockets to HTTPS transport. stream
//     disconnected before completion: invalid peer certificate:
//     UnknownIssuer".
//   - CODEX_HOME (default ~/.codex): config.toml, auth.json, SQLite
//     state and logs, bundled skills. With it under /tmp codex warns on
//     stderr that it will not create helper binaries there; harmless.
//
// codex-acp does not exit when its stdin closes (not even after
// initialize alone), and its node wrapper (bin/codex-acp.js, which runs
// the Rust binary with spawnSync) does not pass signals on: end its
// process group.
//
// # What gemini --acp calls
//
// Observed by running gemini --acp (@google/gemini-cli 0.61.0, with
// @google/genai 1.30.0) against the stand-in in a network namespace
// with only loopback (agents_test.go, TestGeminiAgent). initialize takes
// 4 to 13 s (the CLI starting); initialize, authenticate and session/new
// send nothing. Each session/prompt sends two requests:
//
//   - POST /v1beta/models/gemini-3.5-flash-lite:generateContent (~3.5
//     kB): the model router's classifier, asking for JSON of a schema
//     ({complexity_reasoning, complexity_score}). An answer that does not
//     parse as JSON is retried five times with backoff (the prompt then
//     took 1 min 35 s instead of 0.3 s), hence the stand-in's JSON
//     answers; a score of 1 routes to a flash model.
//   - POST /v1beta/models/{model}:streamGenerateContent?alt=sse (~46 kB:
//     contents, systemInstruction, tools, generationConfig), model
//     gemini-3.8-flash as routed (gemini-3.1-pro-preview when the router
//     failed).
//
// Both carry x-goog-api-key: KEY (never the key query parameter, never
// authorization), user-agent "GeminiCLI-acp/0.61.0/gemini-2.5-pro (linux;
// x64; terminal)" and x-goog-api-client "google-genai-sdk/1.30.0
// gl-node/v20.20.2". The text reaches the client as agent_message_chunk
// updates (one per streamed chunk), then the stopReason "end_turn", 0.2
// to 1.4 s after session/prompt; no usage_update. No countTokens, models
// list or next-speaker check was seen. Outside the API host the only name
// looked up was play.googleapis.com (usage statistics to Clearcut, POST
// https://play.googleapis.com/log), unless ~/.gemini/settings.json says
// {"privacy": {"usageStatisticsEnabled": false}}; its failure costs
// nothing. With a wrong key session/prompt fails at once with JSON-RPC
// error code 400 and the API's error body as message.
//
// # gemini --acp environment
//
//   - GEMINI_API_KEY: the key. With it set the agent needs no
//     authenticate (session/new and session/prompt work as they are);
//     authenticate methodId "gemini-api-key" is fine too, and with
//     _meta {"api-key": KEY} it needs no variable. authenticate writes
//     security.auth.selectedType to ~/.gemini/settings.json.
//   - GOOGLE_GEMINI_BASE_URL: where the API is, without /v1beta (such as
//     https://localhost:PORT). Leave it unset in the VM:
//     https://generativelanguage.googleapis.com. With it set the auth
//     type taken from the environment is "gateway", which sends the key
//     the same way.
//   - NODE_EXTRA_CA_CERTS: a PEM file of extra roots, honoured. The
//     system store is not (node has its own roots): with the CA only
//     there, or nowhere, no request gets through and the agent retries
//     "fetch failed" for minutes without answering the prompt.
//   - HOME (or GEMINI_CLI_HOME): the CLI writes ~/.gemini (settings,
//     installation_id, projects, chats).
//
// gemini relaunches itself as a child node process (unless
// GEMINI_CLI_NO_RELAUNCH is set); it exits when its stdin closes after an
// answered prompt, not while it retries a request: end its process group.
package standin
