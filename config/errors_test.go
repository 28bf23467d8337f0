package config

import (
	"errors"
	"strings"
	"testing"
)

// testOpts is a fixed host: home /home/u, workspace /ws, state under
// /state. None of it exists, so nothing depends on this machine.
var testOpts = LoadOptions{
	Workspace:     "/ws",
	UserConfigDir: "/home/u/.config/acp-sandbox",
	StateDir:      "/state/acp-sandbox/0123456789abcdef",
	Home:          "/home/u",
}

// TestBadFiles: each bad file gets exactly these messages, all of them, in
// file order, each at the place to fix.
func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"syntax error", "[sandbox]\ncpus = = 2\n",
			"sandbox.toml:2:8: expected value but found '=' instead"},
		{"key set twice", "[sandbox]\ncpus = 2\ncpus = 3\n",
			"sandbox.toml:3:1: sandbox.cpus is set twice: set each key once"},
		{"key set twice, CRLF, no final newline", "[sandbox]\r\ncpus = 2\r\n  cpus = 3",
			"sandbox.toml:3:3: sandbox.cpus is set twice: set each key once"},
		{"table set twice", "[network]\n[sandbox]\n[network]\n",
			"sandbox.toml:3:2: network is set twice: set each key once"},
		{"unknown table, near miss", "[netwrok]\nallow = []\n",
			`sandbox.toml:1:2: unknown key "netwrok"; did you mean "network"?`},
		{"unknown key, near miss", "[network]\nalow = [\"pypi.org\"]\n",
			`sandbox.toml:2:1: unknown key "alow" in [network]; did you mean "allow"?`},
		{"unknown key, nothing near", "[sandbox]\ncolour = \"blue\"\n",
			`sandbox.toml:2:1: unknown key "colour" in [sandbox]`},
		{"swapped letters", "[sandbox]\nmemroy = \"2GiB\"\n",
			`sandbox.toml:2:1: unknown key "memroy" in [sandbox]; did you mean "memory"?`},
		{"cpus as a string", "[sandbox]\ncpus = \"2\"\n",
			"sandbox.toml:2:8: sandbox.cpus must be an integer such as 2, not a string"},
		{"cpus out of range", "[sandbox]\ncpus = 65\n",
			"sandbox.toml:2:8: sandbox.cpus = 65 is out of range: use 1 to 64"},
		{"memory in decimal units", "[sandbox]\nmemory = \"2GB\"\n",
			`sandbox.toml:2:10: sandbox.memory "2GB": write binary units, as in "2GiB" (1GiB = 1024MiB)`},
		{"memory too small", "[sandbox]\nmemory = \"128MiB\"\n",
			"sandbox.toml:2:10: sandbox.memory 128MiB is too little to boot the VM: use at least 256MiB"},
		{"memory not whole", "[sandbox]\nmemory = \"1.5GiB\"\n",
			`sandbox.toml:2:10: sandbox.memory "1.5GiB" is not a whole number: write it in a smaller unit, as in "1536MiB"`},
		{"memory as a number", "[sandbox]\nmemory = 2048\n",
			`sandbox.toml:2:10: sandbox.memory must be a size such as "2GiB", not an integer`},
		{"idle timeout", "[sandbox]\nidle_timeout = \"forever\"\n",
			`sandbox.toml:2:16: sandbox.idle_timeout "forever" is not a duration: write one such as "30m" or "2h", or "0" for never`},
		{"OCI image", "[sandbox]\nimage = \"debian:12\"\n",
			`sandbox.toml:2:9: sandbox.image "debian:12": OCI images are not supported yet; use "host" (a read-only view of the host's /usr) or leave image out`},
		{"preset typo", "[network]\npreset = \"lockd\"\n",
			`sandbox.toml:2:10: network.preset "lockd" is not a preset: use "locked", "balanced" or "open"; did you mean "locked"?`},
		{"bad patterns point at the element", "[network]\nallow = [\n  \"pypi.org\",\n\t\"*example.com\",  # typo\n  \"a..b\",\n]\n",
			`sandbox.toml:4:2: network.allow[1] "*example.com": a wildcard must be a whole label: use "*.example.com"` + "\n" +
				`sandbox.toml:5:3: network.allow[2] "a..b": empty label: use "a.b"`},
		{"deny element of the wrong type", "[network]\ndeny = [\"x.example\", 443]\n",
			"sandbox.toml:2:22: network.deny[1] must be a string, not an integer"},
		{"host port out of range", "[network]\nhost_ports = [11434, 70000]\n",
			"sandbox.toml:2:22: network.host_ports[1] = 70000 is not a port: use 1 to 65535"},
		{"http rule", "[[network.http]]\nmethods = [\"get\"]\npaths = [\"/v1/mess*\"]\n",
			`sandbox.toml:1:1: network.http[0] needs host = "api.example.com"` + "\n" +
				`sandbox.toml:2:12: network.http[0].methods[0] "get": write HTTP methods in upper case, as in "GET"` + "\n" +
				`sandbox.toml:3:10: network.http[0].paths[0] "/v1/mess*": a wildcard must be a whole segment, "*" (one segment) or "**" (any number)`},
		// Each mount case names what it would leak.
		{"mount of credentials (ssh keys)", "[[mounts]]\nhost = \"~/.ssh\"\n",
			`sandbox.toml:2:8: mounts[0].host "~/.ssh": refusing to mount it: it would expose credentials in /home/u/.ssh; to give the agent a secret, use [[credentials]] so the VM never holds it`},
		{"mount of the home directory (everything)", "[[mounts]]\nhost = \"~\"\nguest = \"/mnt/home\"\n",
			`sandbox.toml:2:8: mounts[0].host "~": refusing to mount it: it would expose your home directory /home/u as a whole; mount the project or data directory you need`},
		{"mount of a parent of credentials (cloud keys)", "[[mounts]]\nhost = \"/home/u/.config\"\n",
			`sandbox.toml:2:8: mounts[0].host "/home/u/.config": refusing to mount it: it would expose credentials in /home/u/.config/gcloud; to give the agent a secret, use [[credentials]] so the VM never holds it`},
		{"mount of the state dir (approvals: self-approval)", "[[mounts]]\nhost = \"/state\"\nread_only = false\n",
			`sandbox.toml:2:8: mounts[0].host "/state": refusing to mount it: it would expose acp-sandbox's own state or configuration in /state/acp-sandbox (approvals, keys, your policy)`},
		{"mount of system files (/etc/shadow)", "[[mounts]]\nhost = \"/etc\"\nguest = \"/mnt/etc\"\n",
			`sandbox.toml:2:8: mounts[0].host "/etc": refusing to mount it: it is inside the system directory /etc`},
		{"relative mount and bad read_only", "[[mounts]]\nhost = \"data\"\nread_only = \"yes\"\n",
			`sandbox.toml:2:8: mounts[0].host "data" is relative: write an absolute path or one starting with ~/` + "\n" +
				"sandbox.toml:3:13: mounts[0].read_only must be true or false, not a string"},
		{"mount over the guest's system", "[[mounts]]\nhost = \"/data\"\nguest = \"/usr/local\"\n",
			"sandbox.toml:3:9: mounts[0].guest /usr/local is the VM's own /usr; choose another path, such as /mnt/NAME"},
		{"mounts as a table", "[mounts]\nhost = \"/data\"\n",
			"sandbox.toml:1:2: mounts must be an array of tables ([[mounts]]), not a table"},
		{"guest path twice", "[[mounts]]\nhost = \"/data/a\"\nguest = \"/mnt/x\"\n[[mounts]]\nhost = \"/data/b\"\nguest = \"/mnt/x\"\n",
			"sandbox.toml:4:1: /mnt/x is already mounted in the VM by the mount at sandbox.toml:1:1; give this one another guest path"},
		{"bypass an address or another port", "[network]\nbypass = [\"203.0.113.9\", \"a.example.com:8443\", \"ok.example.com\"]\n",
			`sandbox.toml:2:11: network.bypass "203.0.113.9" is an address; bypass names hosts (TLS names), such as "pinned.example.com"` + "\n" +
				`sandbox.toml:2:26: network.bypass "a.example.com:8443": only port 443 is ever intercepted; drop the port`},
		{"credential without a source", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\n",
			"sandbox.toml:1:1: credentials[0] needs a source: one of from_env, from_file, from_command or from_acp = true"},
		{"credential path glob", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_env = \"K\"\npaths = [\"v1/**\"]\n",
			`sandbox.toml:5:10: credentials[0].paths[0] "v1/**" must start with "/", as in "/v1/**"`},
		{"credential with two sources", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_env = \"K\"\nfrom_acp = true\n",
			"sandbox.toml:5:1: credentials[0] has both from_env and from_acp: give exactly one source"},
		// A workspace file must not run host programs, even approved.
		{"credential from a command in a workspace file", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_command = [\"sh\", \"-c\", \"cat ~/.ssh/id_ed25519\"]\n",
			"sandbox.toml:4:16: credentials[0].from_command runs a program on your host, which a workspace file may not ask for: define this credential in /home/u/.config/acp-sandbox/config.toml instead"},
		// A secret file in the workspace is readable (and replaceable) by the agent.
		{"credential file in the workspace", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_file = \"/ws/.token\"\n",
			"sandbox.toml:4:13: credentials[0].from_file /ws/.token is inside the workspace, where the agent can read and change it; keep secrets outside the workspace"},
		// A rule that sends a private key in a header exfiltrates it.
		{"credential file among ssh keys", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_file = \"~/.ssh/id_ed25519\"\n",
			"sandbox.toml:4:13: credentials[0].from_file /home/u/.ssh/id_ed25519 is inside /home/u/.ssh, which holds keys, not header values; put the token in a file of its own"},
		{"credential header and format", "[[credentials]]\nhost = \"api.example.com\"\nheader = \"Host\"\nformat = \"Bearer\"\nfrom_acp = true\n",
			`sandbox.toml:3:10: credentials[0].header "Host" carries the request's framing or routing, not a credential: use the header the service reads the key from, such as "Authorization" or "x-api-key"` + "\n" +
				`sandbox.toml:4:10: credentials[0].format "Bearer" has no "{}" for the secret: write it as in "Bearer {}"`},
		{"inline credential table", "credentials = [\n  { host = \"api.example.com\", header = \"x-api-key\", from_env = \"1KEY\" },\n]\n",
			`sandbox.toml:2:64: credentials[0].from_env "1KEY" is not a variable name: it starts with a digit`},
		{"env overrides and types", "[env]\nPATH = \"/tmp/evil\"\nPORT = 8080\n\"MY VAR\" = \"x\"\n",
			"sandbox.toml:2:1: env.PATH: PATH is set by acp-sandbox (the VM's search path) and cannot be overridden" + "\n" +
				`sandbox.toml:3:8: env.PORT must be a string, not an integer: quote it, as in PORT = "8080"` + "\n" +
				`sandbox.toml:4:1: env."MY VAR": "MY VAR" is not a variable name: use letters, digits and "_"`},
		{"credential placeholder shadows env", "[env]\nAPI_KEY = \"x\"\n[[credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nfrom_acp = true\nenv = \"API_KEY\"\n",
			"sandbox.toml:3:1: credential env API_KEY is also set at sandbox.toml:2:1; the VM can see only one of them: rename one"},
		{"agent preset", "[agents.mine]\ncommand = []\nalow = [\"x.example\"]\n[agents.other]\ncommand = \"other-acp\"\n",
			`sandbox.toml:2:11: agents.mine.command needs a program, as in ["claude-agent-acp"]` + "\n" +
				`sandbox.toml:3:1: unknown key "alow" in [agents.mine]; did you mean "allow"?` + "\n" +
				`sandbox.toml:5:11: agents.other.command must be an argv array such as ["claude-agent-acp"], not a string`},
		{"positions after multi-line strings", "[env]\nNOTE = \"\"\"\nline \"one\"\nline two\"\"\"\"\nPATH = 'x'\n",
			"sandbox.toml:5:1: env.PATH: PATH is set by acp-sandbox (the VM's search path) and cannot be overridden"},
		{"CRLF line ends", "[sandbox]\r\ncpus = 0\r\n",
			"sandbox.toml:2:8: sandbox.cpus = 0 is out of range: use 1 to 64"},
		// The library says line 0 here; the place comes from its offset.
		{"CRLF in a string", "[env]\r\nA = \"x\r\n",
			"sandbox.toml:2:7: strings cannot contain newlines"},
		{"every problem at once", "[sandbox]\ncpus = 0\n[network]\npreset = \"wide\"\nallow = [\"*\"]\n",
			"sandbox.toml:2:8: sandbox.cpus = 0 is out of range: use 1 to 64\n" +
				`sandbox.toml:4:10: network.preset "wide" is not a preset: use "locked", "balanced" or "open"` + "\n" +
				`sandbox.toml:5:10: network.allow[0] "*": a wildcard alone would allow every host: name the domain, as in "*.example.com"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("sandbox.toml", []byte(tc.src), testOpts)
			if err == nil {
				t.Fatalf("Check accepted:\n%s", tc.src)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Check error\n got: %s\nwant: %s", strings.ReplaceAll(got, "\n", "\n      "), strings.ReplaceAll(tc.want, "\n", "\n      "))
			}
			var probs Problems
			if !errors.As(err, &probs) || len(probs) != strings.Count(tc.want, "\n")+1 {
				t.Errorf("error %T is not Problems with one entry per line", err)
			}
		})
	}
}
