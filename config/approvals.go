package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/acp-sandbox/acp-sandbox/netstack/policy"
)

// Approvals is the host-side record of what the user approved for one
// workspace. It lives in the sandbox's state dir, outside the workspace and
// out of the VM's reach:
//
//	STATE/policy/approved.toml  copy of the last approved sandbox.toml
//	STATE/policy/allow.json     "allow always" answers from the editor
//	STATE/policy/lock           serialises read-modify-write of allow.json
//
// The workspace's sandbox.toml is agent-writable, so it applies only while
// its bytes equal the approved copy; the copy is the record (its SHA-256 is
// the approved hash), so hash and text cannot disagree. Approving the
// removal of the file removes the copy. Files are 0600 in a 0700 directory
// and written atomically.
type Approvals struct {
	dir string
}

// OpenApprovals returns the approvals of the sandbox whose state dir is
// stateDir ($XDG_STATE_HOME/acp-sandbox/ID). It does no I/O: a sandbox that
// never approved anything has no files yet.
func OpenApprovals(stateDir string) *Approvals {
	return &Approvals{dir: filepath.Join(stateDir, "policy")}
}

// Dir is the directory the approvals live in.
func (a *Approvals) Dir() string { return a.dir }

func (a *Approvals) copyPath() string  { return filepath.Join(a.dir, "approved.toml") }
func (a *Approvals) allowPath() string { return filepath.Join(a.dir, "allow.json") }

// PolicyState is whether the workspace's sandbox.toml applies.
type PolicyState string

const (
	// PolicyNone: there is no sandbox.toml and nothing was approved.
	PolicyNone PolicyState = "none"
	// PolicyApproved: the file is exactly what the user approved; it
	// applies.
	PolicyApproved PolicyState = "approved"
	// PolicyPending: the file was created, changed or removed since the
	// last approval. The last approved copy applies, or no workspace file
	// at all if none was ever approved.
	PolicyPending PolicyState = "pending"
)

// PolicyStatus is the state of a workspace's sandbox.toml against its
// approvals.
type PolicyStatus struct {
	State PolicyState
	// File is the workspace's sandbox.toml. "": no workspace was given.
	File string
	// Exists says whether File exists now.
	Exists bool
	// SHA256 is the hex hash of File's bytes; "" when it does not exist.
	SHA256 string
	// ApprovedSHA256 is the hex hash of the approved copy; "" when nothing
	// is approved.
	ApprovedSHA256 string
	// ApprovedAt is when the copy was approved; zero when nothing is.
	ApprovedAt time.Time
	// Diff is, when Pending, a unified diff from the approved copy (empty
	// if none) to the file (empty if removed). "" otherwise.
	Diff string
	// Problems is, when Pending and the file exists, what is wrong with it
	// (Problems); it cannot be approved until fixed. nil when it can, or
	// when not checked (Approvals.Status does not check; Load and Check
	// do).
	Problems error

	content  []byte // File's bytes as read for this status
	approved []byte // the approved copy; nil when none
}

// Content is the workspace file's bytes as read for this status, nil when
// the file does not exist. Pass it to Approve to approve exactly what the
// user was shown, not whatever the file holds a moment later.
func (s PolicyStatus) Content() []byte { return s.content }

// Applied is the workspace file text that applies: the file when
// approved, else the approved copy; nil when none applies.
func (s PolicyStatus) Applied() []byte {
	if s.State == PolicyApproved {
		return s.content
	}
	return s.approved
}

// ApprovedLabel is how the approved copy is named in diffs and origins.
const approvedLabel = "approved"

// Status compares the workspace file with the approved copy.
func (a *Approvals) Status(workspaceFile string) (PolicyStatus, error) {
	st := PolicyStatus{File: workspaceFile}
	content, exists, err := readWorkspaceFile(workspaceFile)
	if err != nil {
		return st, err
	}
	st.Exists, st.content = exists, content
	if exists {
		st.SHA256 = hashHex(content)
	}
	approved, at, err := a.approvedCopy()
	if err != nil {
		return st, err
	}
	if approved != nil {
		st.approved, st.ApprovedSHA256, st.ApprovedAt = approved, hashHex(approved), at
	}
	switch {
	case !exists && approved == nil:
		st.State = PolicyNone
	case exists && approved != nil && st.SHA256 == st.ApprovedSHA256:
		st.State = PolicyApproved
	default:
		st.State = PolicyPending
		st.Diff = unifiedDiff(approvedLabel, workspaceFile, approved, content)
		if st.Diff == "" {
			// An empty file against nothing approved: still say what changes.
			st.Diff = fmt.Sprintf("--- %s\n+++ %s\n(empty file)\n", approvedLabel, workspaceFile)
		}
	}
	return st, nil
}

