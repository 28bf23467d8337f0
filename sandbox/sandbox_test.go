package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckWorkspace(t *testing.T) {
	home := "/home/alice"
	d := Dirs{State: "/home/alice/.local/state/acp-sandbox", Runtime: "/run/user/1000/acp-sandbox", Cache: "/home/alice/.cache/acp-sandbox"}
	for _, c := range []struct {
		ws     string
		refuse string // substring of the reason; "" = allowed
	}{
		{"/home/alice/src/project", ""},
		{"/home/alice/project", ""},
		{"/srv/www/site", ""},
		{"/tmp/scratch", ""},
		{"/opt/app", ""},
		// The leaks each refusal stops:
		{"/", "root directory"},                           // the whole host
		{"/home/alice", "home directory"},                 // every dotfile and key
		{"/home", "home directory"},                       // all users' homes
		{"/home/alice/.ssh", "credentials"},               // ssh keys
		{"/home/alice/.aws/cli", "credentials"},           // cloud keys below a credential dir
		{"/home/alice/.config", "credentials"},            // contains gcloud, gh
		{"/home/alice/.local/state", "acp-sandbox's own"}, // our CA key and approvals
		{"/home/alice/.cache", "acp-sandbox's own"},       // our cache
		{"/etc", "system directory"},                      // shadow, ssh host keys
		{"/etc/nginx", "system directory"},                // anything under /etc
		{"/root/project", "system directory"},             // root's home
		{"/usr", "system directory"},                      // too much to share whole
		{"/tmp", "system directory"},                      // other users' temp files
		{"/var", "system directory"},
	} {
		err := CheckWorkspace(c.ws, home, d)
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("%s refused: %v", c.ws, err)
		case c.refuse != "" && err == nil:
			t.Errorf("%s allowed, want refusal (%s)", c.ws, c.refuse)
		case c.refuse != "" && !strings.Contains(err.Error(), c.refuse):
			t.Errorf("%s: %v; want reason %q", c.ws, err, c.refuse)
		case err != nil && !strings.Contains(err.Error(), "--workspace"):
			t.Errorf("%s: error does not say what to do: %v", c.ws, err)
		}
	}
}

func TestIDsAndLookup(t *testing.T) {
	root := t.TempDir()
	d := Dirs{State: filepath.Join(root, "state"), Runtime: filepath.Join(root, "rt"), Cache: filepath.Join(root, "cache")}
	ws1, ws2 := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, w := range []string{ws1, ws2} {
		if err := os.Mkdir(w, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink to a workspace is the same sandbox.
	link := filepath.Join(root, "link")
	if err := os.Symlink(ws1, link); err != nil {
		t.Fatal(err)
	}
	s1, err := d.ForWorkspace(ws1)
	if err != nil {
		t.Fatal(err)
	}
	viaLink, err := d.ForWorkspace(link)
	if err != nil {
		t.Fatal(err)
	}
	if s1.ID != viaLink.ID || len(s1.ID) != IDLen {
		t.Fatalf("ids %q %q", s1.ID, viaLink.ID)
	}
	s2, _ := d.ForWorkspace(ws2)
	if s1.ID == s2.ID {
		t.Fatal("two workspaces share an id")
	}
	if _, err := d.ForWorkspace(filepath.Join(root, "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing workspace: %v", err)
	}
	for _, s := range []*Sandbox{s1, s2} {
		if err := s.Prepare(); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(s.StateDir); fi.Mode().Perm() != 0o700 {
			t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
		}
	}
	list, err := d.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %v %d", err, len(list))
	}
	got, err := d.ByID(s2.ID[:6])
	if err != nil || got.Workspace != s2.Workspace {
		t.Fatalf("ByID prefix: %v %+v", err, got)
	}
	if _, err := d.ByID("zzzz"); err == nil || !strings.Contains(err.Error(), "acp-sandbox ls") {
		t.Fatalf("unknown id: %v", err)
	}
	if len(s1.SupSocket()) > 107 {
		t.Errorf("socket path too long: %s", s1.SupSocket())
	}
}

// The guest's /etc copy must never carry secrets from the host's /etc.
func TestHostEtcAllowlist(t *testing.T) {
	for _, pat := range hostEtc {
		for _, bad := range []string{"shadow", "gshadow", "sudoers", "ssh", "environment", "gitconfig", "netrc", "passwd", "credentials", "private"} {
			if strings.Contains(pat, bad) {
				t.Errorf("allowlist entry %q may expose secrets (%s)", pat, bad)
			}
		}
	}
	for _, f := range hostEtcFiles() {
		if !strings.HasPrefix(f.Path, "/etc/") {
			t.Errorf("file outside /etc: %s", f.Path)
		}
		if f.Link == "" && len(f.Data) > maxEtcFile {
			t.Errorf("%s exceeds the size cap", f.Path)
		}
	}
}
