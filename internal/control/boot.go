package control

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// EncodeBoot renders b as a kernel command line parameter.
func EncodeBoot(b *Boot) (string, error) {
	j, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	return BootParam + "=" + base64.RawURLEncoding.EncodeToString(j), nil
}

// DecodeBoot finds and decodes the Boot parameter in a kernel command line.
func DecodeBoot(cmdline string) (*Boot, error) {
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, BootParam+"=")
		if !ok {
			continue
		}
		j, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("control: bad %s parameter: %w", BootParam, err)
		}
		var b Boot
		if err := json.Unmarshal(j, &b); err != nil {
			return nil, fmt.Errorf("control: bad %s parameter: %w", BootParam, err)
		}
		return &b, nil
	}
	return nil, fmt.Errorf("control: no %s= parameter on the kernel command line", BootParam)
}
