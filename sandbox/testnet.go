package sandbox

// TestNetEnv names a JSON file (TestNet) that replaces the VM network's
// resolver and dialer. Only binaries built with the acpsandbox_testhooks
// tag (testhooks.go) read it; the shipped binary ignores it: end-to-end tests use it so that no packet leaves the
// machine while the policy sees public (documentation) addresses.
const TestNetEnv = "ACP_SANDBOX_TEST_NET"

// TestApproveTimeoutEnv, with TestNetEnv, shortens the wait for an
// approve-on-block answer (a Go duration), so a test of "no answer" need
// not wait a minute. Test builds only.
const TestApproveTimeoutEnv = "ACP_SANDBOX_TEST_APPROVE_TIMEOUT"

// TestNet is the fake internet of one test.
type TestNet struct {
	// Hosts answers lookups: name → addresses. Other names do not exist.
	Hosts map[string][]string `json:"hosts"`
	// Routes maps the "ip:port" the stack dials to a loopback "ip:port".
	// Other dials fail; none reaches the real network.
	Routes map[string]string `json:"routes"`
	// DialLog, if set, gets one line per dial the stack attempted.
	DialLog string `json:"dialLog"`
	// UpstreamCA, if set, is a PEM file of the roots the credentials
	// layer trusts upstream (the stand-in servers' test CA) instead of
	// the system's.
	UpstreamCA string `json:"upstreamCA"`
}
