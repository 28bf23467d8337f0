;; acp-sandbox: "Claude Code (sandboxed)" runs claude inside acp-sandbox's microVM.
(defun acp-sandbox--claude-code-sandboxed-client (&optional buffer)
  "Make the ACP client of Claude Code (sandboxed) for BUFFER."
  (let ((command "/opt/acp-sandbox/bin/acp-sandbox")
        (params '("--" "claude")))
    (if (fboundp 'agent-shell--make-acp-client)
        (agent-shell--make-acp-client :command command
                                      :command-params params
                                      :context-buffer buffer)
      (acp-make-client :command command :command-params params))))

(with-eval-after-load 'agent-shell
  (add-to-list 'agent-shell-agent-configs
               (agent-shell-make-agent-config
                :identifier 'claude-code-sandboxed
                :mode-line-name "Claude Code (sandboxed)"
                :buffer-name "Claude Code (sandboxed)"
                :shell-prompt "Claude Code (sandboxed)> "
                :shell-prompt-regexp "Claude Code (sandboxed)> "
                :client-maker #'acp-sandbox--claude-code-sandboxed-client)))
