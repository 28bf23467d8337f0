-- acp-sandbox: "My \"agent\"" runs opencode acp inside acp-sandbox's microVM.
-- It extends CodeCompanion's built-in "opencode" adapter, which needs no
-- authenticate call; extend the adapter closest to your agent if there is one.
-- Merge it into your require("codecompanion").setup({...}) call (with
-- lazy.nvim: into the opts of the olimorris/codecompanion.nvim spec).
require("codecompanion").setup({
  adapters = {
    acp = {
      my_agent = function()
        return require("codecompanion.adapters").extend("opencode", {
          name = "my_agent",
          formatted_name = "My \"agent\"",
          commands = {
            default = { "/home/me/bin/acp-sandbox", "--", "opencode", "acp" },
          },
        })
      end,
    },
  },
})
