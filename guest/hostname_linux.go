package guest

import (
	"os"

	"golang.org/x/sys/unix"
)

func setHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return err
	}
	return os.WriteFile("/etc/hostname", []byte(name+"\n"), 0o644)
}
