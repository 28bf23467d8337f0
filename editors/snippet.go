package editors

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Snippet is the code that adds e to an editor configured in code (Neovim,
// Emacs), for the init file at path (empty: the editor's default). The user
// pastes it; we do not edit init files, which are programs.
func (ed *Editor) Snippet(env Env, path string, e Entry) (string, error) {
	if ed.Managed() {
		return "", fmt.Errorf("editors: %s is configured through %s, not code", ed.Title, ed.ConfigPath(env))
	}
	if path == "" {
		path = ed.ConfigPath(env)
	}
	s := ed.snippet(e)
	if ed == neovim && filepath.Ext(path) == ".vim" {
		// init.vim runs Vimscript; a heredoc hands the block to Lua.
		s = "lua << EOF\n" + s + "EOF\n"
	}
	return s, nil
}

// snippetID names the entry in code: its name in lower case with runs of
// anything else turned into sep ("Claude Code (sandboxed)" →
// claude_code_sandboxed).
func snippetID(e Entry, sep string) string {
	var b strings.Builder
	pending := false
	for _, r := range strings.ToLower(e.Name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if pending && b.Len() > 0 {
				b.WriteString(sep)
			}
			pending = false
			b.WriteRune(r)
		} else {
			pending = true
		}
	}
	if b.Len() == 0 || b.String()[0] >= '0' && b.String()[0] <= '9' {
		return "acp" + sep + "sandbox" + sep + b.String()
	}
	return b.String()
}

// quoted quotes s for Lua and Emacs Lisp string literals alike: both take
// backslash escapes for \ and ", and names cannot hold newlines.
func quoted(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func quotedList(ss []string, sep string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoted(s)
	}
	return strings.Join(q, sep)
}

// agentLabel says in words what an entry runs, for the snippets' comments.
func agentLabel(e Entry) string {
	return strings.Join(e.Args[min(1, len(e.Args)):], " ")
}

// luaSnippet adds a CodeCompanion ACP adapter. It extends the built-in
// adapter of the same agent, so that agent's auth and message handling
// still apply, and only swaps the command (the documented way to change an
// adapter's command: codecompanion.olimorris.dev/configuration/adapters-acp).
// The adapter's name must equal its key: CodeCompanion resolves adapters by
// name (lua/codecompanion/adapters/acp/init.lua).
func luaSnippet(e Entry) string {
	id := snippetID(e, "_")
	base := quoted("opencode")
	why := ", which needs no\n-- authenticate call; extend the adapter closest to your agent if there is one."
	if p, ok := presetOf(e); ok && p.codeCompanion != "" {
		base, why = quoted(p.codeCompanion), ": same auth and\n-- handlers, only the command differs."
	}
	return fmt.Sprintf(`-- acp-sandbox: %s runs %s inside acp-sandbox's microVM.
-- It extends CodeCompanion's built-in %s adapter%s
-- Merge it into your require("codecompanion").setup({...}) call (with
-- lazy.nvim: into the opts of the olimorris/codecompanion.nvim spec).
require("codecompanion").setup({
  adapters = {
    acp = {
      %s = function()
        return require("codecompanion.adapters").extend(%s, {
          name = %s,
          formatted_name = %s,
          commands = {
            default = { %s },
          },
        })
      end,
    },
  },
})
`, quoted(e.Name), agentLabel(e), base, why, id, base, quoted(id), quoted(e.Name),
		quotedList(append([]string{e.Command}, e.Args...), ", "))
}

// elispSnippet adds an agent-shell agent config. agent-shell's per-agent
// command variables have been renamed between releases
// (agent-shell-anthropic-claude-command, then …-claude-acp-command) and
// would replace the unsandboxed agent; a config of our own sits beside it.
// agent-shell-agent-configs entries may be config alists in every release
// (newer ones also take maker functions). The client maker uses
// agent-shell's own constructor where it exists (it applies the user's
// container runner and request decorator) and acp.el's public
// acp-make-client otherwise. A named function rather than a lambda keeps the
// snippet working in init files without lexical-binding.
func elispSnippet(e Entry) string {
	id := snippetID(e, "-")
	return fmt.Sprintf(`;; acp-sandbox: %s runs %s inside acp-sandbox's microVM.
(defun acp-sandbox--%s-client (&optional buffer)
  %s
  (let ((command %s)
        (params '(%s)))
    (if (fboundp 'agent-shell--make-acp-client)
        (agent-shell--make-acp-client :command command
                                      :command-params params
                                      :context-buffer buffer)
      (acp-make-client :command command :command-params params))))

(with-eval-after-load 'agent-shell
  (add-to-list 'agent-shell-agent-configs
               (agent-shell-make-agent-config
                :identifier '%s
                :mode-line-name %s
                :buffer-name %s
                :shell-prompt %s
                :shell-prompt-regexp %s
                :client-maker #'acp-sandbox--%s-client)))
`, quoted(e.Name), agentLabel(e), id, quoted("Make the ACP client of "+e.Name+" for BUFFER."),
		quoted(e.Command), quotedList(e.Args, " "),
		id, quoted(e.Name), quoted(e.Name), quoted(e.Name+"> "), quoted(regexpQuote(e.Name+"> ")), id)
}

// regexpQuote escapes Emacs regexp specials as regexp-quote does, so the
// prompt regexp matches a name holding "." or "+" literally.
func regexpQuote(s string) string {
	return strings.NewReplacer(`[`, `\[`, `*`, `\*`, `.`, `\.`, `\`, `\\`, `+`, `\+`, `?`, `\?`, `^`, `\^`, `$`, `\$`).Replace(s)
}
