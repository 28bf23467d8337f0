//go:build !linux

package guest

// Main is only meaningful as PID 1 of a Linux guest.
func Main() { panic("guest: PID 1 runs only on linux") }
