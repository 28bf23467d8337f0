package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/acp-sandbox/acp-sandbox/config"
	"github.com/acp-sandbox/acp-sandbox/internal/presets"
	"github.com/acp-sandbox/acp-sandbox/sandbox"
	"github.com/acp-sandbox/acp-sandbox/vmm"
	"github.com/acp-sandbox/acp-sandbox/vmm/kernel"
	"github.com/spf13/cobra"
)

// check is one doctor finding. Fix is the exact command (or step) that
// solves a problem.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Optional: a failure here limits a feature, not the sandbox; it is
	// printed as a warning and does not fail doctor.
	Optional bool `json:"optional,omitempty"`
}

type doctorReport struct {
	OK      bool        `json:"ok"`
	Accel   vmm.Verdict `json:"accel"`
	Checks  []check     `json:"checks"`
	Running int         `json:"running"`
	// Sandboxes describes each running sandbox: id, workspace, accelerator
	// and network rules.
	Sandboxes []string `json:"sandboxes,omitempty"`
}

func runDoctor(ctx context.Context, g *globals) doctorReport {
	var r doctorReport
	add := func(c check) { r.Checks = append(r.Checks, c) }

	qv, err := vmm.Version(ctx, "")
	if err != nil {
		add(check{Name: "qemu", Detail: "qemu-system-x86_64 not found", Fix: "apt-get install --no-install-recommends qemu-system-x86"})
	} else {
		add(check{Name: "qemu", OK: true, Detail: "qemu-system-x86_64 " + qv})
	}

	dirs, derr := sandbox.DefaultDirs()
	kcache := sandbox.KernelCacheDir(dirs.Cache)
	r.Accel = vmm.DetectAccel(ctx, vmm.AccelOptions{Force: vmm.Accel(g.accel)})
	if r.Accel.Accel == vmm.AccelKVM {
		// A canary boot decides on first start; show a cached verdict.
		if k, ok := kernel.Cached(kcache); ok {
			if v, ok := sandbox.CachedAccel(ctx, dirs.Cache, k.Version); ok {
				r.Accel = v
			}
		}
	}
	accelDetail := fmt.Sprintf("%s: %s", r.Accel.Accel, r.Accel.Reason)
	if r.Accel.Accel == vmm.AccelTCG {
		accelDetail += " (software emulation: works, but commands start slower)"
	}
	add(check{Name: "accelerator", OK: true, Detail: accelDetail})

	if g.kernel != "" {
		if _, err := os.Stat(g.kernel); err != nil {
			add(check{Name: "kernel", Detail: fmt.Sprintf("--kernel %s: %v", g.kernel, err), Fix: "pass an existing vmlinux or bzImage"})
		} else {
			add(check{Name: "kernel", OK: true, Detail: "user kernel " + g.kernel})
		}
	} else if k, ok := kernel.Cached(kcache); ok {
		add(check{Name: "kernel", OK: true, Detail: fmt.Sprintf("Debian %s cached in %s", k.Version, kcache)})
	} else if _, err := exec.LookPath("apt-get"); err != nil {
		add(check{Name: "kernel", Detail: "no cached kernel and no apt-get to fetch Debian's", Fix: "pass --kernel VMLINUX --modules DIR (or set ACP_SANDBOX_KERNEL / ACP_SANDBOX_MODULES)"})
	} else {
		add(check{Name: "kernel", OK: true, Detail: "not cached yet; the first start fetches Debian's linux-image-amd64 (~70 MB) with apt-get download", Fix: "acp-sandbox start (or run `apt-get update` first if apt's lists are empty)"})
	}

	if exe, err := os.Executable(); err == nil {
		if err := sandbox.CheckStatic(exe); err != nil {
			add(check{Name: "binary", Detail: err.Error(), Fix: "CGO_ENABLED=0 go build -o acp-sandbox ./cmd/acp-sandbox"})
		} else {
			add(check{Name: "binary", OK: true, Detail: exe + " is static (runs as the VM's init)"})
		}
	}

	if derr != nil {
		add(check{Name: "dirs", Detail: derr.Error(), Fix: "set HOME or XDG_STATE_HOME"})
	} else {
		for _, d := range []struct{ name, path string }{{"state dir", dirs.State}, {"runtime dir", dirs.Runtime}, {"cache dir", dirs.Cache}} {
			if err := writable(d.path); err != nil {
				add(check{Name: d.name, Detail: fmt.Sprintf("%s: %v", d.path, err), Fix: fmt.Sprintf("mkdir -p %s && chmod 700 %s (or point XDG_STATE_HOME / XDG_RUNTIME_DIR / XDG_CACHE_HOME elsewhere)", d.path, d.path)})
			} else {
				add(check{Name: d.name, OK: true, Detail: d.path})
			}
		}
	}

	// Presets run the host's node and npm, which the VM sees through /usr.
	if npm, err := exec.LookPath("npm"); err != nil {
		add(check{Name: "npm", Optional: true, Detail: "npm not found: agent presets (-- claude, codex, gemini) cannot be installed", Fix: "apt-get install --no-install-recommends nodejs npm"})
	} else if real, _ := filepath.EvalSymlinks(npm); !strings.HasPrefix(real, "/usr/") {
		add(check{Name: "npm", Optional: true, Detail: npm + " is outside /usr, so the VM cannot see it: agent presets cannot be installed", Fix: "apt-get install --no-install-recommends nodejs npm (the VM shares the host's /usr)"})
	} else {
		add(check{Name: "npm", OK: true, Detail: real + " (the VM sees it through /usr)"})
	}
	if sb, err := g.workspaceSandbox(); err == nil {
		var overridden map[string]string // preset → the command a file runs instead
		if cfg, err := sandbox.LoadConfig(sb); err != nil {
			add(check{Name: "policy", Detail: err.Error(), Fix: "fix the file named above (acp-sandbox policy check FILE)"})
		} else {
			st := cfg.PolicyStatus
			switch st.State {
			case config.PolicyPending:
				add(check{Name: "policy", Optional: true, Detail: st.File + " changed and is not approved: the last approved version applies", Fix: "acp-sandbox policy approve (shows the diff)"})
			case config.PolicyApproved:
				add(check{Name: "policy", OK: true, Detail: st.File + " approved"})
			default:
				add(check{Name: "policy", OK: true, Detail: "no sandbox.toml: built-in defaults (network preset " + cfg.Network.Preset + ")"})
			}
			found, missing := sandbox.CredentialReport(cfg)
			detail := "none found on the host"
			if len(found) > 0 {
				detail = "injected on the way out, the VM sees placeholders: " + strings.Join(found, "; ")
			}
			if len(missing) > 0 {
				detail += "; not set (the agent must log in another way): " + strings.Join(missing, "; ")
			}
			add(check{Name: "credentials", OK: true, Detail: detail})
			overridden = map[string]string{}
			for _, p := range presets.All() {
				if r := resolveAgent(cfg, []string{p.Name}); r.preset == nil {
					overridden[p.Name] = strings.Join(r.argv, " ")
				}
			}
		}
		var have, missing []string
		for _, p := range presets.All() {
			if cmd, ok := overridden[p.Name]; ok {
				have = append(have, p.Name+" runs `"+cmd+"` (your configuration replaces the preset)")
				continue
			}
			host := filepath.Join(sb.Home(), strings.TrimPrefix(p.Command(sandbox.GuestHome), sandbox.GuestHome+"/"))
			if _, err := os.Stat(host); err == nil {
				have = append(have, p.Name+" "+p.Version)
			} else {
				missing = append(missing, p.Name)
			}
		}
		detail := "in " + sb.Workspace + "'s sandbox: "
		if len(have) > 0 {
			detail += strings.Join(have, ", ") + " installed"
			if len(missing) > 0 {
				detail += "; "
			}
		}
		if len(missing) > 0 {
			detail += strings.Join(missing, ", ") + " install on first use"
		}
		add(check{Name: "presets", OK: true, Detail: detail})
	}

	if list, err := listSandboxes(ctx); err == nil {
		for _, e := range list {
			if e.State != "running" {
				continue
			}
			r.Running++
			if e.Status != nil {
				r.Sandboxes = append(r.Sandboxes, fmt.Sprintf("%s %s (%s, network: %s)", e.ID, e.Workspace, e.Status.Accel, e.Status.Network))
			}
		}
	}
	r.OK = true
	for _, c := range r.Checks {
		r.OK = r.OK && (c.OK || c.Optional)
	}
	return r
}

func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

func newDoctorCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine: accelerator (and why), QEMU, kernel, directories, npm for presets, running sandboxes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			r := runDoctor(ctx, g)
			if asJSON {
				if err := printJSON(r); err != nil {
					return err
				}
			} else {
				for _, c := range r.Checks {
					mark := "ok  "
					switch {
					case !c.OK && c.Optional:
						mark = "warn"
					case !c.OK:
						mark = "FAIL"
					}
					fmt.Printf("%s %-12s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Printf("     %-12s fix: %s\n", "", c.Fix)
					}
				}
				fmt.Printf("     %-12s %d running\n", "sandboxes", r.Running)
				for _, s := range r.Sandboxes {
					fmt.Printf("     %-12s %s\n", "", s)
				}
			}
			if !r.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
