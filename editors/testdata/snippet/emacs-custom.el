;; acp-sandbox: "My \"agent\"" runs opencode acp inside acp-sandbox's microVM.
(defun acp-sandbox--my-agent-client (&optional buffer)
  "Make the ACP client of My \"agent\" for BUFFER."
  (let ((command "/home/me/bin/acp-sandbox")
        (params '("--" "opencode" "acp")))
    (if (fboundp 'agent-shell--make-acp-client)
        (agent-shell--make-acp-client :command command
                                      :command-params params
                                      :context-buffer buffer)
      (acp-make-client :command command :command-params params))))

(with-eval-after-load 'agent-shell
  (add-to-list 'agent-shell-agent-configs
               (agent-shell-make-agent-config
                :identifier 'my-agent
                :mode-line-name "My \"agent\""
                :buffer-name "My \"agent\""
                :shell-prompt "My \"agent\"> "
                :shell-prompt-regexp "My \"agent\"> "
                :client-maker #'acp-sandbox--my-agent-client)))
