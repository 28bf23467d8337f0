package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Checks of single values. Each returns "" when the value is fine, else a
// message saying what is wrong and how to fix it; the caller adds the path
// and position.

const (
	minMemory = 256 << 20
	maxMemory = 1 << 40
	maxCPUs   = 64
)

// sizeUnits are binary, as QEMU's -m reads them: "2G" is 2 GiB.
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KiB": 1 << 10,
	"M": 1 << 20, "MiB": 1 << 20,
	"G": 1 << 30, "GiB": 1 << 30,
	"T": 1 << 40, "TiB": 1 << 40,
}

// parseSize reads a memory size: "2GiB", "512MiB", "2G", "1536M".
func parseSize(s string) (int64, string) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	num = strings.TrimSpace(num)
	if num == "" || strings.ContainsAny(num, " \t") || !allDigits(num) {
		if strings.Contains(num, ".") {
			return 0, fmt.Sprintf("%q is not a whole number: write it in a smaller unit, as in \"1536MiB\"", s)
		}
		return 0, fmt.Sprintf("%q is not a size: write a number and a unit, as in \"2GiB\" or \"512MiB\"", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		if m, ok := sizeUnits[strings.TrimSuffix(strings.ToUpper(unit), "B")]; ok && m > 1 {
			// "2GB", "512mb": sizes are binary here; say so rather than guess.
			return 0, fmt.Sprintf("%q: write binary units, as in %q (1GiB = 1024MiB)", s, num+strings.ToUpper(unit[:1])+"iB")
		}
		return 0, fmt.Sprintf("%q has an unknown unit %q: use MiB or GiB, as in \"2GiB\"", s, unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > maxMemory/mult {
		return 0, fmt.Sprintf("%q is too large: the most is 1TiB", s)
	}
	if unit == "" || unit == "B" {
		return 0, fmt.Sprintf("%q has no unit: write %q for MiB or %q for GiB", s, num+"MiB", num+"GiB")
	}
	return n * mult, ""
}

// checkMemory bounds a parsed size.
func checkMemory(n int64) string {
	switch {
	case n < minMemory:
		return fmt.Sprintf("%s is too little to boot the VM: use at least 256MiB", formatSize(n))
	case n%(1<<20) != 0:
		return fmt.Sprintf("%s is not a whole number of MiB", formatSize(n))
	}
	return ""
}

// formatSize spells n bytes in the largest binary unit that divides it:
// "2GiB", "1536MiB".
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseIdle reads idle_timeout: a Go duration, "0" for never.
func parseIdle(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Sprintf("%q is not a duration: write one such as \"30m\" or \"2h\", or \"0\" for never", s)
	}
	if d < 0 {
		return 0, fmt.Sprintf("%q is negative: write a duration such as \"30m\", or \"0\" for never", s)
	}
	return d, ""
}

// formatIdle spells an idle timeout the way it is written: "30m", "0".
func formatIdle(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String() // "2h0m0s", "30m0s", "1m30s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkEnvName: a portable variable name.
func checkEnvName(name string) string {
	switch {
	case name == "":
		return "empty variable name"
	case strings.Contains(name, "="):
		return fmt.Sprintf("%q is not a variable name: it contains \"=\"", name)
	case name[0] >= '0' && name[0] <= '9':
		return fmt.Sprintf("%q is not a variable name: it starts with a digit", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Sprintf("%q is not a variable name: use letters, digits and \"_\"", name)
		}
	}
	return ""
}

// reservedEnv are variables acp-sandbox sets in the VM itself: the user's
// identity and search path, and the CA trust that credential injection
// depends on.
var reservedEnv = map[string]string{
	"PATH":                "the VM's search path",
	"HOME":                "the agent's home",
	"USER":                "the agent's user",
	"LOGNAME":             "the agent's user",
	"NODE_EXTRA_CA_CERTS": "the sandbox's CA trust",
	"SSL_CERT_FILE":       "the sandbox's CA trust",
	"REQUESTS_CA_BUNDLE":  "the sandbox's CA trust",
	"CURL_CA_BUNDLE":      "the sandbox's CA trust",
	"GIT_SSL_CAINFO":      "the sandbox's CA trust",
}

func checkVMEnvName(name string) string {
	if msg := checkEnvName(name); msg != "" {
		return msg
	}
	if what, ok := reservedEnv[name]; ok {
		return fmt.Sprintf("%s is set by acp-sandbox (%s) and cannot be overridden", name, what)
	}
	return ""
}

// checkHeaderName: an HTTP field name (RFC 9110 token) that is not about
// framing or routing.
func checkHeaderName(h string) string {
	if h == "" {
		return "empty header name"
	}
	for i := 0; i < len(h); i++ {
		if !isTokenChar(h[i]) {
			return fmt.Sprintf("%q is not a header name: use letters, digits and \"-\"", h)
		}
	}
	switch strings.ToLower(h) {
	case "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-connection":
		return fmt.Sprintf("%q carries the request's framing or routing, not a credential: use the header the service reads the key from, such as \"Authorization\" or \"x-api-key\"", h)
	}
	return ""
}

func isTokenChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkMethod: an HTTP method in upper case.
func checkMethod(m string) string {
	if m == "" {
		return "empty method"
	}
	for i := 0; i < len(m); i++ {
		if !isTokenChar(m[i]) {
			return fmt.Sprintf("%q is not an HTTP method", m)
		}
	}
	if up := strings.ToUpper(m); up != m {
		return fmt.Sprintf("%q: write HTTP methods in upper case, as in %q", m, up)
	}
	return ""
}

// checkPathGlob: "/v1/messages", "/api/*/settings", "/v1/**". A wildcard is
// a whole segment.
func checkPathGlob(g string) string {
	if !strings.HasPrefix(g, "/") {
		return fmt.Sprintf("%q must start with \"/\", as in \"/v1/**\"", g)
	}
	if strings.ContainsAny(g, "?#") {
		return fmt.Sprintf("%q: a path glob matches the path only, without \"?\" or \"#\"", g)
	}
	for _, seg := range strings.Split(g[1:], "/") {
		if strings.Contains(seg, "*") && seg != "*" && seg != "**" {
			return fmt.Sprintf("%q: a wildcard must be a whole segment, \"*\" (one segment) or \"**\" (any number)", g)
		}
	}
	return ""
}

// checkFormat: a header value template with one "{}".
func checkFormat(f string) string {
	switch n := strings.Count(f, "{}"); {
	case n == 0:
		return fmt.Sprintf("%q has no \"{}\" for the secret: write it as in \"Bearer {}\"", f)
	case n > 1:
		return fmt.Sprintf("%q has more than one \"{}\": the secret goes in once", f)
	case strings.ContainsAny(f, "\r\n\x00"):
		return fmt.Sprintf("%q contains a line break: a header value is one line", f)
	}
	return ""
}

// baseName is a program's name without its directory.
func baseName(p string) string { return filepath.Base(p) }
