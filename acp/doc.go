// Package acp is the wire layer of acp-sandbox's Agent Client Protocol relay:
// newline-delimited JSON-RPC 2.0 framing, messages decoded only as far as a
// relay needs, JSON-RPC ids, and a table of in-flight requests.
//
// # Boundary
//
// This package knows JSON-RPC, not ACP's methods. It never decides what to do
// with a message; package bridge does. Everything here is built for a relay
// that must be lossless: a message the bridge does not intercept leaves as the
// exact bytes it arrived as, so `_meta`, unknown fields, key order, escapes and
// number formatting survive byte for byte. Nothing in this package re-encodes
// a message. [Parse] reads only the top-level members jsonrpc, id, method,
// params, result and error, and keeps the original line in [Message.Raw];
// [Message.Params], [Message.Result] and [Message.Error] are sub-slices of it.
//
// Framing: one message per line, "\n"-terminated, no embedded newlines (JSON
// never needs a raw newline: inside strings it is escaped, between tokens it is
// optional whitespace). [Reader] returns lines without the "\n" (and without
// one trailing "\r"), skips blank lines, and survives an over-long line by
// skipping it. [Writer] writes one line per call, atomically with respect to
// other callers.
//
// # Ids
//
// [ID] keeps an id's exact bytes (1, 1.0 and "1" are three ids). Ids are
// rewritten only by the bridge, and only when it must: the relay forwards each
// peer's ids untouched, because the other peer answers with the same id and
// the relay then has nothing to map back. The bridge needs ids of its own only
// for requests it originates itself (a permission prompt, a network approval),
// and those come from an [IDAllocator], whose ids live in a namespace no
// honest peer uses. A peer request whose id falls in that namespace
// ([IDAllocator.Owns]) must not be forwarded with that id: refuse it or
// rewrite it with [RewriteID] / [Message.WithID], else the answer to it would
// be taken for the answer to the bridge's own request. [Pending] records
// in-flight requests, so that a dead peer fails every one of them at once.
//
// # Parser differentials
//
// The agent is untrusted, and the bridge inspects some of its messages (for
// example the path of fs/write_text_file) before forwarding the original bytes
// to the editor. If the bridge and the editor read a message differently, the
// agent can show the bridge one thing and the editor another. So [Parse]
// refuses duplicate top-level members and members whose names differ from
// jsonrpc/id/method/params/result/error only by case (encoding/json matches
// names case-insensitively; JavaScript and serde do not). [UnmarshalStrict]
// applies the same rule at every depth before calling encoding/json; the
// bridge should decode the params it inspects with it.
package acp
