lua << EOF
-- acp-sandbox: "Claude Code (sandboxed)" runs claude inside acp-sandbox's microVM.
-- It extends CodeCompanion's built-in "claude_code" adapter: same auth and
-- handlers, only the command differs.
-- Merge it into your require("codecompanion").setup({...}) call (with
-- lazy.nvim: into the opts of the olimorris/codecompanion.nvim spec).
require("codecompanion").setup({
  adapters = {
    acp = {
      claude_code_sandboxed = function()
        return require("codecompanion.adapters").extend("claude_code", {
          name = "claude_code_sandboxed",
          formatted_name = "Claude Code (sandboxed)",
          commands = {
            default = { "/opt/acp-sandbox/bin/acp-sandbox", "--", "claude" },
          },
        })
      end,
    },
  },
})
EOF
