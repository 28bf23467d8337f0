package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// commentedKey matches an example line: "# " then a table header, a key
// assignment, or an array element (a string or a number).
var commentedKey = regexp.MustCompile(`^(\s*)# (\[|[A-Za-z_][A-Za-z0-9_.-]* *=|"|[0-9])`)

// uncomment turns the commented-out examples of a file into settings.
func uncomment(src string) string {
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		if m := commentedKey.FindStringSubmatchIndex(l); m != nil {
			lines[i] = l[:m[3]] + l[m[3]+2:]
		}
	}
	return strings.Join(lines, "\n")
}

// TestRepoExample: the repository's own sandbox.toml, an example of every
// key, is a valid workspace file; with its commented examples switched on
// it is a valid user config (from_command is allowed only there).
func TestRepoExample(t *testing.T) {
	src, err := os.ReadFile("../sandbox.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check("sandbox.toml", src, testOpts); err != nil {
		t.Fatalf("sandbox.toml:\n%v", err)
	}
	all := uncomment(string(src))
	if err := Check(testOpts.UserFile(), []byte(all), testOpts); err != nil {
		t.Fatalf("sandbox.toml with its examples uncommented:\n%v\n%s", err, all)
	}
	// Every key of the schema appears in the example.
	for _, key := range []string{
		"[sandbox]", "cpus", "memory", "idle_timeout", "image",
		"[network]", "preset", "allow", "deny", "host_ports", "bypass",
		"[[network.http]]", "methods", "paths",
		"[[mounts]]", "host", "guest", "read_only",
		"[[credentials]]", "header", "format", "from_env", "from_file", "from_command", "from_acp", "env", "paths",
		"[env]", "[agents.", "command", "credentials]]",
	} {
		if !strings.Contains(all, key) {
			t.Errorf("the example does not show %s", key)
		}
	}
}

// TestStarter: what `policy init` writes is valid as written and with
// every example switched on.
func TestStarter(t *testing.T) {
	for _, p := range PresetNames {
		src, err := Starter(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check("sandbox.toml", src, testOpts); err != nil {
			t.Errorf("starter %s:\n%v", p, err)
		}
		if err := Check("sandbox.toml", []byte(uncomment(string(src))), testOpts); err != nil {
			t.Errorf("starter %s uncommented:\n%v", p, err)
		}
		if !strings.Contains(string(src), `preset = "`+p+`"`) {
			t.Errorf("starter %s does not set its preset", p)
		}
	}
}
