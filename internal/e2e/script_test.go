package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/acp-sandbox/acp-sandbox/internal/vmtest"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI transcripts in testdata/script: what a user
// types and what they see, against real VMs.
func TestScripts(t *testing.T) {
	vmtest.RequireQEMU(t)
	bin := vmtest.Binary(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			rt, err := os.MkdirTemp("", "acps")
			if err != nil {
				return err
			}
			home := filepath.Join(env.WorkDir, "home")
			ws, err := os.MkdirTemp("", "acps-ws-")
			if err != nil {
				return err
			}
			env.Setenv("HOME", home)
			env.Setenv("XDG_STATE_HOME", filepath.Join(home, ".local/state"))
			env.Setenv("XDG_RUNTIME_DIR", rt)
			env.Setenv("XDG_CACHE_HOME", vmtest.CacheRoot())
			env.Setenv("WS", ws)
			env.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Defer(func() {
				cmd := exec.Command(bin, "stop", "--all")
				cmd.Env = env.Vars
				_ = cmd.Run()
				os.RemoveAll(rt)
				os.RemoveAll(ws)
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// acp-sandbox runs the binary under test (its file name has a
			// content hash, so scripts name it by role).
			"acp-sandbox": func(ts *testscript.TestScript, neg bool, args []string) {
				err := ts.Exec(bin, args...)
				if err != nil && !neg {
					ts.Fatalf("acp-sandbox %v: %v", args, err)
				}
				if err == nil && neg {
					ts.Fatalf("acp-sandbox %v: unexpected success", args)
				}
			},
		},
	})
}