// Effective returns the workspace policy text that applies now: the file
// when it is approved, else the last approved copy. ok is false when none
// applies (never approved, or its removal was approved): then only the
// defaults and the user's config hold.
func (a *Approvals) Effective(workspaceFile string) (content []byte, ok bool, err error) {
	st, err := a.Status(workspaceFile)
	if err != nil {
		return nil, false, err
	}
	c := st.Applied()
	return c, c != nil, nil
}

// approvedCopy reads the approved copy; nil when there is none.
func (a *Approvals) approvedCopy() ([]byte, time.Time, error) {
	f, err := os.Open(a.copyPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("config: cannot read the approved policy: %w", err)
	}
	defer f.Close()
	data, _, err := readRegular(f, a.copyPath())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("config: %w", err)
	}
	var at time.Time
	if fi, err := f.Stat(); err == nil {
		at = fi.ModTime()
	}
	if data == nil {
		data = []byte{} // an approved empty file is not "nothing approved"
	}
	return data, at, nil
}

// Approve records content as the approved workspace sandbox.toml; nil
// approves its removal. Check the content first (PolicyStatus.Problems nil,
// or Check): an approved file that does not load stops the sandbox from
// starting.
func (a *Approvals) Approve(content []byte) error {
	if content == nil {
		err := os.Remove(a.copyPath())
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("config: cannot record the approval: %w", err)
		}
		return nil
	}
	if err := a.ensureDir(); err != nil {
		return err
	}
	if err := writeFileAtomic(a.copyPath(), content); err != nil {
		return fmt.Errorf("config: cannot record the approval: %w", err)
	}
	return nil
}

func (a *Approvals) ensureDir() error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("config: cannot create %s: %w", a.dir, err)
	}
	return os.Chmod(a.dir, 0o700)
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// AllowEntry is one "allow always" answer.
type AllowEntry struct {
	Pattern string    `json:"pattern"` // canonical host pattern
	Added   time.Time `json:"added"`
}

type allowFile struct {
	Allow []AllowEntry `json:"allow"`
}

// AllowList returns the "allow always" patterns in the order they were
// added.
func (a *Approvals) AllowList() ([]AllowEntry, error) {
	data, err := os.ReadFile(a.allowPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: cannot read %s: %w", a.allowPath(), err)
	}
	var f allowFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("config: %s is damaged (%v); remove it to forget the editor's \"allow always\" answers", a.allowPath(), err)
	}
	for _, e := range f.Allow {
		if _, err := policy.ParsePattern(e.Pattern); err != nil {
			return nil, fmt.Errorf("config: %s: %w; remove that entry", a.allowPath(), err)
		}
	}
	return f.Allow, nil
}

// AddAllow records an "allow always" answer: the pattern joins the
// workspace's effective [network] allow list from the next Load on, with
// origin "approved in editor". The pattern is checked with
// netstack/policy and stored canonical; adding one already there does
// nothing.
func (a *Approvals) AddAllow(pattern string) error {
	pat, err := policy.ParsePattern(pattern)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return a.updateAllow(func(list []AllowEntry) []AllowEntry {
		if slices.ContainsFunc(list, func(e AllowEntry) bool { return e.Pattern == pat.String() }) {
			return list
		}
		return append(list, AllowEntry{Pattern: pat.String(), Added: time.Now().UTC().Truncate(time.Second)})
	})
}

// RemoveAllow forgets an "allow always" answer; removed is false when it
// was not there.
func (a *Approvals) RemoveAllow(pattern string) (removed bool, err error) {
	pat, err := policy.ParsePattern(pattern)
	if err != nil {
		return false, fmt.Errorf("config: %w", err)
	}
	err = a.updateAllow(func(list []AllowEntry) []AllowEntry {
		n := len(list)
		list = slices.DeleteFunc(list, func(e AllowEntry) bool { return e.Pattern == pat.String() })
		removed = len(list) < n
		return list
	})
	return removed, err
}

func (a *Approvals) updateAllow(change func([]AllowEntry) []AllowEntry) error {
	if err := a.ensureDir(); err != nil {
		return err
	}
	return withLock(a.dir, func() error {
		list, err := a.AllowList()
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(allowFile{Allow: change(list)}, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(a.allowPath(), append(data, '\n')); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		return nil
	})
}
