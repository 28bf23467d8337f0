package config

import (
	"strconv"
	"strings"
)

// path names one value of a file the way its problems are reported:
// network.allow[2], credentials[0].host, env."MY VAR". Keys that are not
// bare TOML keys are quoted, so a path reads as the TOML that sets it.
type path []pathSeg

// pathSeg is one step of a path: a key, or an index into an array.
type pathSeg struct {
	key   string
	index int // when isIdx
	isIdx bool
}

// key returns p extended by a key. It never shares p's backing array, so
// paths can be kept while their parents grow.
func (p path) key(k string) path {
	return append(p[:len(p):len(p)], pathSeg{key: k})
}

// idx returns p extended by an array index.
func (p path) idx(i int) path {
	return append(p[:len(p):len(p)], pathSeg{index: i, isIdx: true})
}

func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		if s.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(s.key))
	}
	return b.String()
}

// table spells the TOML header that holds the values under p, for messages:
// "[network]", "[[credentials]]", "[agents.claude]", or "" for the top
// level.
func (p path) table() string {
	if len(p) == 0 {
		return ""
	}
	var keys []string
	for _, s := range p {
		if !s.isIdx {
			keys = append(keys, quoteKey(s.key))
		}
	}
	name := strings.Join(keys, ".")
	if p[len(p)-1].isIdx {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

// quoteKey spells a key as TOML would need it written.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}
