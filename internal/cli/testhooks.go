//go:build acpsandbox_testhooks

package cli

import (
	"os"
	"strings"
)

// TestPresetSpecEnv ("claude=/ws/pkg.tgz,…") makes test builds install
// presets from local tarballs, so no test needs the npm registry.
const testPresetSpecEnv = "ACP_SANDBOX_TEST_PRESET_SPEC"

func init() {
	v := os.Getenv(testPresetSpecEnv)
	if v == "" {
		return
	}
	specs := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if k, s, ok := strings.Cut(kv, "="); ok {
			specs[k] = s
		}
	}
	presetSpec = func(name string) string { return specs[name] }
}
