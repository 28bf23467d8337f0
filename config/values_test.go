package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"2GiB": 2 << 30, "2G": 2 << 30, "512MiB": 512 << 20, "512M": 512 << 20,
		"1536MiB": 1536 << 20, "1TiB": 1 << 40, "2 GiB": 2 << 30, "262144K": 256 << 20,
	} {
		if got, msg := parseSize(in); msg != "" || got != want {
			t.Errorf("parseSize(%q) = %d, %q; want %d", in, got, msg, want)
		}
	}
	for in, want := range map[string]string{
		"2GB":                     `"2GB": write binary units, as in "2GiB" (1GiB = 1024MiB)`,
		"512mb":                   `"512mb": write binary units, as in "512MiB" (1GiB = 1024MiB)`,
		"2048":                    `"2048" has no unit: write "2048MiB" for MiB or "2048GiB" for GiB`,
		"2 cows":                  `"2 cows" has an unknown unit "cows": use MiB or GiB, as in "2GiB"`,
		"GiB":                     `"GiB" is not a size: write a number and a unit, as in "2GiB" or "512MiB"`,
		"-1GiB":                   `"-1GiB" is not a size: write a number and a unit, as in "2GiB" or "512MiB"`,
		"2TiB":                    `"2TiB" is too large: the most is 1TiB`,
		"99999999999999999999GiB": `"99999999999999999999GiB" is too large: the most is 1TiB`,
	} {
		if _, msg := parseSize(in); msg != want {
			t.Errorf("parseSize(%q) = %q\n want %q", in, msg, want)
		}
	}
	if msg := checkMemory(256<<20 + 1<<10); msg != "262145KiB is not a whole number of MiB" {
		t.Errorf("checkMemory = %q", msg)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{2 << 30: "2GiB", 1536 << 20: "1536MiB", 1 << 40: "1TiB", 1000: "1000B"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %s, want %s", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0", 30 * time.Minute: "30m", 2 * time.Hour: "2h", 90 * time.Second: "1m30s", 2*time.Hour + 5*time.Minute: "2h5m"} {
		if got := formatIdle(d); got != want {
			t.Errorf("formatIdle(%v) = %s, want %s", d, got, want)
		}
		if back, msg := parseIdle(want); msg != "" || back != d {
			t.Errorf("parseIdle(%s) = %v, %s", want, back, msg)
		}
	}
}
