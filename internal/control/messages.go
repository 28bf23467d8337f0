package control

import (
	"fmt"
	"io"
)

// Operations a stream can start with.
const (
	OpHello    = "hello"    // version handshake; first stream after boot
	OpSetup    = "setup"    // host-provided /etc and user facts; once per boot
	OpExec     = "exec"     // run a process; then stdio frames, then TypeExit
	OpPoweroff = "poweroff" // stop everything, sync, power off
)

// Request is the first frame of every stream.
type Request struct {
	Op    string `json:"op"`
	Hello *Hello `json:"hello,omitempty"`
	Setup *Setup `json:"setup,omitempty"`
	Exec  *Exec  `json:"exec,omitempty"`
}

// Reply answers a request. Error is set when the request failed; for exec it
// means the process never started (for example, command not found).
type Reply struct {
	Error string `json:"error,omitempty"`
	// ErrorKind classifies Error so the host can pick an exit code:
	// "notfound" (127), "noexec" (126) or "" (generic).
	ErrorKind string `json:"errorKind,omitempty"`
	Hello     *Hello `json:"hello,omitempty"`
}

// Hello carries the binary's version; a guest whose version differs from the
// host's runs an older binary and the VM must be replaced.
type Hello struct {
	Version string `json:"version"`
}

// Setup is what PID 1 learns after boot through the control channel rather
// than the kernel command line (which the agent can read).
type Setup struct {
	Hostname string `json:"hostname"`
	// Files are written under /etc (paths are absolute, must be under /etc).
	Files []File `json:"files"`
	// Env is the base environment of every exec'd process.
	Env []string `json:"env"`
	// TimeUnixNano is the host's clock: the RTC only gives the guest whole
	// seconds, and files shared over 9p must not look like they come from
	// the future.
	TimeUnixNano int64 `json:"time,omitempty"`
}

// File is one file or symlink the host provides for the guest's /etc.
// Its contents travel as TypeData frames after the Setup request, in file
// order (decoding them from JSON base64 cost ~100 ms of boot under TCG).
type File struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	Size int    `json:"size,omitempty"`
	Link string `json:"link,omitempty"` // symlink target; no data
	Data []byte `json:"-"`
}

// WriteSetup sends a Setup request followed by its files' data.
func WriteSetup(w *Writer, s *Setup) error {
	for i := range s.Files {
		s.Files[i].Size = len(s.Files[i].Data)
	}
	if err := w.JSON(TypeJSON, Request{Op: OpSetup, Setup: s}); err != nil {
		return err
	}
	for _, f := range s.Files {
		if err := w.Data(TypeData, f.Data); err != nil {
			return err
		}
	}
	return nil
}

// ReadSetupData reads the files' data that follows a Setup request.
func ReadSetupData(r io.Reader, s *Setup) error {
	for i := range s.Files {
		f := &s.Files[i]
		if f.Size < 0 || f.Size > MaxSetupFile {
			return fmt.Errorf("control: setup file %s: bad size %d", f.Path, f.Size)
		}
		f.Data = make([]byte, 0, f.Size)
		for len(f.Data) < f.Size {
			typ, p, err := ReadFrame(r)
			if err != nil {
				return err
			}
			if typ != TypeData || len(f.Data)+len(p) > f.Size {
				return fmt.Errorf("control: setup file %s: unexpected frame", f.Path)
			}
			f.Data = append(f.Data, p...)
		}
	}
	return nil
}

// MaxSetupFile bounds one setup file.
const MaxSetupFile = 16 << 20

// Exec asks the guest to run a process as the sandbox user.
type Exec struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"` // added to Setup.Env, overriding
	Dir  string   `json:"dir,omitempty"` // default: the workspace
	TTY  bool     `json:"tty,omitempty"` // one PTY for stdin/stdout/stderr
	Rows uint16   `json:"rows,omitempty"`
	Cols uint16   `json:"cols,omitempty"`
	// Stdin false means the process gets /dev/null (no stdin frames follow).
	Stdin bool `json:"stdin,omitempty"`
}

// Winsize is a terminal size.
type Winsize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// ExitStatus ends an exec stream.
type ExitStatus struct {
	Code   int    `json:"code"`             // exit code, or 128+signal
	Signal int    `json:"signal,omitempty"` // set when killed by a signal
	Error  string `json:"error,omitempty"`  // waiting failed
}

// Boot is what PID 1 learns from the kernel command line: non-secret facts
// only, because every process in the guest can read /proc/cmdline. It is
// passed as BootParam=<base64url(JSON)>.
type Boot struct {
	Workspace string  `json:"ws"`   // absolute path, same as on the host
	User      string  `json:"user"` // guest user name
	UID       int     `json:"uid"`
	GID       int     `json:"gid"`
	Home      string  `json:"home"`
	Mounts    []Mount `json:"mounts"`
	// WorkspaceCaps grants the user CAP_DAC_OVERRIDE and CAP_FOWNER as
	// ambient capabilities: used when the host user is root, so the
	// unprivileged guest user can still edit root-owned workspace files.
	WorkspaceCaps bool `json:"wscaps,omitempty"`
	// Canary: power off as soon as PID 1 runs (accelerator probe).
	Canary bool `json:"canary,omitempty"`
	// Port is the virtio-serial port name of the control channel.
	Port string `json:"port"`
	// Net: the VM has one virtio-net NIC, wired to the host's userspace
	// network stack; PID 1 configures it by DHCP before serving. Without
	// it the guest has loopback only.
	Net bool `json:"net,omitempty"`
}

// Mount is one 9p share the guest mounts at Path.
type Mount struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"ro,omitempty"`
	// Cache selects the 9p cache mode: "loose" for read-only system dirs
	// (fast, and nothing changes them under the VM), "" (none) otherwise.
	Cache string `json:"cache,omitempty"`
	// Options are extra 9p mount options (e.g. "access=any").
	Options string `json:"opts,omitempty"`
}

// BootParam is the kernel command line key carrying Boot.
const BootParam = "acpsandbox"

// ModulesList is the initramfs file listing module paths to load, in order.
const ModulesList = "/.acp-sandbox/modules.list"

// GuestBinary is where the initramfs's /init is also reachable for the
// sandbox user (as `acp-sandbox`, for `acp-sandbox why`): the directory is
// on the default PATH.
const GuestBinary = "/.acp-sandbox/bin/acp-sandbox"

// NetInfoDir is where the guest mounts, read-only, the host directory
// holding what the sandbox user may know about its network: the recent
// blocked flows (NetBlockedFile) that `acp-sandbox why` explains.
const NetInfoDir = "/run/acp-sandbox/net"

// NetBlockedFile is the JSON-lines file of recent blocked flows, in
// NetInfoDir on both sides.
const NetBlockedFile = "blocked.jsonl"

// VersionFile is the initramfs file holding the version (content hash) of
// the /init binary, computed on the host when the initramfs was built:
// hashing 7 MB again in the guest costs ~150 ms of boot under TCG.
const VersionFile = "/.acp-sandbox/version"
